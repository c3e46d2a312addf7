"""benchmarks/gpu_check.py on the CPU with tiny sizes: every section runs and the README says what it measured."""
import importlib.util
from pathlib import Path

import pytest
import torch

from searchkit.data import get_dataset

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", BENCHMARK)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ntk_on_the_device_agrees_with_the_cpu_reference_in_float64():
    splits = get_dataset("synthetic", n_train=32, n_test=8, n_valid=0)
    agree = bench.ntk_agreement(splits, torch.device("cpu"), cells=2, batch_size=6, build={"C": 4, "N": 1})
    assert agree["float64"] < 1e-8
    assert agree["fast_s"] > 0 and agree["reference_s"] > 0


def test_smoke_run_writes_every_section(tmp_path):
    argv = ["--device", "cpu", "--dataset", "no-such-dataset", "--cells", "3", "--workers", "1", "--ntk-cells", "1",
            "--ntk-batch", "6", "--batch-size", "8", "--train-images", "16", "--train-epochs", "1", "--tiny",
            "--no-pytest", "--sweep-sizes", "6", "12", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    text = (tmp_path / "README.md").read_text()
    assert "no-such-dataset could not be loaded" in text  # fell back to synthetic images
    for heading in ("## The NTK on the device", "## KCC scoring rate", "## The NTK against the batch size",
                    "## Training throughput"):
        assert heading in text
    assert "| 1 | 3 |" in text  # 3 cells scored by one process
    assert "| nb201 " in text and "| darts " in text
    assert "| largest | centred | 12 |" in text and "| median | sum | 6 |" in text
