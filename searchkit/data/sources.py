"""Image files laid out as ``<split>/<class>/<file>``, in a directory or inside a tar archive.

A tar archive (optionally gzipped) is read into memory once per process and indexed without
extracting anything; single images are then decoded from it on demand with PIL.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import tarfile
import zlib
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from searchkit.errors import SearchkitError

SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})


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
    """Image folders on disk: ``root/<split>/<class>/<file>``, classes nested one level deep.

    A class is a folder that holds images, directly under ``<split>/`` (``<split>/<class>/``) or
    one level deeper (``<split>/<group>/<class>/``, class name ``"<group>/<class>"``); a folder
    holding only folders is a group. Hidden entries are ignored. What does not fit is listed in
    ``problems`` (``(path relative to the root, what is wrong and the fix)``), not raised, so that
    a caller can report every one at once: a non-image file, an image directly under
    ``<split>/``, a folder inside a class folder or below a group's classes, a class folder
    without images (listed in ``files`` with no names). ``stats[rel]`` is ``(bytes, mtime_ns)`` of every
    file listed (images and stray files alike), for caches keyed by the folder's contents.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self.files = {}
        self.problems: list[tuple[str, str]] = []
        self.stats: dict[str, tuple[int, int]] = {}
        for split in SPLITS:
            if (root / split).is_dir():
                self.files[split] = {}
                self._scan(root / split, split, depth=0)

    def _scan(self, folder: Path, rel: str, depth: int) -> None:
        """Record the images of ``folder`` (``rel`` from the root) as a class, recurse into its folders."""
        images, subdirs = [], []
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            self.problems.append((rel + "/", f"cannot be listed ({err.strerror}); fix its permissions"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = f"{rel}/{entry.name}"
            if entry.is_dir():
                subdirs.append(entry)
                continue
            try:
                stat = entry.stat()
            except OSError as err:  # e.g. a broken symbolic link
                self.problems.append((path, f"cannot be read ({err.strerror}); replace or remove it"))
                continue
            self.stats[path] = (stat.st_size, stat.st_mtime_ns)
            if not _is_image(entry.name):
                self.problems.append((path, f"not an image ({', '.join(IMAGE_SUFFIXES)}); move it out of the folder"))
            elif depth == 0:
                self.problems.append((path, f"an image outside a class folder; move it into {rel}/<class>/"))
            else:
                images.append(entry.name)
        split, _, cls = rel.partition("/")
        if images or (depth > 0 and not subdirs):
            self.files[split][cls] = sorted(images)
        if depth > 0 and not images and not subdirs:
            self.problems.append((rel + "/", "empty class folder (no images); add images or remove it"))
        for entry in subdirs:
            if images or depth == 2:
                self.problems.append((f"{rel}/{entry.name}/", f"a folder inside class folder {rel}/; classes sit "
                                      f"at {split}/<class>/ or {split}/<group>/<class>/: move it"))
            else:
                self._scan(Path(entry.path), f"{rel}/{entry.name}", depth + 1)

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


def probe_image(src: Path | BinaryIO) -> tuple[str, tuple[int, int]]:
    """``(mode, (W, H))`` of one image from its header, after PIL's ``verify()`` (PNG: every
    chunk's CRC; other formats: the header only). Raises OSError/SyntaxError/ValueError if
    unreadable; pixels are not decoded."""
    with Image.open(src) as im:
        mode, size = im.mode, im.size
        im.verify()
    return mode, size


def read_image(
    src: Path | BinaryIO, where: str, mode: str, size: tuple[int, int], resize: bool, hint: str = ""
) -> np.ndarray:
    """Decode one image as ``(C,H,W)`` uint8 in ``mode`` ("RGB" or "L") by :func:`image_array`;
    an unreadable image is a SearchkitError naming ``where``."""
    try:
        with Image.open(src) as im:
            return image_array(im, where, mode, size, resize, hint)
    except (OSError, SyntaxError, ValueError) as err:
        raise SearchkitError(f"cannot decode image {where}: {err}") from err


def image_array(
    im: Image.Image, where: str, mode: str, size: tuple[int, int], resize: bool, hint: str = ""
) -> np.ndarray:
    """The pixels of an opened image as ``(C,H,W)`` uint8 in ``mode`` ("RGB" or "L").

    ``size`` is (H, W): when ``resize``, an image of another size is scaled (bilinear, antialiased)
    to cover it and centre-cropped (aspect ratio kept, :func:`PIL.ImageOps.fit`); otherwise it
    must already have that size (a SearchkitError ending in ``hint``). A transparent image is
    composited over black first, so its hidden pixels never leak in. A JPEG much larger than
    ``size`` is decoded at a reduced scale (1/2, 1/4 or 1/8, still covering ``size``; PIL's
    ``draft``), which is many times faster than decoding every pixel. PIL's errors pass through.
    """
    h, w = size
    if resize and im.format == "JPEG" and (im.width > 2 * w or im.height > 2 * h):
        scale = max(w / im.width, h / im.height)
        im.draft(None, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im.convert("RGBA"))
    if im.mode != mode:
        im = im.convert(mode)
    if im.size != (w, h):
        if not resize:
            raise SearchkitError(f"image {where} is {im.size[0]}x{im.size[1]} pixels, expected {w}x{h}{hint}")
        im = ImageOps.fit(im, (w, h), Image.BILINEAR)
    pixels = np.asarray(im, dtype=np.uint8)
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
