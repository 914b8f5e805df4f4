"""Train/val/test splits of patch records: by patient (default), published lists, or by patch (explicit).

Patches of one patient are near-duplicates: a patch-level split leaks between splits and inflates every
metric, so it exists only as an explicitly named option.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from idc_core.data.dataset import PatchRecord
from idc_core.errors import DatasetError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Indices into the records per split, the sorted patient ids per split, and per-split IDC fractions."""

    mode: str
    indices: dict[str, np.ndarray]
    patients: dict[str, list[str]]
    idc_fraction: dict[str, float] = field(default_factory=dict)
    unused_patients: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        """Mode, patients, patches and IDC fraction per split (and unused patients, if any)."""
        return {
            "mode": self.mode,
            "patients": {name: len(self.patients[name]) for name in SPLITS},
            "patches": {name: len(self.indices[name]) for name in SPLITS},
            "idc_fraction": dict(self.idc_fraction),
            "unused_patients": list(self.unused_patients),
        }


def split_words(mode: str) -> str:
    """A split's mode as the words after "test split": "patient" -> "patient split", "patient (fixed test
    patients)" -> "patient split, fixed test patients"."""
    base, _, detail = mode.partition(" (")
    return f"{base} split" + (f", {detail.removesuffix(')')}" if detail else "")


def _make_split(mode: str, records: Sequence[PatchRecord], indices: dict[str, np.ndarray],
                unused: Sequence[str] = ()) -> Split:
    patients, fractions = {}, {}
    for name in SPLITS:
        idx = np.sort(np.asarray(indices[name], dtype=np.int64))
        indices[name] = idx
        patients[name] = sorted({records[i].patient for i in idx})
        labels = [records[i].label for i in idx if records[i].label is not None]
        fractions[name] = float(np.mean(np.asarray(labels) == 1)) if labels else float("nan")
    return Split(mode, indices, patients, fractions, sorted(unused))


def _check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers (train > 0) summing to 1, got {fractions}")


def _counts(n: int, fractions: Sequence[float], *, non_empty: bool) -> list[int]:
    """Items per split by largest remainder; with ``non_empty`` every non-zero fraction gets >= 1."""
    exact = np.asarray(fractions, dtype=float) * n
    counts = np.floor(exact).astype(int)
    for k in np.argsort(counts - exact)[: n - counts.sum()]:
        counts[k] += 1
    if non_empty:
        for k, fraction in enumerate(fractions):
            if fraction > 0 and counts[k] == 0:
                counts[np.argmax(counts)] -= 1
                counts[k] = 1
    return [int(c) for c in counts]


def _interleave(counts: list[int]) -> np.ndarray:
    """Split ids 0/1/2 spread evenly along a sequence (each split's share at every prefix)."""
    total = sum(counts)
    taken = np.zeros(3)
    order = np.empty(total, dtype=np.int64)
    for pos in range(total):
        deficit = np.asarray(counts) * (pos + 1) / total - taken
        deficit[taken >= counts] = -np.inf
        order[pos] = int(np.argmax(deficit))
        taken[order[pos]] += 1
    return order


CANDIDATES = 200


def split_by_patient(records: Sequence[PatchRecord], fractions: Sequence[float] = (0.7, 0.2, 0.1),
                     seed: int = 42) -> Split:
    """Split patients (never patches) into train/val/test, stratified by each patient's IDC fraction.

    Patients are sorted by IDC fraction (random tie-break), cut into strata of about 1/min(fraction)
    patients, and each stratum's split assignments are shuffled. Patients hold very different numbers
    of patches (a complete slide has thousands, a sampled patient a few dozen), so of CANDIDATES such
    seeded assignments the one whose patch shares and IDC fractions are closest to the targets wins:
    reproducible for a seed, and no split is dominated by chance by a few large patients.
    """
    _check_fractions(fractions)
    patient_ids = np.asarray([record.patient for record in records])
    labels = np.asarray([record.label == 1 for record in records])
    unique, inverse = np.unique(patient_ids, return_inverse=True)
    needed = sum(1 for f in fractions if f > 0)
    if len(unique) < needed:
        raise DatasetError(
            f"a patient split into {needed} non-empty splits needs at least {needed} patients, "
            f"got {len(unique)}"
        )
    patches = np.bincount(inverse, minlength=len(unique))
    positives = np.bincount(inverse, weights=labels, minlength=len(unique))
    idc = positives / patches
    rng = np.random.default_rng(seed)
    base = _interleave(_counts(len(unique), fractions, non_empty=True))
    stratum = max(2, int(np.ceil(1 / min(f for f in fractions if f > 0))))
    target = np.asarray(fractions, dtype=float)
    best, best_cost = None, np.inf
    for _ in range(CANDIDATES):
        by_idc = np.lexsort((rng.random(len(unique)), idc))
        assignment = base.copy()
        for start in range(0, len(assignment), stratum):
            assignment[start:start + stratum] = rng.permutation(assignment[start:start + stratum])
        split_of_patient = np.empty(len(unique), dtype=np.int64)
        split_of_patient[by_idc] = assignment
        share = np.bincount(split_of_patient, weights=patches, minlength=3) / patches.sum()
        pos = np.bincount(split_of_patient, weights=positives, minlength=3)
        frac = np.divide(pos, share * patches.sum(), out=np.zeros(3), where=share > 0)
        cost = np.abs(share - target).sum() + np.abs(frac - positives.sum() / patches.sum())[target > 0].sum()
        if cost < best_cost:
            best, best_cost = split_of_patient, cost
    assert best is not None  # CANDIDATES >= 1 assignments were tried
    record_split = best[inverse]
    indices = {name: np.flatnonzero(record_split == k) for k, name in enumerate(SPLITS)}
    return _make_split("patient", records, indices)


def split_with_test_patients(records: Sequence[PatchRecord], test_patients: Sequence[str],
                             fractions: Sequence[float] = (0.7, 0.2, 0.1), seed: int = 42) -> Split:
    """Keep exactly `test_patients` as the test split; split the other patients into train/val by patient.

    Train and val keep the ratio of fractions[0]:fractions[1] (split_by_patient on the rest), so a model
    trained on grown data is tested on the very patients an older model was, and the numbers compare.
    """
    _check_fractions(fractions)
    test = set(test_patients)
    in_test = np.asarray([record.patient in test for record in records])
    if not in_test.any():
        raise DatasetError(f"none of the {len(test)} fixed test patients is in the data")
    rest_index = np.flatnonzero(~in_test)
    rest = [records[i] for i in rest_index.tolist()]
    train_val = (fractions[0] / (fractions[0] + fractions[1]), fractions[1] / (fractions[0] + fractions[1]), 0.0)
    inner = split_by_patient(rest, train_val, seed)
    indices = {"train": rest_index[inner.indices["train"]], "val": rest_index[inner.indices["val"]],
               "test": np.flatnonzero(in_test)}
    return _make_split("patient (fixed test patients)", records, indices)


def _read_case_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the published patient list ({exc.strerror or exc})") from exc
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def split_published(records: Sequence[PatchRecord], splits_dir: str | Path) -> Split:
    """Split by the published patient lists ``cases_train/val/test.txt`` in ``splits_dir``.

    Patients in no list are left unused (see describe()); a split with no patches -> DatasetError.
    """
    listed: dict[str, str] = {}
    for name in SPLITS:
        path = Path(splits_dir) / f"cases_{name}.txt"
        for patient in _read_case_list(path):
            if listed.setdefault(patient, name) != name:
                raise DatasetError(f"{path}: patient {patient} is also in cases_{listed[patient]}.txt")
    indices: dict[str, list[int]] = {name: [] for name in SPLITS}
    unused: set[str] = set()
    for i, record in enumerate(records):
        split = listed.get(record.patient)
        if split is None:
            unused.add(record.patient)
        else:
            indices[split].append(i)
    for name in SPLITS:
        if not indices[name]:
            wanted = sum(1 for split in listed.values() if split == name)
            raise DatasetError(
                f"published split {name!r} is empty: none of the {wanted} patients of "
                f"{Path(splits_dir) / f'cases_{name}.txt'} is in the data"
            )
    return _make_split("published", records, {k: np.asarray(v) for k, v in indices.items()}, sorted(unused))


def split_by_patch(records: Sequence[PatchRecord], fractions: Sequence[float] = (0.7, 0.2, 0.1),
                   seed: int = 42) -> Split:
    """Split patches (not patients) stratified by label. Leaks patients between splits: explicit use only."""
    _check_fractions(fractions)
    labels = np.asarray([-1 if record.label is None else record.label for record in records])
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_train, n_val, _ = _counts(len(members), fractions, non_empty=False)
        for name, chunk in zip(SPLITS, np.split(members, [n_train, n_train + n_val]), strict=True):
            parts[name].append(chunk)
    indices = {name: np.concatenate(parts[name]) if parts[name] else np.empty(0, np.int64) for name in SPLITS}
    for name, fraction in zip(SPLITS, fractions, strict=True):
        if fraction > 0 and not len(indices[name]):
            raise DatasetError(f"patch split {name!r} is empty: only {len(records)} patches")
    return _make_split("patch", records, indices)


def assert_patient_disjoint(split: Split) -> None:
    """Raise ValueError naming the patients found in more than one split."""
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1:]:
            shared = sorted(set(split.patients[first]) & set(split.patients[second]))
            if shared:
                raise ValueError(
                    f"{len(shared)} patient(s) in both {first} and {second}: {', '.join(shared[:10])}"
                )
