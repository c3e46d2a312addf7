"""CI-sized bounded memory: ``searchkit correlate`` on 100 architectures peaks within 10% of its
peak on 10 (``params``, synthetic 8-image batch, the benchmark's C=16, N=5 networks of 1-6 MB of
parameters each; each run a fresh subprocess reporting its own peak RSS, ``VmHWM``, which a
large pytest parent does not inflate as it inflates ``ru_maxrss``). Scoring streams, so both peaks
are the interpreter, torch, the table and one network (measured: 347 MiB at both 20 and 200);
keeping the 90 extra networks alive would add far more than the 35 MiB allowed. The full-size
figures (200 vs 2,000 on CIFAR-10) come from ``benchmarks/memory_bound.py`` (results/store-memory).
"""
import importlib.util
from pathlib import Path

import pytest

from searchkit import runtime
from searchkit.paths import find_data

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "memory_bound.py"
_spec = importlib.util.spec_from_file_location("memory_bound", BENCHMARK)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.skipif(find_data("nb201/nb201_table.csv") is None, reason="needs the NB201 table")
def test_peak_memory_does_not_grow_with_the_architectures_scored(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(BENCHMARK.parents[1]))
    small = ["--dataset", "synthetic", "--batch-size", "8"]
    peaks = {n: bench.peak_rss(bench.correlate_argv(n, "params", tmp_path / str(n), small))[0] for n in (10, 100)}
    assert (tmp_path / "100" / "scores.csv").read_text().count("\n") == 101
    assert peaks[100] <= 1.10 * peaks[10], peaks


def test_the_scoring_loop_trims_the_heap_only_above_its_bound(monkeypatch):
    trims = []
    monkeypatch.setattr(runtime, "_malloc_trim", lambda: trims.append)
    monkeypatch.setattr(runtime, "resident_bytes", lambda: 3 << 30)
    runtime.release_memory(above=4 << 30)
    assert trims == []
    runtime.release_memory(above=2 << 30)
    runtime.release_memory()  # 0: always (empirical_ntk, whose callers loop over cells themselves)
    assert trims == [0, 0]


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux's /proc")
def test_resident_bytes_is_this_process_resident_set():
    resident = runtime.resident_bytes()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    vm_rss = int(status["VmRSS"].split()[0]) * 1024  # kB
    assert 50 << 20 < resident and abs(resident - vm_rss) < 16 << 20
