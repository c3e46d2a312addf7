"""Fixtures shared by the test modules."""
import pytest
import torch


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
