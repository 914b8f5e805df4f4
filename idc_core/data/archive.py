"""Safe zip reading: limits checked from the central directory, unsafe members refused, nothing extracted."""

from __future__ import annotations

import io
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from idc_core.errors import ArchiveError

_NESTED_ARCHIVE = re.compile(r"\.(zip|tar|tgz|gz|bz2|tbz2|xz|txz|zst|7z|rar|lz4|lzma)$", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")
# Compression ratios are only judged on members/archives at least this big: tiny files of zeros
# compress 100:1 and more without being a threat.
RATIO_MIN_BYTES = 1 << 20
IN_MEMORY = "<zip in memory>"  # how a zip given as bytes is named in messages


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on what a zip may declare before anything is decompressed."""

    max_members: int = 600_000
    max_total_bytes: int = 16 * 1024**3
    max_member_bytes: int = 64 * 1024**2
    max_ratio: float = 200.0


@dataclass(frozen=True)
class ZipMember:
    """A readable file member: its normalised posix name and its ZipInfo."""

    name: str
    info: zipfile.ZipInfo


def open_zip(source: str | Path | bytes | BinaryIO, limits: ZipLimits = ZipLimits()) -> zipfile.ZipFile:
    """Open a zip read-only after checking it against ``limits``; corrupt/empty/too large -> ArchiveError."""
    label = str(source) if isinstance(source, (str, Path)) else str(getattr(source, "name", IN_MEMORY))
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        zf = zipfile.ZipFile(source)
    except FileNotFoundError as exc:
        raise ArchiveError(f"{label}: file not found") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged directory fails with many exception types
        raise ArchiveError(f"{label}: not a readable zip file ({exc})") from exc
    try:
        _check_limits(zf, label, limits)
    except ArchiveError:
        zf.close()
        raise
    return zf


def _check_limits(zf: zipfile.ZipFile, label: str, limits: ZipLimits) -> None:
    infos = zf.infolist()
    files = [info for info in infos if not info.is_dir()]
    if not files:
        raise ArchiveError(f"{label}: the zip is empty (no files)")
    if len(infos) > limits.max_members:
        raise ArchiveError(f"{label}: {len(infos):,} members, over the limit of {limits.max_members:,}")
    total = sum(info.file_size for info in files)
    if total > limits.max_total_bytes:
        raise ArchiveError(
            f"{label}: {total:,} bytes uncompressed, over the limit of {limits.max_total_bytes:,} bytes"
        )
    packed = sum(info.compress_size for info in files)
    if total >= RATIO_MIN_BYTES and total / max(packed, 1) > limits.max_ratio:
        raise ArchiveError(
            f"{label}: compression ratio {total / max(packed, 1):.0f}:1, over the limit of "
            f"{limits.max_ratio:.0f}:1 (possible zip bomb)"
        )


def _rejection(info: zipfile.ZipInfo, parts: list[str]) -> str | None:
    """Why a file member must not be read, or None."""
    raw = info.filename.replace("\\", "/")
    if "\x00" in raw:
        return "NUL byte in name"
    if raw.startswith("/") or _DRIVE.match(raw):
        return "absolute path"
    if ".." in parts:
        return "parent directory (..) in path"
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted"
    if _NESTED_ARCHIVE.search(raw):
        return "nested archive (not opened)"
    return None


def safe_members(zf: zipfile.ZipFile) -> tuple[list[ZipMember], list[tuple[str, str]]]:
    """Split file members into readable ones and rejected (name, reason); directories are skipped.

    Every file member encrypted -> ArchiveError.
    """
    members: list[ZipMember] = []
    rejected: list[tuple[str, str]] = []
    encrypted = 0
    for info in zf.infolist():
        if info.is_dir():
            continue
        parts = [part for part in info.filename.replace("\\", "/").split("/") if part not in ("", ".")]
        reason = _rejection(info, parts)
        if reason is None:
            members.append(ZipMember("/".join(parts), info))
        else:
            rejected.append((info.filename, reason))
            encrypted += reason == "encrypted"
    if encrypted and encrypted == len(members) + len(rejected):
        raise ArchiveError(f"{zf.filename or IN_MEMORY}: every file is encrypted (password-protected zip)")
    return members, rejected


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ZipLimits = ZipLimits()) -> bytes:
    """Read one member, never more than ``limits.max_member_bytes``; unsafe or damaged -> ArchiveError."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{name}: member is encrypted")
    if info.file_size > limits.max_member_bytes:
        raise ArchiveError(
            f"{name}: {info.file_size:,} bytes, over the member limit of {limits.max_member_bytes:,} bytes"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size >= RATIO_MIN_BYTES and ratio > limits.max_ratio:
        raise ArchiveError(
            f"{name}: compression ratio {ratio:.0f}:1, over the limit of {limits.max_ratio:.0f}:1 "
            "(possible zip bomb)"
        )
    try:
        with zf.open(info) as member:
            data = member.read(limits.max_member_bytes + 1)
    except Exception as exc:  # noqa: BLE001 - CRC, zlib, unsupported method, truncated data...
        raise ArchiveError(f"{name}: cannot read zip member ({exc})") from exc
    if len(data) > limits.max_member_bytes:
        raise ArchiveError(f"{name}: more than the member limit of {limits.max_member_bytes:,} bytes")
    return data
