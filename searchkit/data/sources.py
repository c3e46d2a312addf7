"""Image files laid out as ``<split>/<class>/<file>``, in a directory or inside a tar archive.

A tar archive (optionally gzipped) is read into memory once per process and indexed without
extracting anything; single images are then decoded from it on demand with PIL.
"""
from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from searchkit.errors import SearchkitError

SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


class ImageTree:
    """``files[split][class]``: sorted image file names under ``<split>/<class>/``.

    Only the split directories named in :data:`SPLITS` and files with an image suffix count.
    """

    location: str
    files: dict[str, dict[str, list[str]]]

    def open(self, rel: str) -> Path | BinaryIO:
        """A path or file object PIL can open, for ``rel = "<split>/<class>/<file>"``."""
        raise NotImplementedError

    def where(self, rel: str) -> str:
        """Where ``rel`` lives, for messages."""
        raise NotImplementedError


class DirTree(ImageTree):
    """Image folders on disk: ``root/<split>/<class>/<file>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self.files = {}
        for split in SPLITS:
            if (root / split).is_dir():
                self.files[split] = {
                    entry.name: sorted(f.name for f in os.scandir(entry) if _is_image(f.name))
                    for entry in os.scandir(root / split)
                    if entry.is_dir() and not entry.name.startswith(".")
                }

    def open(self, rel: str) -> Path:
        return self.root / rel

    def where(self, rel: str) -> str:
        return str(self.root / rel)


class TarTree(ImageTree):
    """A tar archive holding ``[<top>/]<split>/<class>/<file>``, kept in memory.

    ``data``: the uncompressed archive; members are sliced out of it, never extracted.
    """

    def __init__(self, path: Path) -> None:
        self.location = str(path)
        self.data = _read_archive(path)
        members = _tar_index(self.data, path)
        by_prefix: dict[str, dict[str, dict[str, list[str]]]] = {}
        self._members: dict[str, tuple[int, int]] = {}
        for name, span in members.items():
            parts = name.strip("/").split("/")
            if len(parts) < 3 or parts[-3] not in SPLITS or not _is_image(parts[-1]):
                continue
            prefix = "/".join(parts[:-3])
            split, cls, file = parts[-3:]
            by_prefix.setdefault(prefix, {}).setdefault(split, {}).setdefault(cls, []).append(file)
            self._members[f"{split}/{cls}/{file}"] = span
        if len(by_prefix) > 1:
            tops = ", ".join(sorted(p or "." for p in by_prefix))
            raise SearchkitError(
                f"archive {path} holds several image trees ({tops}); expected one "
                f"[<top>/]{{train,test}}/<class>/ layout"
            )
        self.prefix, self.files = next(iter(by_prefix.items()), ("", {}))
        for classes in self.files.values():
            for names in classes.values():
                names.sort()

    def open(self, rel: str) -> BinaryIO:
        offset, size = self._members[rel]
        return io.BytesIO(memoryview(self.data)[offset : offset + size])

    def where(self, rel: str) -> str:
        return f"{self.location}:{self.prefix + '/' if self.prefix else ''}{rel}"

    def __reduce__(self) -> tuple:
        # DataLoader workers reopen the archive (once per process) instead of receiving a copy
        return tar_tree, (Path(self.location),)


def tar_tree(path: Path) -> TarTree:
    """The archive at ``path``, read and indexed once per process (keyed by path, size, mtime)."""
    stat = path.stat()
    return _cached_tar_tree(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=2)
def _cached_tar_tree(path: str, size: int, mtime_ns: int) -> TarTree:
    return TarTree(Path(path))


def read_image(
    src: Path | BinaryIO, where: str, mode: str, size: tuple[int, int], resize: bool, hint: str = ""
) -> np.ndarray:
    """Decode one image as ``(C,H,W)`` uint8 in ``mode`` ("RGB" or "L").

    ``size`` is (H, W): the image is resized to it when ``resize``, else it must already have
    that size (a SearchkitError ending in ``hint`` otherwise).
    """
    try:
        with Image.open(src) as im:
            if im.mode != mode:
                im = im.convert(mode)
            h, w = size
            if im.size != (w, h):
                if not resize:
                    raise SearchkitError(
                        f"image {where} is {im.size[0]}x{im.size[1]} pixels, expected {w}x{h}{hint}"
                    )
                im = im.resize((w, h), Image.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as err:
        raise SearchkitError(f"cannot decode image {where}: {err}") from err
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


class TreeDecoder:
    """``decoder(i)``: image ``rels[i]`` of ``tree`` via :func:`read_image` (picklable)."""

    def __init__(
        self,
        tree: ImageTree,
        rels: list[str],
        mode: str,
        size: tuple[int, int],
        resize: bool = False,
        hint: str = "",
    ) -> None:
        self.tree, self.rels = tree, rels
        self.mode, self.size, self.resize, self.hint = mode, size, resize, hint

    def __call__(self, i: int) -> np.ndarray:
        rel = self.rels[i]
        return read_image(
            self.tree.open(rel), self.tree.where(rel), self.mode, self.size, self.resize, self.hint
        )


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def _read_archive(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise SearchkitError(
            f"cannot read archive {path}: {err}; expected a .tar or .tar.gz"
        ) from err


def _tar_index(data: bytes, path: Path) -> dict[str, tuple[int, int]]:
    """Regular files of an uncompressed tar: name -> (offset of the contents, size).

    Walks plain ustar/GNU headers directly (about 10x faster than :mod:`tarfile` on 60k
    members; only the first header's checksum is verified, to reject non-tar files); archives
    with pax or GNU long-name headers go through :mod:`tarfile`.
    """
    index: dict[str, tuple[int, int]] = {}
    offset = 0
    while offset + 512 <= len(data):
        header = data[offset : offset + 512]
        if not any(header):
            break
        if offset == 0 and not _checksum_ok(header):
            raise SearchkitError(f"cannot read archive {path}: not a tar archive (bad header)")
        kind = header[156:157]
        if kind in (b"x", b"g", b"L", b"K") or header[124] & 0x80:
            return _tar_index_tarfile(data, path)
        try:
            size = int(_field(header[124:136]) or "0", 8)
        except ValueError as err:
            raise SearchkitError(f"cannot read archive {path}: bad tar header ({err})") from err
        name = _field(header[0:100])
        if header[257:263] == b"ustar\x00" and header[345]:
            name = f"{_field(header[345:500])}/{name}"
        if kind in (b"0", b"\x00"):
            index[name] = (offset + 512, size)
        offset += 512 + -(-size // 512) * 512
    return index


def _tar_index_tarfile(data: bytes, path: Path) -> dict[str, tuple[int, int]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}
    except tarfile.TarError as err:
        raise SearchkitError(f"cannot read archive {path}: {' '.join(str(err).split())}") from err


def _checksum_ok(header: bytes) -> bool:
    """Whether the header's checksum field matches its byte sum (that field read as spaces)."""
    try:
        return int(_field(header[148:156]), 8) == sum(header[:148]) + 8 * 32 + sum(header[156:])
    except ValueError:
        return False


def _field(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
