"""Classify a batch of uploaded images as patches: one row per item, bad items reported, never fatal.

Each item is (name, bytes) or (name, IDCError) as yielded by expand_uploads / dataset.iter_image_inputs.
A patch-sized image (both sides <= 100 px) is padded or resized to 50x50 (the row's note says which);
a larger image is reported as a slide (it belongs on the slide page's tiling), never squashed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from idc_core import CLASS_NAMES, PATCH_SIZE, Progress
from idc_core.archive import ZipLimits, open_zip, read_member, safe_members
from idc_core.dataset import IMAGE_EXTENSIONS, parse_patch_name
from idc_core.errors import ArchiveError, IDCError
from idc_core.image_io import decode_image, fit_patch, is_patch_sized
from idc_core.metrics import threshold_metrics
from idc_core.predict import predict_patches
from idc_core.uncertainty import DEFAULT_SAMPLES, predict_with_uncertainty

SLIDE_NOTE = "larger than a patch: analyse it on the slide page"
ZIP_EXTENSIONS = (".zip",)
_SKIPPED_PREFIXES = ("__MACOSX/",)


@dataclass(frozen=True)
class ItemResult:
    """One input item: its prediction, or why it has none (error, or an image that is a slide)."""

    name: str
    prob_idc: float | None = None
    true_label: int | None = None
    note: str = ""
    error: str = ""
    is_slide: bool = False
    patch_index: int | None = None  # row of ClassifyResult.patches
    uncertainty: float | None = None  # higher = less sure (idc_core.uncertainty); None when not measured
    uncertain: bool | None = None  # above the model's cut, chosen on validation

    def label(self, threshold: float) -> int | None:
        """Predicted label (1 = IDC) at `threshold`, None without a prediction."""
        return None if self.prob_idc is None else int(self.prob_idc >= threshold)


@dataclass
class ClassifyResult:
    """Rows in input order and the 50x50 patches that were classified (for thumbnails and Grad-CAM)."""

    items: list[ItemResult]
    patches: np.ndarray  # (M, 50, 50, 3) uint8, M = number of predicted items
    threshold: float

    @property
    def predicted(self) -> list[ItemResult]:
        """The items that have a probability."""
        return [item for item in self.items if item.prob_idc is not None]

    @property
    def failed(self) -> list[ItemResult]:
        """The items that could not be read or decoded."""
        return [item for item in self.items if item.error]

    @property
    def slides(self) -> list[ItemResult]:
        """The images too large for a patch (to analyse on the slide page)."""
        return [item for item in self.items if item.is_slide]

    @property
    def measured_uncertainty(self) -> bool:
        """Whether the predicted items carry an uncertainty."""
        return any(item.uncertainty is not None for item in self.items)

    def rows(self, threshold: float | None = None) -> list[dict[str, Any]]:
        """Table rows (also the CSV): file, P(IDC), predicted and true label, correct, note, error; and
        uncertainty and uncertain when they were measured."""
        t = self.threshold if threshold is None else threshold
        with_uncertainty = self.measured_uncertainty
        out = []
        for item in self.items:
            pred = item.label(t)
            row = {
                "file": item.name,
                "p_idc": item.prob_idc,
                "predicted": CLASS_NAMES[pred] if pred is not None else None,
                "true": CLASS_NAMES[item.true_label] if item.true_label is not None else None,
                "correct": (pred == item.true_label) if pred is not None and item.true_label is not None else None,
            }
            if with_uncertainty:
                row.update(uncertainty=item.uncertainty, uncertain=item.uncertain)
            out.append({**row, "note": item.note, "error": item.error})
        return out

    def batch_metrics(self, threshold: float | None = None) -> dict[str, Any] | None:
        """threshold_metrics over the predicted items whose true label is known; None if there are none."""
        labelled = [(item.true_label, item.prob_idc) for item in self.items
                    if item.true_label is not None and item.prob_idc is not None]
        if not labelled:
            return None
        t = self.threshold if threshold is None else threshold
        out = threshold_metrics([y for y, _ in labelled], [p for _, p in labelled], t)
        out["n_labelled"] = len(labelled)
        return out


def true_label_from_name(name: str) -> int | None:
    """The true label carried by a name: ``..._class<C>.png``, or a parent folder named 0 or 1."""
    parsed = parse_patch_name(name)
    if parsed is not None:
        return parsed[3]
    parts = name.replace("\\", "/").split("/")
    if len(parts) >= 2 and parts[-2] in ("0", "1"):
        return int(parts[-2])
    return None


def expand_uploads(
    uploads: Iterable[tuple[str, bytes]], *, limits: ZipLimits = ZipLimits()
) -> Iterator[tuple[str, bytes | IDCError]]:
    """Uploaded files -> (name, bytes | error) per image; a .zip gives its image members ``zip/member``.

    Refused or unreadable members yield an error and the rest go on; members without an image
    extension (README, .DS_Store) and macOS resource folders are skipped.
    """
    for name, data in uploads:
        if not name.lower().endswith(ZIP_EXTENSIONS):
            yield name, data
            continue
        try:
            zf = open_zip(data, limits)
        except ArchiveError as exc:
            yield name, ArchiveError(f"{name}: {exc}")
            continue
        with zf:
            yield from _zip_images(name, zf, limits)


def _zip_images(name: str, zf: zipfile.ZipFile, limits: ZipLimits) -> Iterator[tuple[str, bytes | IDCError]]:
    try:
        members, rejected = safe_members(zf)
    except ArchiveError as exc:
        yield name, ArchiveError(f"{name}: {exc}")
        return
    for member_name, reason in rejected:
        yield f"{name}/{member_name}", ArchiveError(f"{name}/{member_name}: refused zip member ({reason})")
    images = [
        member for member in members
        if not member.name.startswith(_SKIPPED_PREFIXES) and not member.name.rsplit("/", 1)[-1].startswith(".")
        and member.name.lower().endswith(IMAGE_EXTENSIONS)
    ]
    if not images and not rejected:
        yield name, ArchiveError(f"{name}: the zip holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    for member in images:
        try:
            yield f"{name}/{member.name}", read_member(zf, member.info, limits)
        except ArchiveError as exc:
            yield f"{name}/{member.name}", exc


def classify_images(
    model: Any,
    items: Iterable[tuple[str, bytes | IDCError]],
    *,
    threshold: float,
    batch_size: int = 256,
    progress: Progress | None = None,
    uncertainty: dict[str, Any] | None = None,
) -> ClassifyResult:
    """Decode, fit and classify every item in batches of `batch_size`; failures become error rows.

    progress(done, total) is called after each batch (total = len(items) when known, else done).
    uncertainty: a model config's "uncertainty" entry to also measure each patch's uncertainty (None: not).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    results: list[ItemResult] = []
    patches: list[np.ndarray] = []
    pending: list[tuple[int, ItemResult]] = []  # (index in results, item awaiting its probability)
    scored: dict[int, dict[str, Any]] = {}
    cut = (uncertainty or {}).get("uncertain_above")

    def flush() -> None:
        if not pending:
            return
        batch = np.stack([patches[item.patch_index] for _, item in pending])  # type: ignore[index]
        if uncertainty is None:
            for (index, _), p in zip(pending, predict_patches(model, batch, batch_size=batch_size)):
                scored[index] = {"prob_idc": float(p)}
        else:
            measured = predict_with_uncertainty(
                model, batch, method=uncertainty.get("method", "confidence"), threshold=threshold,
                samples=int(uncertainty.get("samples") or DEFAULT_SAMPLES), batch_size=batch_size)
            for (index, _), p, u in zip(pending, measured.prob, measured.uncertainty):
                scored[index] = {"prob_idc": float(p), "uncertainty": float(u),
                                 "uncertain": None if cut is None else bool(u > cut)}
        pending.clear()
        if progress is not None:
            progress(len(results), total if total is not None else len(results))

    for name, data in items:
        results.append(_fit_item(name, data, patches))
        if results[-1].patch_index is not None:
            pending.append((len(results) - 1, results[-1]))
        if len(pending) >= batch_size:
            flush()
    flush()
    if progress is not None:
        progress(len(results), total if total is not None else len(results))
    items_out = [replace(item, **scored[i]) if i in scored else item for i, item in enumerate(results)]
    stacked = np.stack(patches) if patches else np.empty((0, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
    return ClassifyResult(items_out, stacked, float(threshold))


def _fit_item(name: str, data: bytes | IDCError, patches: list[np.ndarray]) -> ItemResult:
    """The item's row before prediction; a usable patch is appended to `patches`."""
    truth = true_label_from_name(name)
    if isinstance(data, IDCError):
        return ItemResult(name, true_label=truth, error=str(data))
    try:
        image = decode_image(data, name=name)
    except IDCError as exc:
        return ItemResult(name, true_label=truth, error=str(exc))
    height, width = image.shape[:2]
    if not is_patch_sized(image.shape, PATCH_SIZE):
        return ItemResult(name, true_label=truth, note=f"{width}x{height}, {SLIDE_NOTE}", is_slide=True)
    patch, note = fit_patch(image, PATCH_SIZE)
    patches.append(patch)
    return ItemResult(name, true_label=truth, note=note, patch_index=len(patches) - 1)

