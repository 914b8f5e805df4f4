"""Hostile and unusual inputs through idc_core's entry points, for the gaps the module tests leave.

Properties (hypothesis): damaged zips raise only the project's errors wherever a zip is accepted;
images of any size decode, fit a patch as documented, and tile fully as slides (also when blank).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile_files import dataset_files, encode, layout_name, tissue, zip_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idc_core.config import ModelConfig
from idc_core.data.archive import ZipLimits, open_zip, read_member, safe_members
from idc_core.data.dataset import PatchSource, iter_image_inputs, iter_zip_images, load_patches, scan_dataset
from idc_core.data.image_io import decode_image, fit_patch
from idc_core.data.pipeline import cached_patches
from idc_core.errors import ArchiveError, DatasetError, IDCError, ImageError, ImageTooLargeError, ModelError
from idc_core.inference.tiles import predict_slide
from idc_core.model.builders import build_model
from idc_core.model.folder import LoadedModel, default_model_dir, load_model_dir, save_model_dir
from idc_core.model.scorer import KerasScorer
from idc_core.workflows.evaluate import evaluate_model
from idc_core.wsi.truth import load_slide_input, read_truth_csv
from ui.uploads import expand_uploads

CORE = Path(__file__).resolve().parents[1] / "idc_core"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model():
    return build_model("cnn", weights=None, seed=0)


# --- slides: all background, thin strips, any size ------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (42, 50), (50, 49), (1, 400), (400, 1), (3, 3000), (120, 120)])
def test_blank_image_of_any_shape_is_a_slide_with_no_tissue(model, shape) -> None:
    result = predict_slide(model, np.full((*shape, 3), 255, np.uint8))
    assert (result.n_tissue, result.n_idc, result.idc_fraction) == (0, 0, 0.0)
    assert np.isnan(result.probs).all() and len(result.to_rows()) == len(result.coords)


def test_a_strip_thinner_than_the_minimum_tissue_has_no_tissue_tile(model) -> None:
    image = np.full((60, 400, 3), 255, np.uint8)
    image[:4] = tissue(4, 400)  # 8% of each top tile: below MIN_TISSUE (0.1)
    result = predict_slide(model, image)
    assert result.n_tissue == 0
    image[:30] = tissue(30, 400)  # 60% of each top tile
    assert predict_slide(model, image).n_tissue == 8


@FAST
@given(st.integers(1, 400), st.integers(1, 400), st.sampled_from([25, 50]))
def test_slide_tiles_of_any_image_size_cover_it_from_inside(model, height, width, stride) -> None:
    result = predict_slide(model, np.full((height, width, 3), 255, np.uint8), stride=stride)
    ys, xs = result.coords[:, 0], result.coords[:, 1]
    assert result.image_shape == (height, width) and result.n_tissue == 0
    assert ys.min() == 0 and xs.min() == 0 and ys.max() < height and xs.max() < width
    covered = np.zeros((height, width), bool)
    for y, x in result.coords:
        covered[y:y + 50, x:x + 50] = True
    assert covered.all()


@FAST
@given(st.integers(1, 260), st.integers(1, 260))
def test_image_of_any_size_decodes_and_fits_a_patch_as_documented(height, width) -> None:
    image = decode_image(encode(tissue(height, width)), name="any.png")
    assert image.shape == (height, width, 3)
    if height <= 100 and width <= 100:
        patch, note = fit_patch(image)
        assert patch.shape == (50, 50, 3) and patch.dtype == np.uint8
        expected = "" if (height, width) == (50, 50) else "padded" if max(height, width) <= 50 else "resized"
        assert note.startswith(expected) and (not note or f"from {width}x{height}" in note)
    else:
        with pytest.raises(ImageError, match=f"is {width}x{height}, larger than a patch"):
            fit_patch(image)


def test_patient_zip_with_coordinates_too_large_for_int64_is_refused_by_size() -> None:
    member = f"p/0/p_idx5_x{10**25}_y1_class0.png"
    data = zip_bytes({member: encode(tissue(50, 50)), layout_name("p", 0, 1, 1): encode(tissue(50, 50))})
    with pytest.raises(ImageTooLargeError, match=r"p\.zip: the rebuilt slide would be .* over the limit"):
        load_slide_input("p.zip", data)


def test_truth_csv_with_integers_too_large_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="truth: x, y and label must be integers"):
        read_truth_csv(f"x,y,label\n{10**25},1,1\n".encode(), name="truth")


# --- zips everywhere one is accepted: damaged bytes raise only the project's errors ---------------------------

SEED_ZIP = zip_bytes(dataset_files(("7",), per_class=1), zipfile.ZIP_DEFLATED)


@st.composite
def damaged_zips(draw: st.DrawFn) -> bytes:
    """The seed zip with a few bytes overwritten and maybe truncated (reaches the zip parser and inflater)."""
    data = bytearray(SEED_ZIP)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(len(data) // 2, len(data)))])


def _every_zip_reader(data: bytes) -> None:
    """Feed `data` to every idc_core function that accepts a zip; only IDCError may come out."""
    limits = ZipLimits(max_member_bytes=1 << 20)
    try:
        with open_zip(data, limits) as zf:
            members, _ = safe_members(zf)
            for member in members:
                try:
                    decode_image(read_member(zf, member.info, limits), name=member.name)
                except IDCError:
                    pass
    except IDCError:
        pass
    for call in (lambda: scan_dataset(data), lambda: load_slide_input("p.zip", data)):
        try:
            call()
        except IDCError:
            pass
    for _, item in iter_zip_images("u.zip", data, limits):
        assert isinstance(item, (bytes, IDCError))


@pytest.mark.filterwarnings("ignore::UserWarning")
@FAST
@given(damaged_zips())
def test_damaged_zips_raise_only_project_errors(data: bytes) -> None:
    _every_zip_reader(data)


@FAST
@given(st.binary(max_size=512).map(lambda tail: b"PK\x03\x04" + tail))
def test_arbitrary_zip_like_bytes_raise_only_project_errors(data: bytes) -> None:
    _every_zip_reader(data)


# --- batches of inputs: containers without images, devices ---------------------------------------------------

def test_folder_or_zip_without_images_is_one_error_not_silence(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("no images")
    (tmp_path / "text.zip").write_bytes(zip_bytes({"readme.txt": b"hi", "data.csv": b"1,2"}))
    results = list(iter_image_inputs([tmp_path / "docs", tmp_path / "text.zip"]))
    assert [name for name, _ in results] == [str(tmp_path / "docs"), str(tmp_path / "text.zip")]
    assert isinstance(results[0][1], ImageError) and "folder holds no image files (png/jpg" in str(results[0][1])
    assert isinstance(results[1][1], ArchiveError) and "zip holds no image files" in str(results[1][1])


@pytest.mark.parametrize("members", [{"readme.txt": b"hi"}, {"__MACOSX/._a.png": b"junk", ".DS_Store": b"x"}])
def test_uploaded_zip_without_images_is_one_error_row(members) -> None:
    [(name, error)] = list(expand_uploads([("up.zip", zip_bytes(members))]))
    assert name == "up.zip" and isinstance(error, ArchiveError) and "up.zip: the zip holds no image files" in str(error)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_file_is_read_only_up_to_the_limit() -> None:
    [(name, error)] = list(iter_image_inputs(["/dev/zero"], limits=ZipLimits(max_member_bytes=1000)))
    assert name == "/dev/zero" and isinstance(error, ImageError)
    assert "more than the limit of 1,000 bytes" in str(error)


def test_unknown_file_format_message_is_clear() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(b"%PDF-1.4 not an image", name="doc.pdf")
    assert str(info.value) == "doc.pdf: not a readable image (PNG, JPEG, TIFF, BMP, GIF, WebP): unknown file format"


# --- evaluation goes on past unreadable patches; training data must be clean ---------------------------------

def _labelled_zip(bad: dict[str, bytes]) -> bytes:
    return zip_bytes({**dataset_files(("1", "2"), per_class=2), **bad})


def test_load_patches_collects_unreadable_patches_when_asked(tmp_path: Path) -> None:
    bad = layout_name("1", 1, 999, 999)
    data = _labelled_zip({bad: b"\x89PNG broken"})
    scan = scan_dataset(data)
    errors: list[tuple[int, str]] = []
    with PatchSource.open(data) as source:
        patches = load_patches(source, scan.records, errors=errors)
        with pytest.raises(DatasetError, match=re.escape(bad)):
            load_patches(source, scan.records)
    index = [r.path for r in scan.records].index(bad)
    assert [i for i, _ in errors] == [index] and bad in errors[0][1]
    assert (patches[index] == 255).all()


def test_evaluation_leaves_out_unreadable_patches_and_lists_them(model, tmp_path: Path) -> None:
    loaded = LoadedModel(tmp_path, KerasScorer(model), ModelConfig(name="m", arch="cnn"), None, None)
    bad = layout_name("2", 0, 999, 999)
    data = io.BytesIO(_labelled_zip({bad: encode(tissue(60, 60))[:120], "../x.png": b"x"}))
    data.name = "upload.zip"  # as the app passes an upload
    report = evaluate_model(loaded, data)
    assert report["n_patches"] == 8
    assert len(report["data"]["unreadable"]) == 1 and bad in report["data"]["unreadable"][0]
    assert report["data"]["rejected"] == ["../x.png: parent directory (..) in path"]


def test_evaluation_with_no_readable_patch_is_a_dataset_error(model, tmp_path: Path) -> None:
    loaded = LoadedModel(tmp_path, KerasScorer(model), ModelConfig(name="m", arch="cnn"), None, None)
    data = zip_bytes({layout_name("1", label, 1, 1): b"\x89PNG broken" for label in (0, 1)})
    with pytest.raises(DatasetError, match="none of the 2 patches in .* could be read"):
        evaluate_model(loaded, data)


@pytest.mark.parametrize("damage", ["truncated", "pickled objects", "float pixels"])
def test_damaged_patch_cache_is_rebuilt_not_trusted(small_data: Path, tmp_path: Path, damage: str) -> None:
    scan = scan_dataset(small_data)
    records = scan.records[:3]
    with PatchSource.open(small_data) as source:
        expected = cached_patches(source, records, tmp_path)
        [cache] = tmp_path.glob("patches-*.npy")
        if damage == "truncated":
            cache.write_bytes(cache.read_bytes()[:200])
        elif damage == "pickled objects":
            np.save(cache, np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
        else:
            np.save(cache, expected.astype(np.float32))
        rebuilt = cached_patches(source, records, tmp_path)
    assert rebuilt.dtype == np.uint8
    np.testing.assert_array_equal(rebuilt, expected)


# --- model folders ------------------------------------------------------------------------------------------

def test_config_with_wrongly_typed_fields_is_a_model_error(model, tmp_path: Path) -> None:
    save_model_dir(tmp_path, model, ModelConfig(name="m", arch="cnn"))
    (tmp_path / "config.json").write_text('{"name": "m", "arch": "cnn", "split_patients": {"test": "12345"}}')
    with pytest.raises(ModelError, match="\"split_patients.test\" must be a list, got \"12345\""):
        load_model_dir(tmp_path)


def test_binary_default_file_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "DEFAULT").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ModelError, match="DEFAULT' cannot be read as text"):
        default_model_dir(tmp_path)


def test_no_code_is_ever_unpickled_or_loaded_unsafely() -> None:
    """Every Keras load uses safe_mode=True; nothing uses pickle or np.load(allow_pickle=True)."""
    sources = {str(path.relative_to(CORE)): path.read_text() for path in CORE.rglob("*.py")}
    for name, text in sources.items():
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib|marshal|shelve)\b", text, re.M), name
        assert not re.search(r"allow_pickle\s*=\s*True|safe_mode\s*=\s*False|\beval\(|\bexec\(", text), name
        for call in re.findall(r"load_model\([^)]*\)", text):
            assert "safe_mode=True" in call, (name, call)
        for call in re.findall(r"np\.load\([^)]*\)", text):
            assert "allow_pickle=False" in call, (name, call)
    assert "safe_mode=True" in sources["model/folder.py"]
