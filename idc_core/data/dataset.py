"""Scan the dataset layout from a folder or a zip, and read its patches.

Layout: ``<root>/<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<0|1>.png``, optionally under one more
top-level folder; the Kaggle zip holds both copies, deduplicated here by file name.
"""

from __future__ import annotations

import os
import re
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from idc_core.data.archive import IN_MEMORY, ZipLimits, ZipMember, open_zip, read_member, safe_members
from idc_core.data.image_io import decode_image, pad_patch
from idc_core.errors import ArchiveError, DatasetError, IDCError, ImageError, named

EXPECTED_LAYOUT = "<root>/<patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<0|1>.png"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_EXTENSION_LIST = "/".join(ext[1:] for ext in IMAGE_EXTENSIONS)
_PATCH_NAME = re.compile(r"^(?P<patient>[^_/\\]+)_idx5_x(?P<x>\d+)_y(?P<y>\d+)_class(?P<label>[01])\.png$")
_CHUNK = 256  # patches per thread-pool task in load_patches


@dataclass(frozen=True)
class PatchRecord:
    """One patch: file path (or zip member name), patient id, slide x/y of its top-left corner, label."""

    path: str
    patient: str
    x: int
    y: int
    label: int | None


def parse_patch_name(name: str) -> tuple[str, int, int, int] | None:
    """(patient, x, y, label) from a ``<patient>_idx5_x<X>_y<Y>_class<C>.png`` base name, else None."""
    match = _PATCH_NAME.match(name.replace("\\", "/").rsplit("/", 1)[-1])
    if match is None:
        return None
    return match["patient"], int(match["x"]), int(match["y"]), int(match["label"])


class PatchSource:
    """Read access to the files of a dataset folder or zip; reads are thread-safe."""

    def __init__(self, root: str, kind: str, zf: zipfile.ZipFile | None = None,
                 members: Sequence[ZipMember] = (), rejected: Sequence[tuple[str, str]] = (),
                 limits: ZipLimits = ZipLimits()) -> None:
        self.root = root
        self.kind = kind
        self._zf = zf
        self._members = {member.name: member for member in members}
        self._rejected = list(rejected)
        self._limits = limits
        self._lock = threading.Lock()

    @classmethod
    def open(cls, root: str | Path | bytes | BinaryIO, *, limits: ZipLimits = ZipLimits()) -> PatchSource:
        """Open a dataset folder, a zip file, or zip bytes / a binary file object."""
        if isinstance(root, (str, Path)):
            path = Path(root)
            if path.is_dir():
                return cls(str(path.absolute()), "folder")
            if not path.is_file():
                raise DatasetError(f"{path}: no such folder or zip file")
        zf = open_zip(root, limits)
        try:
            members, rejected = safe_members(zf)
        except ArchiveError:
            zf.close()
            raise
        return cls(zf.filename or IN_MEMORY, "zip", zf, members, rejected, limits)

    def list_files(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Sorted relative posix paths of the files, and the zip members refused as unsafe."""
        if self._zf is None:
            names: list[str] = []
            for folder, _, files in os.walk(self.root):
                rel = Path(folder).relative_to(self.root).as_posix()
                names.extend(f if rel == "." else f"{rel}/{f}" for f in files)
            return sorted(names), []
        return sorted(self._members), list(self._rejected)

    def path_of(self, name: str) -> str:
        """The path a record stores for a relative name: the file path, or the zip member name."""
        return name if self._zf is not None else str(Path(self.root) / name)

    def read_bytes(self, path: str) -> bytes:
        """Bytes of a file: PatchRecord.path (absolute for folders, member name for zips) or a path
        relative to the folder; missing -> DatasetError, unsafe zip member -> ArchiveError."""
        if self._zf is None:
            try:
                return Path(self.root, path).read_bytes()
            except OSError as exc:
                raise DatasetError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
        member = self._members.get(path)
        if member is None:
            raise DatasetError(f"{path}: no such file in {self.root}")
        with self._lock:
            return read_member(self._zf, member.info, self._limits)

    def close(self) -> None:
        """Release the zip file, if any."""
        if self._zf is not None:
            self._zf.close()

    def __enter__(self) -> PatchSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class ScanResult:
    """Patches found by scan_dataset, plus the files refused (name, reason) and duplicates dropped."""

    source_root: str
    kind: str
    records: list[PatchRecord]
    rejected: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0

    def patients(self) -> list[str]:
        """Sorted patient ids."""
        return sorted({record.patient for record in self.records})

    def summary(self) -> dict:
        """Counts for display: patients, patches, class counts, rejected files (with examples), duplicates."""
        counts = Counter(record.label for record in self.records)
        return {
            "patients": len(self.patients()),
            "patches": len(self.records),
            "class_counts": {"0": counts.get(0, 0), "1": counts.get(1, 0)},
            "rejected": len(self.rejected),
            "rejected_examples": [f"{name}: {reason}" for name, reason in self.rejected[:5]],
            "duplicates": self.duplicates,
        }


def _check_layout(name: str) -> tuple[PatchRecord | None, str]:
    """Record for a relative path in the layout (path = name), or None and the reason."""
    parsed = parse_patch_name(name)
    if parsed is None:
        return None, "name is not <patient>_idx5_x<X>_y<Y>_class<0|1>.png"
    patient, x, y, label = parsed
    parts = name.split("/")
    if len(parts) < 3:
        return None, "not inside <patient>/<0|1>/ folders"
    if parts[-3] != patient:
        return None, f"patient folder {parts[-3]!r} differs from patient {patient!r} in the name"
    if parts[-2] != str(label):
        return None, f"label folder {parts[-2]!r} differs from class{label} in the name"
    return PatchRecord(name, patient, x, y, label), ""


def scan_dataset(root: str | Path | bytes | BinaryIO, *, limits: ZipLimits = ZipLimits()) -> ScanResult:
    """Find every patch of the dataset layout in a folder or zip (see module docstring).

    Files that do not fit the layout are listed in ``rejected``; nothing usable -> DatasetError.
    """
    with PatchSource.open(root, limits=limits) as source:
        names, rejected = source.list_files()
        records: list[PatchRecord] = []
        seen: set[str] = set()
        duplicates = 0
        for name in names:
            record, reason = _check_layout(name)
            if record is None:
                rejected.append((name, reason))
                continue
            base = name.rsplit("/", 1)[-1]
            if base in seen:
                duplicates += 1
                continue
            seen.add(base)
            records.append(PatchRecord(source.path_of(name), record.patient, record.x, record.y, record.label))
    if not records:
        examples = "; ".join(f"{name}: {reason}" for name, reason in rejected[:5])
        found = f"{len(rejected)} file(s) rejected, e.g. {examples}" if rejected else "it holds no files"
        raise DatasetError(
            f"{source.root}: no patches found. Expected {EXPECTED_LAYOUT} "
            f"(optionally under one top-level folder); {found}"
        )
    return ScanResult(source.root, source.kind, records, rejected, duplicates)


def load_patches(source: PatchSource, records: Sequence[PatchRecord], *, size: int = 50, workers: int = 4,
                 progress: Callable[[int, int], None] | None = None,
                 errors: list[tuple[int, str]] | None = None) -> np.ndarray:
    """Decode records to (N, size, size, 3) uint8 in a thread pool; border crops padded with white.

    A file that cannot be read or decoded -> DatasetError naming it; when an ``errors`` list is given
    instead, (index, message) is appended to it and that patch is left white.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = np.empty((len(records), size, size, 3), dtype=np.uint8)

    def load_chunk(start: int) -> int:
        chunk = records[start:start + _CHUNK]
        for offset, record in enumerate(chunk):
            try:
                out[start + offset] = _load_patch(source, record, size)
            except DatasetError as exc:
                if errors is None:
                    raise
                errors.append((start + offset, str(exc)))
                out[start + offset] = 255
        return len(chunk)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = {pool.submit(load_chunk, start) for start in range(0, len(records), _CHUNK)}
        done_count = 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise error
                done_count += future.result()
            if progress is not None:
                progress(done_count, len(records))
    return out


@dataclass
class LabelledPatches:
    """The readable labelled patches of some patients, with what was left out and why."""

    patches: np.ndarray
    labels: np.ndarray
    patients: list[str]
    rejected: list[str]
    unreadable: list[str]


def load_labelled(data: str | Path, patients: Collection[str] | None = None, *,
                  progress: Callable[[int, int], None] | None = None) -> LabelledPatches:
    """Every labelled patch of `data` (of these patients only, if given); unreadable ones are left out and listed.

    Nothing to load, or nothing readable -> DatasetError.
    """
    scan = scan_dataset(data)
    records = [r for r in scan.records if r.label is not None and (patients is None or r.patient in patients)]
    if not records:
        raise DatasetError(f"no labelled patches in {data}" + (" for these patients" if patients is not None else ""))
    unreadable: list[tuple[int, str]] = []
    with PatchSource.open(data) as source:
        patches = load_patches(source, records, progress=progress, errors=unreadable)
    if len(unreadable) == len(records):
        raise DatasetError(f"none of the {len(records)} patches in {data} could be read, e.g. {unreadable[0][1]}")
    keep = np.ones(len(records), dtype=bool)
    keep[[index for index, _ in unreadable]] = False
    kept = [r for r, k in zip(records, keep) if k]
    return LabelledPatches(
        patches=patches[keep],
        labels=np.array([r.label for r in kept], dtype=np.int64),
        patients=[r.patient for r in kept],
        rejected=[f"{name}: {reason}" for name, reason in scan.rejected],
        unreadable=[message for _, message in sorted(unreadable)],
    )


def _load_patch(source: PatchSource, record: PatchRecord, size: int) -> np.ndarray:
    """One record as a (size, size, 3) patch; unreadable, undecodable or too large -> DatasetError."""
    try:
        image = decode_image(source.read_bytes(record.path), name=record.path)
        return pad_patch(image, size) if image.shape != (size, size, 3) else image
    except (ImageError, ArchiveError) as exc:  # its message names the patch already: not twice
        reason = str(exc).removeprefix(f"{record.path}: ")
        raise DatasetError(f"{record.path}: unusable patch: {reason}") from exc
    except ValueError as exc:  # pad_patch: larger than size
        raise DatasetError(f"{record.path}: {exc}") from exc


def iter_image_inputs(inputs: Sequence[str | Path], *, limits: ZipLimits = ZipLimits(),
                      refuse: Callable[[Path], IDCError | None] | None = None,
                      extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> Iterator[tuple[str, bytes | IDCError]]:
    """Yield (name, bytes) for each image in files, folders (recursive) and zips (members ``zip/name``).

    A failing item yields (name, error) and the iteration goes on. Folders give their files with one of
    `extensions` and the images of their zips, and zips only images (one with none yields an error); a file
    named explicitly is read whatever its extension. Files over ``limits.max_member_bytes`` are refused like
    oversized zip members.
    refuse(path): an error for a file not to read at all (the predict command's whole-slide files), else None.
    """
    return _image_inputs(inputs, limits, refuse, extensions, read=True)


def count_image_inputs(inputs: Sequence[str | Path], *, limits: ZipLimits = ZipLimits(),
                       refuse: Callable[[Path], IDCError | None] | None = None,
                       extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> int:
    """How many items iter_image_inputs yields for the same arguments (a progress total), reading no file's bytes
    (folders are listed and zips' directories read)."""
    return sum(1 for _ in _image_inputs(inputs, limits, refuse, extensions, read=False))


def _image_inputs(inputs: Sequence[str | Path], limits: ZipLimits, refuse: Callable[[Path], IDCError | None] | None,
                  extensions: tuple[str, ...], read: bool) -> Iterator[tuple[str, bytes | IDCError]]:
    """iter_image_inputs; with read=False every file and member that would be read is b"" instead."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (*extensions, ".zip"))
            if not files:
                yield str(path), ImageError(f"{path}: folder holds no image files ({_EXTENSION_LIST}) or zips")
            for file in files:
                if file.suffix.lower() == ".zip":  # read as a zip given by itself is
                    yield from iter_zip_images(str(file), file, limits, read=read)
                else:
                    yield str(file), _read_unless_refused(file, limits, refuse, read)
        elif path.suffix.lower() == ".zip" and path.is_file():
            yield from iter_zip_images(str(path), path, limits, read=read)
        else:
            yield str(path), _read_unless_refused(path, limits, refuse, read)


def _read_unless_refused(path: Path, limits: ZipLimits, refuse: Callable[[Path], IDCError | None] | None,
                         read: bool) -> bytes | IDCError:
    refused = refuse(path) if refuse is not None and path.is_file() else None
    if refused is not None:
        return refused
    return _read_file(path, limits) if read else b""


def _read_file(path: Path, limits: ZipLimits) -> bytes | IDCError:
    """The file's bytes, never reading more than the limit (a device or a growing file cannot hang it)."""
    try:
        if path.stat().st_size > limits.max_member_bytes:
            return ImageError(f"{path}: {path.stat().st_size:,} bytes, over the limit of "
                              f"{limits.max_member_bytes:,} bytes")
        with open(path, "rb") as handle:
            data = handle.read(limits.max_member_bytes + 1)
    except OSError as exc:
        return ImageError(f"{path}: cannot read file ({exc.strerror or exc})")
    if len(data) > limits.max_member_bytes:
        return ImageError(f"{path}: more than the limit of {limits.max_member_bytes:,} bytes")
    return data


def iter_zip_images(name: str, source: str | Path | bytes, limits: ZipLimits = ZipLimits(), *,
                    skip: Callable[[str], bool] | None = None, read: bool = True
                    ) -> Iterator[tuple[str, bytes | IDCError]]:
    """Yield (``name/member``, bytes | error) for each image member of the zip `source`, called `name`.

    A zip that cannot be opened, or that holds no image, is one (name, error); a refused member (unsafe path,
    nested archive, over a limit) is an error of its own and the rest go on. Members without an image
    extension, and those that `skip(member name)` is true for, are passed over. read=False: b"" for each
    member that would be read (to count them).
    """
    try:
        zf = open_zip(source, limits)
    except ArchiveError as exc:
        yield name, _named(name, exc)
        return
    with zf:
        try:
            members, rejected = safe_members(zf)
        except ArchiveError as exc:
            yield name, _named(name, exc)
            return
        for member_name, reason in rejected:
            yield f"{name}/{member_name}", ArchiveError(f"{name}/{member_name}: refused zip member ({reason})")
        images = [member for member in members if member.name.lower().endswith(IMAGE_EXTENSIONS)
                  and not (skip is not None and skip(member.name))]
        if not images and not rejected:
            yield name, ArchiveError(f"{name}: the zip holds no image files ({_EXTENSION_LIST})")
        for member in images:
            yield f"{name}/{member.name}", _read_zip_member(zf, member, limits) if read else b""


def _named(name: str, exc: ArchiveError) -> ArchiveError:
    """The error with its message starting with `name` (the zip as the user called it)."""
    text = named(name, str(exc))
    return exc if text == str(exc) else ArchiveError(text)


def _read_zip_member(zf: zipfile.ZipFile, member: ZipMember, limits: ZipLimits) -> bytes | IDCError:
    try:
        return read_member(zf, member.info, limits)
    except ArchiveError as exc:
        return exc
