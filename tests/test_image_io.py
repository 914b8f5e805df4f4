"""image_io: decoding every mode and format to RGB uint8, refusing bad or oversized input."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from idc_core.data.image_io import (
    DEFAULT_MAX_PIXELS,
    decode_image,
    encode_png,
    fit_patch,
    is_patch_sized,
    pad_patch,
    read_image,
)
from idc_core.errors import IDCError, ImageError, ImageTooLargeError


def _encode(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that is only a signature, an IHDR claiming width x height, and IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _assert_rgb(array: np.ndarray, height: int, width: int) -> None:
    assert array.shape == (height, width, 3)
    assert array.dtype == np.uint8
    assert array.flags.c_contiguous


def test_rgb_png_round_trips_exactly() -> None:
    image = _rgb(50, 50)
    decoded = decode_image(encode_png(image))
    _assert_rgb(decoded, 50, 50)
    np.testing.assert_array_equal(decoded, image)


def test_grayscale_l_becomes_three_equal_channels() -> None:
    decoded = decode_image(_encode(Image.new("L", (4, 3), 77)))
    _assert_rgb(decoded, 3, 4)
    assert (decoded == 77).all()


def test_bilevel_mode_1_becomes_black_and_white() -> None:
    decoded = decode_image(_encode(Image.new("1", (2, 2), 1)))
    assert (decoded == 255).all()


@pytest.mark.parametrize(("mode", "fmt"), [("LA", "PNG"), ("RGBA", "PNG"), ("PA", "TIFF"), ("RGBA", "TIFF")])
def test_transparent_pixels_are_composited_on_white(mode: str, fmt: str) -> None:
    image = Image.new(mode, (3, 2))  # all channels 0: black and fully transparent
    decoded = decode_image(_encode(image, fmt))
    _assert_rgb(decoded, 2, 3)
    assert (decoded == 255).all()


def test_half_transparent_black_is_mid_grey() -> None:
    decoded = decode_image(_encode(Image.new("RGBA", (2, 2), (0, 0, 0, 128))))
    assert np.all(np.abs(decoded.astype(int) - 127) <= 1)


def test_opaque_la_keeps_its_grey() -> None:
    decoded = decode_image(_encode(Image.new("LA", (2, 2), (40, 255))))
    assert (decoded == 40).all()


def test_palette_image_is_expanded_to_rgb() -> None:
    image = Image.new("P", (3, 3), 1)
    image.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    decoded = decode_image(_encode(image))
    assert decoded[0, 0].tolist() == [200, 10, 20]


def test_palette_with_transparent_index_becomes_white() -> None:
    image = Image.new("P", (2, 2), 1)
    image.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    decoded = decode_image(_encode(image, transparency=1))
    assert (decoded == 255).all()


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    data = _encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"
    decoded = decode_image(data)
    _assert_rgb(decoded, 8, 8)
    red, green, blue = decoded[4, 4].astype(int)
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_scaled_to_8_bit(fmt: str) -> None:
    values = np.array([[0, 65535, 257 * 100, 30000]], dtype=np.uint16)
    data = _encode(Image.fromarray(values), fmt)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "I;16"
    decoded = decode_image(data)
    assert decoded[0, :, 0].tolist() == [0, 255, 100, 117]
    assert (decoded[..., 0] == decoded[..., 2]).all()


def test_32_bit_integer_tiff_is_clipped_then_scaled() -> None:
    values = np.array([[-5, 70000, 257]], dtype=np.int32)
    decoded = decode_image(_encode(Image.fromarray(values), "TIFF"))
    assert decoded[0, :, 1].tolist() == [0, 255, 1]


def test_float_tiff_in_unit_range_is_scaled_by_255() -> None:
    values = np.array([[0.0, 1.0, 0.5, np.nan]], dtype=np.float32)
    decoded = decode_image(_encode(Image.fromarray(values), "TIFF"))
    assert decoded[0, :, 0].tolist() == [0, 255, 128, 0]


def test_float_tiff_above_one_is_clipped_to_255() -> None:
    values = np.array([[0.0, 200.0, 300.0, -4.0]], dtype=np.float32)
    decoded = decode_image(_encode(Image.fromarray(values), "TIFF"))
    assert decoded[0, :, 0].tolist() == [0, 200, 255, 0]


def test_multi_page_tiff_gives_the_first_page() -> None:
    first = Image.new("RGB", (5, 4), (255, 0, 0))
    second = Image.new("RGB", (9, 9), (0, 0, 255))
    data = _encode(first, "TIFF", save_all=True, append_images=[second])
    with Image.open(io.BytesIO(data)) as check:
        assert check.n_frames == 2
    decoded = decode_image(data)
    _assert_rgb(decoded, 4, 5)
    assert decoded[0, 0].tolist() == [255, 0, 0]


def test_exif_orientation_6_swaps_the_sides() -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(_encode(image, "JPEG", exif=exif, quality=95))
    _assert_rgb(decoded, 40, 20)
    assert decoded[:10].mean() > 200  # the left band is now at the top
    assert decoded[20:].mean() < 50


def test_png_named_jpg_is_decoded_by_content(tmp_path) -> None:
    path = tmp_path / "patch.jpg"
    image = _rgb(7, 9)
    path.write_bytes(encode_png(image))
    np.testing.assert_array_equal(read_image(path), image)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (42, 50), (50, 49), (1, 3000), (3000, 1)])
def test_odd_sizes_decode_with_their_shape(height: int, width: int) -> None:
    image = _rgb(height, width, seed=height + width)
    decoded = decode_image(encode_png(image))
    _assert_rgb(decoded, height, width)
    np.testing.assert_array_equal(decoded, image)


def test_empty_bytes_are_refused_naming_the_file() -> None:
    with pytest.raises(ImageError, match=r"upload\.png: empty file \(0 bytes\)"):
        decode_image(b"", name="upload.png")


@pytest.mark.parametrize(
    "data",
    [b"hello, this is a text file\n", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
     b"\x7fELF\x02\x01\x01" + b"\x00" * 57],
    ids=["text", "pdf", "elf"],
)
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(ImageError, match=r"notes\.bin: not a readable image"):
        decode_image(data, name="notes.bin")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused(fmt: str) -> None:
    data = _encode(Image.fromarray(_rgb(60, 60)), fmt)
    with pytest.raises(ImageError, match=r"cut\.img: ") as info:
        decode_image(data[: len(data) // 2], name="cut.img")
    assert not isinstance(info.value, ImageTooLargeError)


def test_header_over_max_pixels_is_refused_before_decoding(monkeypatch) -> None:
    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    data = encode_png(_rgb(100, 100))
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    expected = r"big\.png: image is 100x100 = 10,000 pixels, over the limit of 5,000 pixels"
    with pytest.raises(ImageTooLargeError, match=expected):
        decode_image(data, name="big.png", max_pixels=5_000)


def test_crafted_huge_png_header_is_refused_with_the_limit() -> None:
    data = _png_header(100_000, 100_000)
    assert len(data) < 100
    with pytest.raises(ImageTooLargeError, match=rf"bomb\.png: .*limit is {DEFAULT_MAX_PIXELS:,} pixels"):
        decode_image(data, name="bomb.png")


def test_pillow_bomb_warning_turned_error_is_image_too_large() -> None:
    data = _png_header(12_000, 8_000)  # 96 M pixels: over Pillow's warning level, under its error level
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLargeError, match=r"limit is 200,000,000 pixels"):
            decode_image(data, name="b.png", max_pixels=200_000_000)


def test_pillow_bomb_warning_left_as_warning_still_ends_in_image_too_large() -> None:
    data = _png_header(12_000, 8_000)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ImageTooLargeError, match="96,000,000 pixels"):
        decode_image(data, name="b.png")


def test_header_just_under_default_limit_passes_the_size_check() -> None:
    data = _png_header(6_000, 10_000)  # 60 M pixels exactly: allowed, then fails as truncated
    with pytest.raises(ImageError, match="corrupt or truncated") as info:
        decode_image(data)
    assert not isinstance(info.value, ImageTooLargeError)


def test_max_pixels_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pixels must be >= 1, got 0"):
        decode_image(b"x", max_pixels=0)


def test_read_image_missing_file_names_it(tmp_path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError, match=r"nope\.png: cannot read file"):
        read_image(missing)


def test_read_image_of_a_folder_is_refused(tmp_path) -> None:
    with pytest.raises(ImageError, match="cannot read file"):
        read_image(tmp_path)


def test_pad_patch_fills_bottom_and_right_with_white() -> None:
    crop = _rgb(34, 50)
    padded = pad_patch(crop)
    assert padded.shape == (50, 50, 3)
    np.testing.assert_array_equal(padded[:34], crop)
    assert (padded[34:] == 255).all()
    assert (pad_patch(_rgb(3, 2), size=5, fill=0)[:, 2:] == 0).all()


def test_pad_patch_refuses_larger_patches_and_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="patch is 51x50, larger than size=50"):
        pad_patch(_rgb(50, 51))
    with pytest.raises(ValueError, match=r"must be \(H, W, 3\)"):
        pad_patch(np.zeros((5, 5), np.uint8))


def test_fit_patch_keeps_an_exact_patch() -> None:
    patch = _rgb(50, 50)
    fitted, note = fit_patch(patch)
    assert fitted is patch and note == ""


def test_fit_patch_pads_a_border_crop() -> None:
    fitted, note = fit_patch(_rgb(42, 50))
    assert fitted.shape == (50, 50, 3) and note == "padded from 50x42"
    assert (fitted[42:] == 255).all()


def test_fit_patch_resizes_up_to_twice_the_size() -> None:
    fitted, note = fit_patch(np.full((60, 100, 3), 90, np.uint8))
    assert fitted.shape == (50, 50, 3) and note == "resized from 100x60"
    assert (fitted == 90).all()


def test_fit_patch_refuses_slide_sized_images() -> None:
    with pytest.raises(ImageError, match="image is 101x50, larger than a patch: analyse it as a slide"):
        fit_patch(_rgb(50, 101))


def test_is_patch_sized_limit_is_twice_the_size() -> None:
    assert is_patch_sized((100, 100, 3))
    assert not is_patch_sized((101, 20, 3))
    assert is_patch_sized((20, 20), size=10) and not is_patch_sized((21, 5), size=10)


def test_encode_png_refuses_non_rgb_uint8() -> None:
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\), got float64"):
        encode_png(np.zeros((2, 2, 3)))


# Property: whatever the bytes, decode_image returns RGB uint8 or raises one of the project's errors.

def _seed_files() -> list[bytes]:
    image = Image.fromarray(np.arange(12 * 10 * 3, dtype=np.uint8).reshape(12, 10, 3))
    files = []
    for fmt in ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        files.append(buffer.getvalue())
    return files


SEEDS = _seed_files()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A real image file with a few bytes overwritten and maybe truncated: reaches the decoders."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


def _check(data: bytes) -> None:
    try:
        array = decode_image(data, name="fuzz", max_pixels=1_000_000)
    except IDCError:
        return
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3


# Expected Pillow warnings here: damaged TIFF tags (UserWarning), headers over Image.MAX_IMAGE_PIXELS.
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_raise_only_project_errors(data: bytes) -> None:
    _check(data)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_images())
def test_damaged_image_files_raise_only_project_errors(data: bytes) -> None:
    _check(data)
