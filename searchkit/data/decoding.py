"""An image folder checked, decoded once and cached: every image opened once and decoded (in
worker processes where that helps) into one uint8 array kept in a cache file.

The cache lives in :func:`cache_dir` (``$SEARCHKIT_CACHE``, else ``$XDG_CACHE_HOME/searchkit``,
else ``~/.cache/searchkit``) under ``images/<key>.npy`` (the pixels, ``(N,C,H,W)`` uint8, read
back memory-mapped) and ``images/<key>.json`` (which file each row is, and how they were
decoded). ``key`` hashes the folder's path, every file's name, size and mtime, and the decoding
settings, so that adding, removing, replacing or touching any file, or changing
``image_size``/``skip_bad``, decodes again; nothing else invalidates it. Both files are written
whole and renamed into place, so a killed or concurrent writer never leaves a torn cache; writing
a folder's cache removes the one it replaces (same folder and settings, older contents), so the
cache holds one entry per folder and settings.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from searchkit.data.sources import image_array, probe_image

CACHE_VERSION = 1
#: images per task handed to a worker process, and the fewest images worth starting workers for
CHUNK = 1000
PARALLEL_FROM = 4000
#: problems as ``(path relative to the folder root, what is wrong and the fix)``
Problem = tuple[str, str]


class CacheWarning(UserWarning):
    """The decoded-image cache could not be written."""


def cache_dir() -> Path:
    """searchkit's cache directory (created on first write, not here)."""
    if os.environ.get("SEARCHKIT_CACHE"):
        return Path(os.environ["SEARCHKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "searchkit"


def worker_count(n_images: int, workers: int | None) -> int:
    """Worker processes for ``n_images``: ``workers`` if given, else every usable core (at most 8)
    from :data:`PARALLEL_FROM` images on, else 1 (this process: starting workers costs more)."""
    if workers is not None:
        return workers
    return min(usable_cores(), 8) if n_images >= PARALLEL_FROM else 1


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the platform says, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _in_chunks(task: Callable, root: Path, rels: Sequence[str], workers: int, *args) -> list:
    """``task(root, chunk, *args)`` over chunks of ``rels`` of :data:`CHUNK`, results in order;
    in ``workers`` processes when more than one (they need nothing but the arguments; forked on
    Linux, where that starts them fastest, spawned elsewhere)."""
    chunks = [list(rels[i : i + CHUNK]) for i in range(0, len(rels), CHUNK)]
    if workers <= 1 or len(chunks) <= 1:
        return [task(root, chunk, *args) for chunk in chunks]
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
        return list(pool.map(task, [root] * len(chunks), chunks, *([a] * len(chunks) for a in args)))


def probe_all(root: Path, rels: Sequence[str]) -> tuple[dict[str, tuple[str, tuple[int, int]]], list[Problem]]:
    """The headers of images ``rels`` (:func:`~searchkit.data.sources.probe_image`, no pixels
    decoded): ``{rel: (mode, (W, H))}`` for the readable ones, and a problem for each other."""
    headers, problems = {}, []
    for rel in rels:
        try:
            headers[rel] = probe_image(root / rel)
        except (OSError, SyntaxError, ValueError) as err:
            problems.append((rel, f"unreadable image ({err}); replace or remove it"))
    return headers, problems


def _decode_chunk(root: Path, rels: list[str], mode: str, size: tuple[int, int]) -> tuple[np.ndarray, list, list[Problem]]:
    pixels = np.zeros((len(rels), 1 if mode == "L" else 3, *size), dtype=np.uint8)
    headers, problems = [], []
    for i, rel in enumerate(rels):
        try:
            with Image.open(root / rel) as im:
                found = (im.mode, im.size)
                pixels[i] = image_array(im, rel, mode, size, resize=True)
        except (OSError, SyntaxError, ValueError) as err:
            found = None
            problems.append((rel, f"unreadable image ({err}); replace or remove it"))
        headers.append(found)
    return pixels, headers, problems


def decode_all(root: Path, rels: Sequence[str], mode: str, size: tuple[int, int],
               workers: int) -> tuple[np.ndarray, list[tuple[str, tuple[int, int]] | None], list[Problem]]:
    """Every image of ``rels``, each file opened once: ``(N, C, H, W)`` uint8 (``size`` = (H, W),
    resized where needed by :func:`~searchkit.data.sources.image_array`), every image's header
    ``(mode, (W, H))`` as found (None if unreadable), and a problem for each that does not decode
    (its row is left zero)."""
    results = _in_chunks(_decode_chunk, root, rels, workers, mode, size)
    if not results:
        return np.zeros((0, 1 if mode == "L" else 3, *size), dtype=np.uint8), [], []
    return (np.concatenate([pixels for pixels, _, _ in results]), [h for _, headers, _ in results for h in headers],
            [p for _, _, problems in results for p in problems])


@dataclass
class DecodedFolder:
    """A folder's decoded images: ``pixels[i]`` (C,H,W) uint8 is the file ``rows[i]`` (relative to
    the root); ``mode`` "L" or "RGB", ``size`` (H, W), the line saying how it was chosen and whether the
    default rule chose it for mixed sizes; ``skipped``: the problems left out (with ``skip_bad``);
    ``source``: ``files`` (decoded now) or ``cache``."""

    rows: list[str]
    pixels: np.ndarray
    mode: str
    size: tuple[int, int]
    size_rule: str
    size_chosen: bool
    skipped: list[Problem]
    source: str = "files"

    def save(self, key: str) -> None:
        """Write the cache files for ``key`` (pixels first, so a found .json means a whole .npy).
        A cache that cannot be written (full disk, no permission) loses nothing: a
        :class:`CacheWarning` names the fix and the run goes on with the decoded images."""
        folder = cache_dir() / "images"
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("pixels", "source")}
        tmp = folder / f"{key}.{os.getpid()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for suffix, write in ((".npy", lambda f: np.save(f, self.pixels)),
                                  (".json", lambda f: f.write(json.dumps({"version": CACHE_VERSION, **meta}).encode()))):
                with open(tmp, "wb") as f:
                    write(f)
                os.replace(tmp, folder / f"{key}{suffix}")
            place = key.split("-")[0]
            for stale in folder.glob(f"{place}-*"):  # the same folder and settings, older contents
                if not stale.name.startswith(key):
                    stale.unlink(missing_ok=True)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            warnings.warn(f"cannot write the decoded-image cache in {folder} ({err.strerror or err}); this run goes on "
                          "without it, the next decodes again: free space there, set SEARCHKIT_CACHE to another "
                          "directory, or set data.options.cache=false", CacheWarning, stacklevel=2)

    @classmethod
    def load(cls, key: str) -> DecodedFolder | None:
        """The cached folder for ``key``, pixels memory-mapped (copy-on-write); None if absent or unreadable."""
        folder = cache_dir() / "images"
        try:
            meta = json.loads((folder / f"{key}.json").read_text())
            pixels = np.load(folder / f"{key}.npy", mmap_mode="c")
        except (OSError, ValueError):
            return None
        if meta.pop("version", None) != CACHE_VERSION or len(pixels) != len(meta["rows"]):
            return None
        return cls(meta["rows"], pixels, meta["mode"], tuple(meta["size"]), meta["size_rule"], meta["size_chosen"],
                   [tuple(p) for p in meta["skipped"]], source="cache")


def folder_key(root: Path, stats: dict[str, tuple[int, int]], settings: dict) -> str:
    """The cache key of a folder: ``<place>-<contents>``, ``place`` hashing its resolved path and
    ``settings``, ``contents`` every file's (name, bytes, mtime_ns)."""
    place = hashlib.sha1(json.dumps([CACHE_VERSION, str(root.resolve()), settings], sort_keys=True).encode())
    contents = hashlib.sha1()
    for rel in sorted(stats):
        size, mtime = stats[rel]
        contents.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return f"{place.hexdigest()[:12]}-{contents.hexdigest()[:16]}"
