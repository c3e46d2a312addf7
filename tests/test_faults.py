"""Faults: unreadable images in an image folder (issue 25 ask 4) are named, with the fix, in one
line and exit 2 before any scoring; or, with data.options.skip_bad=true, skipped and counted."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from searchkit.cli import main
from searchkit.data import get_dataset
from searchkit.data.problems import SkippedFilesWarning

FOLDER_RUN = ["data.name=imagefolder", "data.batch_size=8", "space.build={C: 2, N: 1}",
              "evaluate.method=none", "budget.archs=2"]


def write_folder_faults_fixture(root: Path, n_train: int = 10) -> None:
    """2 classes of 8x8 noise PNGs: n_train per class in train/, 3 in test/."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", 3)):
        for cls in ("ant", "bee"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")


def folder_search_fails(capsys, root: Path, out: Path, *fragments: str) -> str:
    assert main(["search", "--quiet", "--out", str(out), f"data.root={root}", *FOLDER_RUN]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("searchkit: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()  # refused before the run directory, so before any scoring
    return err


def test_folder_a_corrupt_image_is_one_line_before_any_scoring(capsys, tmp_path):
    write_folder_faults_fixture(tmp_path / "f")
    (tmp_path / "f" / "test" / "bee" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\ntorn")
    folder_search_fails(capsys, tmp_path / "f", tmp_path / "run", "1 problem found before any work",
                        "test/bee/1.png: unreadable image (", "replace or remove it",
                        "or set data.options.skip_bad=true to leave these files out")


def test_folder_an_empty_class_folder_is_one_line(capsys, tmp_path):
    write_folder_faults_fixture(tmp_path / "f")
    (tmp_path / "f" / "train" / "cow").mkdir()
    folder_search_fails(capsys, tmp_path / "f", tmp_path / "run",
                        "train/cow/: empty class folder (no images); add images or remove it")


def test_folder_stray_files_are_one_line(capsys, tmp_path):
    write_folder_faults_fixture(tmp_path / "f")
    (tmp_path / "f" / "train" / "ant" / "labels.csv").write_text("a,b\n")
    (tmp_path / "f" / "train" / "ant" / ".DS_Store").write_bytes(b"hidden files are ignored")
    folder_search_fails(capsys, tmp_path / "f", tmp_path / "run", "1 problem found",
                        "train/ant/labels.csv: not an image (.jpg, .jpeg, .png", "move it out of the folder")


def test_folder_skip_bad_skips_and_counts(tmp_path):
    root = tmp_path / "f"
    write_folder_faults_fixture(root)
    (root / "train" / "ant" / "0.png").write_bytes(b"")
    (root / "test" / "bee" / "2.png").write_bytes(Image.open(root / "test" / "bee" / "1.png").tobytes())
    (root / "train" / "notes.txt").write_text("")
    (root / "train" / "cow").mkdir()
    with pytest.warns(SkippedFilesWarning, match=r"skipped 4 file\(s\) or folder\(s\) with problems \(data.options."
                                                 r"skip_bad=true\): test/bee/2.png: unreadable image .*; and 1 more, "
                                                 r"all listed in "):
        d = get_dataset("imagefolder", root=root, skip_bad=True)
    assert d.info["skipped"] == 4 and d.describe()["skipped"] == 4 and d.info["classes"] == ["ant", "bee"]
    assert len(d.train) + len(d.valid) == 19 and len(d.test) == 5
    with pytest.warns(SkippedFilesWarning, match="skipped 4"):  # said again when read back from the cache
        assert get_dataset("imagefolder", root=root, skip_bad=True).info["decoded_from"] == "cache"
    out = tmp_path / "run"
    with pytest.warns(SkippedFilesWarning, match="skipped 4 file"):  # the CLI prints it as one warning line
        assert main(["search", "--quiet", "--out", str(out), f"data.root={root}", "data.options.skip_bad=true",
                     *FOLDER_RUN]) == 0
    assert json.loads((out / "best.json").read_text())["arch"]
