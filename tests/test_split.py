"""split: patient splits never share a patient, are reproducible and stratified; published and patch modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from idc_core.data.dataset import PatchRecord
from idc_core.data.split import (
    Split,
    assert_patient_disjoint,
    split_by_patch,
    split_by_patient,
    split_published,
    split_with_test_patients,
)
from idc_core.errors import DatasetError


def _records(n_patients: int = 50, seed: int = 0) -> list[PatchRecord]:
    """Patients p00.. with 20 patches each and IDC fractions spread from 0 to 0.95."""
    rng = np.random.default_rng(seed)
    records = []
    for p in range(n_patients):
        n_idc = int(20 * (p % 20) / 20)
        labels = rng.permutation([1] * n_idc + [0] * (20 - n_idc))
        records += [PatchRecord(f"p{p:02d}/{i}.png", f"p{p:02d}", 50 * i + 1, 1, int(label))
                    for i, label in enumerate(labels)]
    return records


def test_patient_split_never_shares_a_patient() -> None:
    records = _records()
    split = split_by_patient(records)
    assert split.mode == "patient"
    assert_patient_disjoint(split)
    all_indices = np.concatenate([split.indices[name] for name in ("train", "val", "test")])
    assert sorted(all_indices.tolist()) == list(range(len(records)))
    for name in ("train", "val", "test"):
        assert {records[i].patient for i in split.indices[name]} == set(split.patients[name])


def test_patient_split_respects_fractions() -> None:
    split = split_by_patient(_records(), fractions=(0.7, 0.2, 0.1))
    assert split.describe()["patients"] == {"train": 35, "val": 10, "test": 5}
    assert split.describe()["patches"] == {"train": 700, "val": 200, "test": 100}


def test_patient_split_is_reproducible_per_seed() -> None:
    records = _records()
    first, again, other = (split_by_patient(records, seed=s) for s in (7, 7, 8))
    assert first.patients == again.patients
    np.testing.assert_array_equal(first.indices["val"], again.indices["val"])
    assert first.patients != other.patients


def test_patient_split_is_stratified_by_idc_fraction() -> None:
    records = _records()
    overall = np.mean([r.label for r in records])
    for seed in range(5):
        fractions = split_by_patient(records, seed=seed).describe()["idc_fraction"]
        assert all(abs(f - overall) < 0.08 for f in fractions.values()), fractions


def test_every_split_non_empty_with_three_patients() -> None:
    split = split_by_patient(_records(3))
    assert [len(split.patients[name]) for name in ("train", "val", "test")] == [1, 1, 1]


def test_too_few_patients_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="needs at least 3 patients, got 2"):
        split_by_patient(_records(2))


def test_zero_fraction_leaves_that_split_empty() -> None:
    split = split_by_patient(_records(10), fractions=(0.8, 0.2, 0.0))
    assert split.describe()["patients"] == {"train": 8, "val": 2, "test": 0}


@pytest.mark.parametrize("fractions", [(0.7, 0.2), (0.5, 0.5, 0.5), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_a_value_error(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions must be 3 non-negative numbers"):
        split_by_patient(_records(5), fractions=fractions)


def _write_lists(folder: Path, train: list[str], val: list[str], test: list[str]) -> Path:
    for name, patients in (("train", train), ("val", val), ("test", test)):
        (folder / f"cases_{name}.txt").write_text("\n".join(patients) + "\n")
    return folder


def test_published_split_uses_the_lists(tmp_path: Path) -> None:
    records = _records(6)
    folder = _write_lists(tmp_path, ["p00", "p01", "p02"], ["p03"], ["p04", "p99"])
    split = split_published(records, folder)
    assert split.mode == "published"
    assert split.patients == {"train": ["p00", "p01", "p02"], "val": ["p03"], "test": ["p04"]}
    assert split.describe()["unused_patients"] == ["p05"]
    assert split.describe()["patches"] == {"train": 60, "val": 20, "test": 20}
    assert_patient_disjoint(split)


def test_published_split_left_empty_is_named(tmp_path: Path) -> None:
    folder = _write_lists(tmp_path, ["p00"], ["p01"], ["x1", "x2"])
    expected = r"published split 'test' is empty: none of the 2 patients of .*cases_test\.txt is in the data"
    with pytest.raises(DatasetError, match=expected):
        split_published(_records(3), folder)


def test_published_split_missing_list_is_named(tmp_path: Path) -> None:
    (tmp_path / "cases_train.txt").write_text("p00\n")
    with pytest.raises(DatasetError, match=r"cases_val\.txt: cannot read the published patient list"):
        split_published(_records(3), tmp_path)


def test_published_patient_in_two_lists_is_refused(tmp_path: Path) -> None:
    folder = _write_lists(tmp_path, ["p00", "p01"], ["p01"], ["p02"])
    with pytest.raises(DatasetError, match=r"patient p01 is also in cases_train\.txt"):
        split_published(_records(3), folder)


def test_patch_split_is_labelled_and_stratified_by_label() -> None:
    records = _records()
    split = split_by_patch(records, (0.7, 0.2, 0.1), seed=1)
    summary = split.describe()
    assert summary["mode"] == "patch"
    expected = {"train": 700, "val": 200, "test": 100}
    assert all(abs(summary["patches"][name] - n) <= 1 for name, n in expected.items()), summary["patches"]
    overall = np.mean([r.label for r in records])
    assert all(abs(f - overall) < 0.01 for f in summary["idc_fraction"].values())
    assert len(split.patients["test"]) > 30  # patients spread over every split
    with pytest.raises(ValueError, match=r"patient\(s\) in both train and val"):
        assert_patient_disjoint(split)


def test_patch_split_too_small_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="patch split 'val' is empty: only 1 patches"):
        split_by_patch(_records(1)[:1], (0.7, 0.2, 0.1), seed=0)


def test_assert_patient_disjoint_names_the_patients() -> None:
    split = Split("patient", {name: np.arange(0) for name in ("train", "val", "test")},
                  {"train": ["a", "b"], "val": ["c"], "test": ["b", "c"]})
    with pytest.raises(ValueError, match=r"1 patient\(s\) in both train and test: b"):
        assert_patient_disjoint(split)


def test_fixed_test_patients_stay_exactly_and_the_rest_splits_by_patient() -> None:
    records = _records(40)
    fixed = ["p03", "p11", "p27"]
    split = split_with_test_patients(records, fixed, (0.7, 0.2, 0.1), seed=3)
    assert split.patients["test"] == fixed
    assert_patient_disjoint(split)
    assert len(split.patients["train"]) + len(split.patients["val"]) == 37
    assert 0.15 < len(split.patients["val"]) / 37 < 0.3  # train:val keeps 0.7:0.2
    with pytest.raises(DatasetError, match="none of the 1 fixed test patients"):
        split_with_test_patients(records, ["nobody"])
