"""One way from input items to P(IDC): the app's Classify page, the predict command and the export check use it.

An item is (name, bytes) or (name, IDCError), as dataset.iter_image_inputs yields them. A patch-sized image
(both sides <= 100 px) is padded or resized to 50x50 (the note says which) and scored in batches with the
other items' patches. A larger image is a slide: with slides="tile" it is tiled at its own pixels
(inference.tiles.predict_slide) and reported by its most suspicious tissue tile; with slides="flag" it is only marked,
for a caller that analyses slides at the model's scale (the app's slide page). An item that fails gets an
error naming it, and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from idc_core import PATCH_SIZE, Progress
from idc_core.config import UncertaintySettings
from idc_core.data.dataset import parse_patch_name
from idc_core.data.image_io import decode_image, fit_patch, is_patch_sized
from idc_core.errors import IDCError, ImageError, named, one_line
from idc_core.inference.predict import Model, predict_patches
from idc_core.inference.tiles import predict_slide
from idc_core.inference.uncertainty import predict_measured
from idc_core.wsi.result import SlideResult

SLIDE_MODES = ("flag", "tile")


@dataclass(frozen=True)
class ItemResult:
    """One input item: its prediction, or why it has none (an error, or an image that is a slide)."""

    name: str
    prob_idc: float | None = None  # a slide's: its most suspicious tissue tile's (slides="tile")
    true_label: int | None = None
    note: str = ""
    error: str = ""
    is_slide: bool = False
    uncertainty: float | None = None  # higher = less sure (idc_core.inference.uncertainty); None when not measured
    uncertain: bool | None = None  # above the model's cut, chosen on validation
    patch: np.ndarray | None = field(default=None, repr=False, compare=False)  # the 50x50 patch that was scored
    slide: SlideResult | None = field(default=None, repr=False, compare=False)  # slides="tile": every tile

    def label(self, threshold: float) -> int | None:
        """Predicted label (1 = IDC) at `threshold`, None without a prediction."""
        return None if self.prob_idc is None else int(self.prob_idc >= threshold)


def true_label_from_name(name: str) -> int | None:
    """The true label carried by a name: ``..._class<C>.png``, or a parent folder named 0 or 1."""
    parsed = parse_patch_name(name)
    if parsed is not None:
        return parsed[3]
    parts = name.replace("\\", "/").split("/")
    if len(parts) >= 2 and parts[-2] in ("0", "1"):
        return int(parts[-2])
    return None


def error_text(name: str, exc: BaseException) -> str:
    """One line naming the input once: the error's text, prefixed with `name` unless it starts with it."""
    text = one_line(exc)
    if not isinstance(exc, IDCError):
        text = f"unexpected {type(exc).__name__}: {text}"
    return named(name, text)


def fit_item(name: str, data: bytes | IDCError) -> tuple[ItemResult, np.ndarray | None]:
    """The item before scoring (with its 50x50 patch when it is patch-sized) and, for a slide, its image."""
    truth = true_label_from_name(name)
    try:
        if isinstance(data, IDCError):
            raise data
        image = decode_image(data, name=name)
        height, width = image.shape[:2]
        if not is_patch_sized(image.shape, PATCH_SIZE):
            return ItemResult(name, true_label=truth, note=f"{width}x{height}, larger than a patch",
                              is_slide=True), image
        patch, note = fit_patch(image, PATCH_SIZE)
    except Exception as exc:  # noqa: BLE001 - one input, even one that hits a bug, never loses the batch
        return ItemResult(name, true_label=truth, error=error_text(name, exc)), None
    return ItemResult(name, true_label=truth, note=note, patch=patch), None


def score_items(
    model: Model,
    items: Iterable[tuple[str, bytes | IDCError]],
    *,
    threshold: float,
    batch_size: int = 256,
    uncertainty: UncertaintySettings | None = None,
    slides: str = "flag",
    progress: Progress | None = None,
) -> Iterator[ItemResult]:
    """One ItemResult per item, in input order, each as soon as its batch is scored.

    uncertainty: a model's settings (ModelConfig.uncertainty), to also measure each patch's uncertainty (None: not).
    progress(done, total) after each batch (total = len(items) when it has one, else done).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if slides not in SLIDE_MODES:
        raise ValueError(f"slides must be one of {SLIDE_MODES}, got {slides!r}")
    total = len(items) if isinstance(items, Sized) else None
    return _scored(model, items, threshold, batch_size, uncertainty, slides == "tile", progress, total)


def _scored(model: Model, items: Iterable[tuple[str, bytes | IDCError]], threshold: float, batch_size: int,
            uncertainty: UncertaintySettings | None, tile: bool, progress: Progress | None,
            total: int | None) -> Iterator[ItemResult]:
    """score_items' generator (its arguments are checked when it is called, not when it is first read)."""
    queue: list[ItemResult] = []  # in input order, waiting for their batch
    done = 0

    def flush() -> Iterator[ItemResult]:
        nonlocal done
        if not queue:
            return
        scored = list(_score_queue(model, queue, threshold, batch_size, uncertainty))
        done += len(queue)
        queue.clear()
        if progress is not None:
            progress(done, total if total is not None else done)
        yield from scored

    for name, data in items:
        item, image = fit_item(name, data)
        if image is not None and tile:
            yield from flush()
            queue.append(_tiled(model, item, image, threshold, batch_size, uncertainty))
            yield from flush()
            continue
        queue.append(item)
        if len(queue) >= batch_size:
            yield from flush()
    yield from flush()


def _score_queue(model: Model, queue: list[ItemResult], threshold: float, batch_size: int,
                 uncertainty: UncertaintySettings | None) -> Iterator[ItemResult]:
    """The queued items, the patch-sized ones with their P(IDC) (and uncertainty) from one batch."""
    waiting = [i for i, item in enumerate(queue) if item.patch is not None]
    scored: dict[int, dict[str, Any]] = {}
    if waiting:
        patches = np.stack([queue[i].patch for i in waiting])  # type: ignore[misc]
        if uncertainty is None:
            probs = predict_patches(model, patches, batch_size=batch_size)
            scored = {i: {"prob_idc": float(p)} for i, p in zip(waiting, probs)}
        else:
            probs, spread = predict_measured(model, patches, uncertainty, threshold, batch_size)
            cut = uncertainty.uncertain_above
            scored = {i: dict(prob_idc=float(p), uncertainty=float(u), uncertain=None if cut is None else bool(u > cut))
                      for i, p, u in zip(waiting, probs, spread)}
    for i, item in enumerate(queue):
        yield replace(item, **scored[i]) if i in scored else item


def _tiled(model: Model, item: ItemResult, image: np.ndarray, threshold: float, batch_size: int,
           uncertainty: UncertaintySettings | None) -> ItemResult:
    """A slide-sized image tiled at its own pixels, reported by its most suspicious tissue tile."""
    height, width = image.shape[:2]
    try:
        result = predict_slide(model, image, threshold=threshold, batch_size=batch_size, uncertainty=uncertainty)
        if result.n_tissue == 0:
            raise ImageError(f"slide {width}x{height}: no tissue found (all background), nothing to classify")
    except Exception as exc:  # noqa: BLE001 - one input, even one that hits a bug, never loses the batch
        return replace(item, error=error_text(item.name, exc), note="")
    top = int(np.nanargmax(result.probs))
    note = (f"slide {width}x{height}: {result.n_idc} of {result.n_tissue} tissue tiles IDC "
            f"({result.idc_fraction:.1%}); prob_idc = most suspicious tile; read at its own pixels as if at the "
            f"model's scale, each tile alone (no neighbouring tiles)")
    measured: dict[str, Any] = {}
    if result.uncertainty is not None:
        measured["uncertainty"] = float(result.uncertainty[top])
        flags = result.uncertain
        if flags is not None:
            measured["uncertain"] = bool(flags[top])
            note += f"; {result.uncertain_fraction:.1%} of tissue tiles uncertain"
    return replace(item, prob_idc=float(result.probs[top]), note=note, slide=result, **measured)
