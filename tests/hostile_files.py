"""Small hostile and unusual input files, made in memory for the hostile-input tests (never read from disk)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image

PINK = (200, 80, 160)  # a saturated H&E-like colour: tissue for tissue_mask


def tissue(height: int, width: int, seed: int = 0) -> np.ndarray:
    """RGB uint8 image of pink "tissue" with some texture."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = PINK
    image[..., 1] = np.random.default_rng(seed).integers(60, 100, (height, width))
    return image


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
    """Encode a Pillow image (or an RGB array) in `fmt`."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only a signature, an IHDR claiming width x height, and IEND (a pixel bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def zip_bytes(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip holding `files` (names written as given, `..` and absolute paths included)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def encrypted(data: bytes) -> bytes:
    """Set the 'encrypted' flag of every member of a zip, in local and central headers."""
    patched = bytearray(data)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = patched.find(signature)
        while position != -1:
            patched[position + flag_offset] |= 0x1
            position = patched.find(signature, position + 1)
    return bytes(patched)


def readable_images() -> dict[str, bytes]:
    """Files in every mode/format decode_image converts to RGB (name -> bytes)."""
    rgb = tissue(50, 50)
    gray = Image.fromarray(rgb[..., 1])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    pages = io.BytesIO()
    Image.fromarray(rgb).save(pages, format="TIFF", save_all=True, append_images=[gray.convert("RGB")])
    return {
        "mode_l.png": encode(gray),
        "mode_la.png": encode(Image.merge("LA", (gray, gray))),
        "mode_rgba.png": encode(Image.fromarray(rgb).convert("RGBA")),
        "mode_p.png": encode(Image.fromarray(rgb).convert("P")),
        "cmyk.jpg": encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "gray16.png": encode(Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).convert("I;16")),
        "gray16.tif": encode(Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).convert("I;16"), "TIFF"),
        "pages.tif": pages.getvalue(),
        "exif_rotated.jpg": encode(Image.fromarray(tissue(50, 40)), "JPEG", exif=exif),
        "png_named.jpg": encode(rgb),
        "size_1x1.png": encode(tissue(1, 1)),
        "size_50x42.png": encode(tissue(42, 50)),
        "size_49x50.png": encode(tissue(50, 49)),
    }


def unreadable_files() -> dict[str, str | bytes]:
    """Files that are not usable images (name -> bytes), each with a clear reason."""
    png, jpeg, tiff = encode(tissue(60, 60)), encode(tissue(60, 60), "JPEG"), encode(tissue(60, 60), "TIFF")
    return {
        "text.png": b"just some text, not an image\n",
        "doc.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        "program.exe": b"MZ\x90\x00" + bytes(60) + b"\x7fELF\x02\x01\x01" + bytes(200),
        "zero_bytes.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "truncated.tif": tiff[: len(tiff) // 2],
        "zip_named.png": zip_bytes({"a.png": png}),
        "pixel_bomb.png": png_header(100_000, 100_000),
    }


def hostile_zips() -> dict[str, bytes]:
    """Zips that must be refused as a whole (name -> bytes)."""
    good = encode(tissue(50, 50))
    return {
        "corrupt.zip": b"PK\x03\x04" + bytes(40) + b"not really a zip",
        "empty.zip": zip_bytes({}),
        "encrypted.zip": encrypted(zip_bytes({"a.png": good, "b.png": good})),
        "bomb.zip": zip_bytes({"zeros.png": bytes(8 << 20)}, zipfile.ZIP_DEFLATED),
    }


def layout_name(patient: str, label: int, x: int, y: int) -> str:
    """A member path in the dataset layout."""
    return f"{patient}/{label}/{patient}_idx5_x{x}_y{y}_class{label}.png"


def dataset_files(patients: tuple[str, ...] = ("101", "102", "103"), per_class: int = 2) -> dict[str, bytes]:
    """A tiny dataset in the layout: `per_class` patches of each class for each patient."""
    files = {}
    for p, patient in enumerate(patients):
        for label in (0, 1):
            for i in range(per_class):
                files[layout_name(patient, label, 1 + 50 * i, 1 + 50 * label)] = encode(
                    tissue(50, 50, seed=p * 10 + label * 3 + i))
    return files
