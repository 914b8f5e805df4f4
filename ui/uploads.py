"""What the app does with uploads before and after idc_core scores them: zips opened, table rows worded.

Upload-only concerns live here: macOS resource folders (``__MACOSX/``, ``._name``) and hidden files in a zip
made by Finder are passed over, and a slide-sized image's row says where to analyse it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from idc_core import CLASS_NAMES
from idc_core.data.archive import ZipLimits
from idc_core.data.dataset import iter_zip_images
from idc_core.errors import IDCError
from idc_core.inference.batch import ClassifyResult

SLIDE_HINT = "analyse it on the slide page"


def _hidden(member: str) -> bool:
    """macOS resource forks and hidden files: not images a user meant to upload."""
    return member.startswith("__MACOSX/") or member.rsplit("/", 1)[-1].startswith(".")


def expand_uploads(
    uploads: Iterable[tuple[str, bytes]], *, limits: ZipLimits = ZipLimits()
) -> Iterator[tuple[str, bytes | IDCError]]:
    """Uploaded files -> (name, bytes | error) per image; a .zip gives its image members ``zip/member``.

    Refused or unreadable members yield an error and the rest go on; members without an image
    extension (README, .DS_Store) and macOS resource folders are skipped.
    """
    for name, data in uploads:
        if name.lower().endswith(".zip"):
            yield from iter_zip_images(name, data, limits, skip=_hidden)
        else:
            yield name, data


def skip_duplicates(items: Iterable[tuple[str, bytes | IDCError]]) -> tuple[list[tuple[str, bytes | IDCError]],
                                                                         list[str]]:
    """(items without repeats, the names of the repeats left out): a repeat is a file with the same name (folders
    and zips aside) and the same bytes as one before it, e.g. a file dropped twice or also inside a dropped zip.

    Two files with equal bytes but different names stay: in the dataset layout they are different patches.
    """
    seen: set[tuple[str, str]] = set()
    kept, repeats = [], []
    for name, data in items:
        if isinstance(data, bytes):
            key = (name.rsplit("/", 1)[-1], hashlib.sha1(data).hexdigest())
            if key in seen:
                repeats.append(name)
                continue
            seen.add(key)
        kept.append((name, data))
    return kept, repeats


TEXT_COLUMNS = ("predicted", "true", "correct", "note", "error")


def shown_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """prediction_rows as the page's table shows them: a missing label, correctness, note or error blank (the
    table would print "None"), correctness as yes / no."""
    words = {True: "yes", False: "no", None: ""}
    return [{**row, **{key: words[row[key]] if key == "correct" else (row[key] or "")
                       for key in TEXT_COLUMNS if key in row}} for row in rows]


def prediction_rows(result: ClassifyResult, threshold: float | None = None) -> list[dict[str, Any]]:
    """Table rows (also the CSV): file, P(IDC), the threshold, predicted and true label, correct, note, error;
    and uncertainty and uncertain when they were measured."""
    t = result.threshold if threshold is None else threshold
    with_uncertainty = result.measured_uncertainty
    out = []
    for item in result.items:
        pred = item.label(t)
        row = {
            "file": item.name,
            "p_idc": item.prob_idc,
            "threshold": t,
            "predicted": CLASS_NAMES[pred] if pred is not None else None,
            "true": CLASS_NAMES[item.true_label] if item.true_label is not None else None,
            "correct": (pred == item.true_label) if pred is not None and item.true_label is not None else None,
        }
        if with_uncertainty:
            row.update(uncertainty=item.uncertainty, uncertain=item.uncertain)
        note = f"{item.note}: {SLIDE_HINT}" if item.is_slide else item.note
        out.append({**row, "note": note, "error": item.error})
    return out
