"""dataset: scanning the patch layout from folders and zips, loading patches, iterating user inputs."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from idc_core.data.archive import ZipLimits
from idc_core.data.dataset import (
    PatchRecord,
    PatchSource,
    iter_image_inputs,
    load_patches,
    parse_patch_name,
    scan_dataset,
)
from idc_core.data.image_io import decode_image, encode_png
from idc_core.errors import ArchiveError, DatasetError, ImageError

BORDER_CROP = "12930_idx5_x951_y2701_class0.png"  # 50 wide, 34 high


def _zip_folder(folder: Path, prefixes: tuple[str, ...] = ("",)) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for prefix in prefixes:
            for path in sorted(folder.rglob("*.png")):
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _copy(small_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small_data, tmp_path / "data"))


def test_parse_patch_name_reads_patient_position_and_label() -> None:
    assert parse_patch_name("10253_idx5_x1001_y751_class0.png") == ("10253", 1001, 751, 0)
    assert parse_patch_name("a/b/8863_idx5_x51_y2051_class1.png") == ("8863", 51, 2051, 1)
    assert parse_patch_name("8863_idx5_x51_y2051_class2.png") is None
    assert parse_patch_name("8863_x51_y2051_class1.png") is None
    assert parse_patch_name("8863_idx5_x51_y2051_class1.jpg") is None


def test_scan_folder_finds_every_patch(small_data: Path) -> None:
    result = scan_dataset(small_data)
    assert result.kind == "folder"
    assert result.summary() == {
        "patients": 7, "patches": 61, "class_counts": {"0": 37, "1": 24},
        "rejected": 0, "rejected_examples": [], "duplicates": 0,
    }
    assert result.patients() == ["10253", "10254", "10256", "10257", "10258", "10260", "12930"]
    record = next(r for r in result.records if r.path.endswith(BORDER_CROP))
    assert record == PatchRecord(str(small_data / "12930" / "0" / BORDER_CROP), "12930", 951, 2701, 0)
    assert Path(record.path).is_file()


def test_scan_zip_on_disk_and_in_memory(small_data: Path, tmp_path: Path) -> None:
    data = _zip_folder(small_data)
    path = tmp_path / "idc.zip"
    path.write_bytes(data)
    folder = scan_dataset(small_data)
    for source in (path, data):
        result = scan_dataset(source)
        assert result.kind == "zip"
        assert result.summary() == folder.summary()
        assert sorted(r.path for r in result.records)[0] == "10253/0/10253_idx5_x1001_y751_class0.png"
    assert scan_dataset(path).source_root == str(path)


def test_scan_kaggle_zip_with_top_folder_and_duplicate_copy(small_data: Path) -> None:
    data = _zip_folder(small_data, prefixes=("", "IDC_regular_ps50_idx5/"))
    summary = scan_dataset(data).summary()
    assert summary["patches"] == 61 and summary["patients"] == 7
    assert summary["duplicates"] == 61
    assert summary["rejected"] == 0


def test_scan_folder_with_one_extra_top_level_folder(small_data: Path, tmp_path: Path) -> None:
    shutil.copytree(small_data, tmp_path / "IDC_regular_ps50_idx5")
    result = scan_dataset(tmp_path)
    assert result.summary()["patches"] == 61


def test_mismatched_folders_are_rejected_with_reasons(small_data: Path, tmp_path: Path) -> None:
    root = _copy(small_data, tmp_path)
    good = root / "10253" / "0" / "10253_idx5_x1001_y751_class0.png"
    shutil.move(good, root / "10253" / "1" / good.name)
    wrong_patient = root / "10254" / "0" / "10253_idx5_x1_y1_class0.png"
    shutil.copy(root / "10253" / "1" / good.name, wrong_patient)
    result = scan_dataset(root)
    assert result.summary()["patches"] == 60
    reasons = dict(result.rejected)
    assert reasons["10253/1/10253_idx5_x1001_y751_class0.png"] == (
        "label folder '1' differs from class0 in the name")
    assert reasons["10254/0/10253_idx5_x1_y1_class0.png"] == (
        "patient folder '10254' differs from patient '10253' in the name")


def test_bad_names_are_reported_not_dropped_silently(small_data: Path, tmp_path: Path) -> None:
    root = _copy(small_data, tmp_path)
    (root / "README.txt").write_text("hello")
    (root / "10253" / "0" / "scan.png").write_bytes(b"x")
    (root / "10253" / "0" / ".DS_Store").write_bytes(b"x")
    (root / "10253_idx5_x1_y1_class0.png").write_bytes(b"x")
    summary = scan_dataset(root).summary()
    assert summary["patches"] == 61
    assert summary["rejected"] == 4
    reason = "name is not <patient>_idx5_x<X>_y<Y>_class<0|1>.png"
    assert summary["rejected_examples"] == [
        f"10253/0/.DS_Store: {reason}", f"10253/0/scan.png: {reason}",
        "10253_idx5_x1_y1_class0.png: not inside <patient>/<0|1>/ folders", f"README.txt: {reason}"]


def test_more_than_five_rejections_keep_five_examples(small_data: Path, tmp_path: Path) -> None:
    root = _copy(small_data, tmp_path)
    for i in range(8):
        (root / f"extra{i}.png").write_bytes(b"x")
    summary = scan_dataset(root).summary()
    assert summary["rejected"] == 8 and len(summary["rejected_examples"]) == 5


def test_empty_folder_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no patches found\. Expected <root>/<patient>/<0\|1>/.*holds no files"):
        scan_dataset(tmp_path)


def test_folder_without_patches_shows_rejected_examples(tmp_path: Path) -> None:
    (tmp_path / "slide.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"1 file\(s\) rejected, e\.g\. slide\.png: name is not"):
        scan_dataset(tmp_path)


def test_missing_root_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nothing: no such folder or zip file"):
        scan_dataset(tmp_path / "nothing")


def test_unsafe_zip_members_are_reported(small_data: Path) -> None:
    buffer = io.BytesIO(_zip_folder(small_data))
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr("../10253/0/10253_idx5_x1_y1_class0.png", b"x")
    result = scan_dataset(buffer.getvalue())
    assert result.summary()["patches"] == 61
    assert result.rejected == [("../10253/0/10253_idx5_x1_y1_class0.png", "parent directory (..) in path")]


def test_load_patches_from_folder_pads_the_border_crop(small_data: Path) -> None:
    result = scan_dataset(small_data)
    calls: list[tuple[int, int]] = []
    with PatchSource.open(small_data) as source:
        patches = load_patches(source, result.records, progress=lambda done, total: calls.append((done, total)))
    assert patches.shape == (61, 50, 50, 3) and patches.dtype == np.uint8
    assert calls[-1] == (61, 61)
    index = next(i for i, r in enumerate(result.records) if r.path.endswith(BORDER_CROP))
    crop = decode_image(Path(result.records[index].path).read_bytes())
    assert crop.shape == (34, 50, 3)
    np.testing.assert_array_equal(patches[index, :34], crop)
    assert (patches[index, 34:] == 255).all()


def test_relative_folder_root_gives_absolute_readable_paths(small_data: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(small_data.parent)
    result = scan_dataset("idc_small")
    assert result.source_root == str(small_data)
    assert all(Path(r.path).is_absolute() for r in result.records)
    with PatchSource.open("idc_small") as source:
        assert load_patches(source, result.records[:3]).shape == (3, 50, 50, 3)
        assert source.read_bytes("10253/0/10253_idx5_x1001_y751_class0.png")[:4] == b"\x89PNG"


def test_load_patches_from_zip_matches_folder_with_many_threads(small_data: Path) -> None:
    folder = scan_dataset(small_data)
    with PatchSource.open(small_data) as source:
        expected = load_patches(source, folder.records, workers=1)
    data = _zip_folder(small_data)
    zipped = scan_dataset(data)
    with PatchSource.open(data) as source:
        assert source.kind == "zip"
        got = load_patches(source, zipped.records, workers=8)
    np.testing.assert_array_equal(got, expected)


def test_load_patches_of_nothing_is_empty(small_data: Path) -> None:
    with PatchSource.open(small_data) as source:
        assert load_patches(source, [], size=50).shape == (0, 50, 50, 3)
        with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
            load_patches(source, [], workers=0)


def test_corrupt_patch_in_training_data_names_it(small_data: Path, tmp_path: Path) -> None:
    root = _copy(small_data, tmp_path)
    bad = root / "10256" / "1" / "10256_idx5_x9_y9_class1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = scan_dataset(root)
    with PatchSource.open(root) as source:
        with pytest.raises(DatasetError, match=r"10256_idx5_x9_y9_class1\.png: unusable patch"):
            load_patches(source, result.records, workers=2)


def test_oversized_patch_in_training_data_names_it(tmp_path: Path) -> None:
    folder = tmp_path / "7" / "1"
    folder.mkdir(parents=True)
    (folder / "7_idx5_x1_y1_class1.png").write_bytes(encode_png(np.zeros((60, 50, 3), np.uint8)))
    result = scan_dataset(tmp_path)
    with PatchSource.open(tmp_path) as source, pytest.raises(DatasetError, match="patch is 50x60, larger than size=50"):
        load_patches(source, result.records)


def test_read_bytes_of_unknown_files(small_data: Path, tmp_path: Path) -> None:
    with PatchSource.open(_zip_folder(small_data)) as source:
        with pytest.raises(DatasetError, match="nope.png: no such file in <zip in memory>"):
            source.read_bytes("nope.png")
    with PatchSource.open(tmp_path) as source:
        with pytest.raises(DatasetError, match="nope.png: cannot read file"):
            source.read_bytes("nope.png")


def test_iter_image_inputs_goes_on_after_failures(small_data: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(encode_png(np.zeros((5, 5, 3), np.uint8)))
    corrupt_image = tmp_path / "corrupt.png"
    corrupt_image.write_bytes(b"not an image")
    corrupt_zip = tmp_path / "corrupt.zip"
    corrupt_zip.write_bytes(b"PK\x03\x04 not really a zip")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(good, folder / "sub" / "a.PNG")
    (folder / "notes.txt").write_text("skipped: not an image extension")
    archive = tmp_path / "patches.zip"
    archive.write_bytes(_zip_folder(small_data / "10253"))
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../evil.png", b"x")
        zf.writestr("readme.txt", b"skipped")
    inputs = [good, corrupt_zip, tmp_path / "missing.png", corrupt_image, folder, archive]
    results = list(iter_image_inputs(inputs))
    names = [name for name, _ in results]
    assert names[:5] == [str(good), str(corrupt_zip), str(tmp_path / "missing.png"), str(corrupt_image),
                         str(folder / "sub" / "a.PNG")]
    assert results[0][1] == good.read_bytes()
    assert isinstance(results[1][1], ArchiveError) and "not a readable zip" in str(results[1][1])
    assert isinstance(results[2][1], ImageError) and "missing.png: cannot read file" in str(results[2][1])
    with pytest.raises(ImageError, match="corrupt.png: not a readable image"):
        decode_image(results[3][1], name=names[3])
    assert names[5] == f"{archive}/../evil.png"
    assert isinstance(results[5][1], ArchiveError) and "parent directory" in str(results[5][1])
    zipped = results[6:]
    assert len(zipped) == len(list((small_data / "10253").rglob("*.png")))
    assert all(isinstance(data, bytes) and decode_image(data).shape == (50, 50, 3) for _, data in zipped)
    assert zipped[0][0] == f"{archive}/0/10253_idx5_x1001_y751_class0.png"


def test_iter_image_inputs_refuses_oversized_files(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"x" * 200)
    [(name, error)] = iter_image_inputs([big], limits=ZipLimits(max_member_bytes=100))
    assert name == str(big)
    assert isinstance(error, ImageError) and "200 bytes, over the limit of 100 bytes" in str(error)
