"""Fixtures shared by the test modules."""
import os

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist, each worker gets its share of the cores (cores // workers torch threads,
    inherited by the processes a test starts): two workers with torch's default of one thread per
    core each would oversubscribe a 2-core machine, which slows every tensor-heavy test several-fold."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@pytest.fixture
def one_thread():
    """Tiny networks: one intra-op thread avoids OpenMP oversubscription on shared CPUs. Modules
    opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def run_in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own temporary directory, so nothing it writes by default (e.g. a
    search's ``runs/<time>-<name>/``) lands in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """searchkit's cache (decoded image folders, problem lists) goes to the test's temporary
    directory, never the user's ~/.cache."""
    monkeypatch.setenv("SEARCHKIT_CACHE", str(tmp_path / "searchkit-cache"))
