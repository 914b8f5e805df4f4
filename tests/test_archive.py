"""archive: zips are checked from the central directory and unsafe members are refused, never extracted."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from idc_core.data.archive import ZipLimits, open_zip, read_member, safe_members
from idc_core.errors import ArchiveError


def _zip(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def _set_encrypted_flag(data: bytes, member_index: int = 0) -> bytes:
    """Set general-purpose flag bit 0 (encrypted) of one member in its local and central headers."""
    patched = bytearray(data)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = -1
        for _ in range(member_index + 1):
            position = patched.index(signature, position + 1)
        patched[position + flag_offset] |= 0x1
    return bytes(patched)


def test_open_zip_accepts_bytes_path_and_file_object(tmp_path: Path) -> None:
    data = _zip({"a.png": b"x"})
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    for source in (data, path, str(path), io.BytesIO(data)):
        with open_zip(source) as zf:
            assert zf.namelist() == ["a.png"]


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(ArchiveError, match="<zip in memory>: not a readable zip file"):
        open_zip(b"this is plain text, not a zip")


def test_corrupt_central_directory_is_refused(tmp_path: Path) -> None:
    data = _zip({"a.png": b"x" * 100, "b.png": b"y" * 100})
    path = tmp_path / "broken.zip"
    path.write_bytes(data[:-30])  # end-of-central-directory record cut
    with pytest.raises(ArchiveError, match=r"broken\.zip: not a readable zip file"):
        open_zip(path)


def test_missing_zip_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"gone\.zip: file not found"):
        open_zip(tmp_path / "gone.zip")


def test_empty_zip_is_refused() -> None:
    with pytest.raises(ArchiveError, match="the zip is empty"):
        open_zip(_zip({}))


def test_zip_of_only_folders_is_empty() -> None:
    with pytest.raises(ArchiveError, match="the zip is empty"):
        open_zip(_zip({"patients/": b"", "patients/1/": b""}))


def test_member_count_limit() -> None:
    data = _zip({f"{i}.png": b"x" for i in range(5)})
    with pytest.raises(ArchiveError, match="5 members, over the limit of 3"):
        open_zip(data, ZipLimits(max_members=3))


def test_total_size_limit() -> None:
    data = _zip({"a.png": b"x" * 600, "b.png": b"x" * 600})
    with pytest.raises(ArchiveError, match="1,200 bytes uncompressed, over the limit of 1,000 bytes"):
        open_zip(data, ZipLimits(max_total_bytes=1000))


def test_highly_compressed_zip_is_refused_as_a_bomb() -> None:
    data = _zip({"zeros.png": bytes(4 << 20)}, zipfile.ZIP_DEFLATED)
    assert len(data) < 20_000
    with pytest.raises(ArchiveError, match=r"compression ratio \d+:1, over the limit of 200:1 \(possible zip bomb\)"):
        open_zip(data)


def test_member_ratio_checked_when_reading() -> None:
    data = _zip({"zeros.png": bytes(2 << 20)}, zipfile.ZIP_DEFLATED)
    with open_zip(data, ZipLimits(max_ratio=1e6)) as zf:
        with pytest.raises(ArchiveError, match=r"zeros\.png: compression ratio \d+:1, over the limit of 200:1"):
            read_member(zf, zf.getinfo("zeros.png"), ZipLimits())
        assert len(read_member(zf, zf.getinfo("zeros.png"), ZipLimits(max_ratio=1e6))) == 2 << 20


def test_small_compressible_members_are_not_bombs() -> None:
    data = _zip({"notes.txt": bytes(5000), "a.png": b"x"}, zipfile.ZIP_DEFLATED)
    with open_zip(data) as zf:
        assert read_member(zf, zf.getinfo("notes.txt")) == bytes(5000)


def test_member_size_limit() -> None:
    with open_zip(_zip({"big.png": b"x" * 500})) as zf:
        with pytest.raises(ArchiveError, match="big.png: 500 bytes, over the member limit of 100 bytes"):
            read_member(zf, zf.getinfo("big.png"), ZipLimits(max_member_bytes=100))


def test_member_lying_about_its_size_is_refused() -> None:
    data = bytearray(_zip({"liar.png": b"z" * 1000}))
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")  # declared uncompressed size: 10
    with open_zip(bytes(data)) as zf:
        with pytest.raises(ArchiveError, match=r"liar\.png: cannot read zip member"):
            read_member(zf, zf.getinfo("liar.png"))


def test_corrupt_member_data_is_refused() -> None:
    data = bytearray(_zip({"a.png": b"abcdefgh" * 10}))
    data[data.index(b"abcdefgh")] ^= 0xFF
    with open_zip(bytes(data)) as zf:
        with pytest.raises(ArchiveError, match=r"a\.png: cannot read zip member \(Bad CRC-32"):
            read_member(zf, zf.getinfo("a.png"))


def test_encrypted_member_is_rejected_and_unreadable() -> None:
    data = _set_encrypted_flag(_zip({"secret.png": b"x", "open.png": b"y"}), member_index=0)
    with open_zip(data) as zf:
        members, rejected = safe_members(zf)
        assert [m.name for m in members] == ["open.png"]
        assert rejected == [("secret.png", "encrypted")]
        with pytest.raises(ArchiveError, match="secret.png: member is encrypted"):
            read_member(zf, zf.getinfo("secret.png"))


def test_every_member_encrypted_is_an_archive_error() -> None:
    data = _set_encrypted_flag(_zip({"secret.png": b"x"}))
    with open_zip(io.BytesIO(data)) as zf, pytest.raises(ArchiveError, match="<zip in memory>: every file is"):
        safe_members(zf)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("../evil.png", "parent directory (..) in path"), ("a/../../evil.png", "parent directory (..) in path"),
     ("..\\evil.png", "parent directory (..) in path"), ("/abs.png", "absolute path"),
     ("C:/windows/evil.png", "absolute path"), ("inner.zip", "nested archive (not opened)"),
     ("data/more.tar.gz", "nested archive (not opened)")],
)
def test_unsafe_member_names_are_rejected(name: str, reason: str) -> None:
    with open_zip(_zip({name: b"x", "ok.png": b"y"})) as zf:
        members, rejected = safe_members(zf)
    assert [m.name for m in members] == ["ok.png"]
    assert rejected == [(name, reason)]


def test_symlink_member_is_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        link = zipfile.ZipInfo("link.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("real.png", b"y")
    with open_zip(buffer.getvalue()) as zf:
        members, rejected = safe_members(zf)
    assert [m.name for m in members] == ["real.png"]
    assert rejected == [("link.png", "symbolic link")]


def test_member_names_are_normalised_and_folders_skipped() -> None:
    data = _zip({"top/": b"", "./top//a.png": b"1", "win\\dir\\b.png": b"2"})
    with open_zip(data) as zf:
        members, rejected = safe_members(zf)
        assert [m.name for m in members] == ["top/a.png", "win/dir/b.png"]
        assert rejected == []
        assert read_member(zf, members[1].info) == b"2"


def test_nothing_is_written_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    data = _zip({"../evil.png": b"x", "/abs.png": b"x", "ok.png": b"y"})
    with open_zip(data) as zf:
        members, _ = safe_members(zf)
        assert [read_member(zf, m.info) for m in members] == [b"y"]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
