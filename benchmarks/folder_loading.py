"""Loading an image folder: the first load (every image checked and decoded, the cache written)
against a later load (read back from the cache), each in a fresh process, as a new run would.

    tar xzf ../shared/data/cifar10/cifar10-jpeg.tar.gz -C /tmp
    nice -n 5 python benchmarks/folder_loading.py /tmp/cifar10-jpeg --out results/folder-loading/README.md

``ROOT`` is a folder ``{train,test}/<class>/*.jpg`` (CIFAR-10's 60,000 JPEGs above). For each case
a child process times ``get_dataset("imagefolder", root=ROOT)`` (the load) and then
``tensors()`` of every split (every image as the normalised float32 tensors a
trainer uses). Cases: ``first`` with ``--workers`` decode processes (the cache is written),
``cached`` (read back), and ``first, 1 process`` (no cache written), so that the gain of worker
processes is seen beside the gain of the cache. The cache goes to a temporary directory.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from searchkit.data.decoding import usable_cores

CHILD = """
import json, sys, time
from searchkit.data import get_dataset
root, workers, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
start = time.perf_counter()
d = get_dataset("imagefolder", root=root, decode_workers=workers, cache=cache)
loaded = time.perf_counter()
[split.tensors() for split in (d.train, d.valid, d.test) if split is not None]
done = time.perf_counter()
print(json.dumps({"load": loaded - start, "tensors": done - loaded, "from": d.info["decoded_from"],
                  "images": len(d.train) + len(d.valid) + len(d.test), "shape": d.input_shape}))
"""


def measure(root: Path, workers: int, cache: bool, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(workers), "1" if cache else "0"],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--workers", type=int, default=usable_cores())
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "SEARCHKIT_CACHE": cache_dir, "OMP_NUM_THREADS": "1"}
        rows = [(f"first, {args.workers} processes", measure(args.root, args.workers, True, env)),
                ("cached", measure(args.root, args.workers, True, env)),
                ("first, 1 process", measure(args.root, 1, False, env))]
    images = rows[0][1]["images"]
    lines = [f"# Loading an image folder: {args.root} ({images:,} images, input {tuple(rows[0][1]['shape'])})", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {usable_cores()} cores (load average "
             f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after: the cores were shared) with",
             f"`nice -n 5 python benchmarks/folder_loading.py {args.root} --workers {args.workers}`.", "",
             "| case | decoded from | load (s) | to tensors (s) | images/s (load) |", "|---|---|---:|---:|---:|"]
    for name, row in rows:
        lines.append(f"| {name} | {row['from']} | {row['load']:.2f} | {row['tensors']:.2f} | {images / row['load']:,.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
