"""Fit a model's familiarity check on its training patients and choose its threshold on validation.

    the model's features of every patch of its patients (model.features) -> Ledoit-Wolf mean and precision of
    a sample of the training patients' patches (stats.familiarity.fit_familiarity) -> the score of every
    validation and test patient (its patches, judged as a batch) and of every complete validation and test slide
    (rebuilt from its patches and judged as the slide command judges a slide) -> the threshold: the lowest that
    flags at most MAX_FLAGGED of the validation patients and slides -> familiarity.json, config.json's field

The command line over it is idc_core.cli.familiarity (`idc familiarity`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from idc_core import Progress
from idc_core.data.dataset import PatchSource, load_patches, scan_dataset
from idc_core.errors import DatasetError, IDCError
from idc_core.stats.familiarity import (
    FAMILIARITY_FILE,
    MAX_FLAGGED,
    MEASURES,
    TILE_QUANTILE,
    Familiarity,
    FamiliarityCheck,
    choose_threshold,
    fit_familiarity,
    flagged_checks,
)
from idc_core.wsi.tiling import assemble_slide

CHUNK = 4096  # patches decoded and passed through the model at a time
MAX_FIT_TILES = 20000
"""Training patches (a random sample, seed 0) the mean and covariance are fitted on."""
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PatchFeatures:
    """The model's features of every readable patch of some patients, with where each patch lies."""

    patients: np.ndarray  # (N,) str
    xs: np.ndarray  # (N,) int64 top-left x in its patient's slide
    ys: np.ndarray
    features: np.ndarray  # (N, D) float32

    def subset(self, keep: np.ndarray) -> PatchFeatures:
        return PatchFeatures(self.patients[keep], self.xs[keep], self.ys[keep], self.features[keep])


@dataclass
class SlidePatches:
    """The patches of the patients whose slides are judged whole (rebuilt with assemble_slide)."""

    patches: dict[str, list[tuple[int, int, np.ndarray]]]

    def image(self, patient: str) -> np.ndarray:
        found = self.patches[patient]
        xs, ys = np.array([x for x, _, _ in found]), np.array([y for _, y, _ in found])
        return assemble_slide(xs - xs.min(), ys - ys.min(), [p for _, _, p in found])


def dataset_features(model: Any, data: str | Path, patients: set[str], *, layer: str,
                     keep_whole: frozenset[str] | set[str] = frozenset(), batch_size: int = 256,
                     progress: Progress | None = None) -> tuple[PatchFeatures, SlidePatches]:
    """Features at `layer` of every patch of `patients` in `data` (labelled or not), CHUNK at a time; unreadable
    patches are left out. The patches of `keep_whole` patients are also kept, to rebuild their slides."""
    from idc_core.inference.familiarity import model_features

    records = [r for r in scan_dataset(data).records if r.patient in patients]
    if not records:
        raise DatasetError(f"no patches in {data} for the model's patients")
    parts, keep = [], np.ones(len(records), dtype=bool)
    whole: dict[str, list[tuple[int, int, np.ndarray]]] = {p: [] for p in keep_whole}
    if progress is not None:
        progress(0, len(records))
    with PatchSource.open(data) as source:
        for start in range(0, len(records), CHUNK):
            chunk = records[start:start + CHUNK]
            errors: list[tuple[int, str]] = []
            patches = load_patches(source, chunk, errors=errors)
            parts.append(model_features(model, patches, layer=layer, batch_size=batch_size))
            keep[[start + i for i, _ in errors]] = False
            bad = {i for i, _ in errors}
            for i, record in enumerate(chunk):
                if record.patient in whole and i not in bad:
                    whole[record.patient].append((record.x, record.y, patches[i]))
            if progress is not None:
                progress(start + len(chunk), len(records))
    found = PatchFeatures(np.array([r.patient for r in records]), np.array([r.x for r in records], dtype=np.int64),
                          np.array([r.y for r in records], dtype=np.int64), np.concatenate(parts))
    return found.subset(keep), SlidePatches({p: v for p, v in whole.items() if v})


def complete_patients(data: str | Path, patients: set[str]) -> list[str]:
    """The `patients` whose patches in `data` form a whole slide, as the slide-context step finds them
    (workflows.context_fit.complete_patients)."""
    from idc_core.workflows.context_fit import TileScores
    from idc_core.workflows.context_fit import complete_patients as complete

    records = [r for r in scan_dataset(data).records if r.patient in patients]
    zeros = np.zeros(len(records))
    return complete(TileScores(np.array([r.patient for r in records]), np.array([r.x for r in records]),
                               np.array([r.y for r in records]), zeros.astype(np.int64), zeros.astype(np.float32)))


def split_patients(splits: dict[str, list[str]], found: PatchFeatures) -> dict[str, list[str]]:
    """The patients of each split that have patches in the data."""
    present = set(found.patients.tolist())
    return {name: sorted(p for p in splits.get(name, []) if p in present) for name in SPLITS}


def fit_on_training(found: PatchFeatures, train: Sequence[str], *, layer: str, measure: str,
                    max_tiles: int = MAX_FIT_TILES) -> Familiarity:
    """fit_familiarity on a random sample (seed 0) of at most max_tiles patches of the training patients."""
    index = np.flatnonzero(np.isin(found.patients, list(train)))
    if len(index) < 2:
        raise IDCError("fitting the familiarity check needs the training patients' patches in the data")
    if len(index) > max_tiles:
        index = np.sort(np.random.default_rng(0).choice(index, max_tiles, replace=False))
    return fit_familiarity(found.features[index], layer=layer, measure=measure)


def unit_distances(model: Any, familiarity: Familiarity, found: PatchFeatures, slides: SlidePatches,
                   patients: Sequence[str], complete: Sequence[str], *, batch_size: int = 256
                   ) -> dict[str, dict[str, np.ndarray]]:
    """The tile distances of `patients` (all their patches, as a batch) and of their `complete` slides (rebuilt and
    tiled as the slide check tiles a slide: its tissue tiles, at most MAX_TILES): {"patients": {id: distances},
    "slides": ...}. Familiarity.judge turns each into a verdict."""
    from idc_core.inference.familiarity import MAX_TILES, model_features, spread_sample
    from idc_core.inference.tiles import tissue_tiles
    from idc_core.wsi.tiling import extract_patches

    out: dict[str, dict[str, np.ndarray]] = {"patients": {}, "slides": {}}
    for patient in patients:
        out["patients"][patient] = familiarity.distances(found.features[found.patients == patient])
    for patient in complete:
        if patient in slides.patches:
            image = slides.image(patient)
            coords, tissue, _ = tissue_tiles(image)
            chosen = coords[tissue][spread_sample(int(tissue.sum()), MAX_TILES)]
            features = model_features(model, extract_patches(image, chosen), layer=familiarity.layer,
                                      batch_size=batch_size)
            out["slides"][patient] = familiarity.distances(features)
    return out


def threshold_on(familiarity: Familiarity, val: dict[str, dict[str, np.ndarray]], max_flagged: float) -> float:
    """choose_threshold on the scores of the validation units judged by the threshold (at least min_tiles tiles)."""
    scores = [familiarity.score(d) for kind in val.values() for d in kind.values() if len(d) >= familiarity.min_tiles]
    return choose_threshold(scores, max_flagged)


def verdicts(familiarity: Familiarity, units: dict[str, dict[str, np.ndarray]]
             ) -> dict[str, dict[str, FamiliarityCheck]]:
    """Familiarity.judge of every unit."""
    return {kind: {p: familiarity.judge(d) for p, d in found.items()} for kind, found in units.items()}


def fit_familiarity_folder(folder: str | Path, data: str | Path, *, layer: str | None = None,
                           measure: str = "median", max_flagged: float = MAX_FLAGGED, batch_size: int = 256,
                           complete: Sequence[str] | None = None, progress: Progress | None = None,
                           log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit the familiarity check of the model in `folder` on its training patients in `data`, choose its threshold
    on the validation patients and complete slides (at most max_flagged of them flagged), measure it on the test
    ones, and write familiarity.json and config.json's `familiarity`. Returns familiarity.json's content.

    complete: the patients whose slides are complete in the data (None: complete_patients finds them)."""
    from idc_core.config import ModelConfig
    from idc_core.model.features import penultimate_layer
    from idc_core.model.folder import CONFIG_FILE, MODEL_FILE, load_model_dir
    from idc_core.workflows.slide_analysis import file_checksum

    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    started = time.perf_counter()
    folder = Path(folder)
    loaded = load_model_dir(folder, familiarity=False)
    splits = loaded.config.split_patients
    if not splits.get("train") or not splits.get("val"):
        raise IDCError(f"{folder}: config.json lists no training or validation patients to fit the check on")
    layer = layer or penultimate_layer(loaded.model)
    wanted = {p for name in SPLITS for p in splits.get(name, [])}
    held_out = set(splits.get("val", [])) | set(splits.get("test", []))
    log(f"features at layer {layer!r} of the patches of {len(wanted)} patients")
    whole = sorted(held_out & set(complete)) if complete is not None else complete_patients(data, held_out)
    found, slides = dataset_features(loaded.model, data, wanted, layer=layer, keep_whole=set(whole),
                                     batch_size=batch_size, progress=progress)
    present = split_patients(splits, found)
    familiarity = fit_on_training(found, present["train"], layer=layer, measure=measure)
    units = {name: unit_distances(loaded.model, familiarity, found, slides, present[name],
                                  [p for p in whole if p in present[name]], batch_size=batch_size)
             for name in ("val", "test")}
    familiarity = replace(familiarity, threshold=threshold_on(familiarity, units["val"], max_flagged))
    judged = {name: verdicts(familiarity, units[name]) for name in units}
    rule = (f"the threshold is the lowest that flags at most {max_flagged:.0%} of the model's "
            f"{len(units['val']['patients'])} validation patients and {len(units['val']['slides'])} complete "
            f"validation slides (a batch of fewer than {familiarity.min_tiles} tiles: its median against the "
            f"{TILE_QUANTILE:.0%} quantile of single training tiles)")
    rates = {f"{name}_{kind}": flagged_checks(list(judged[name][kind].values()))
             for name in ("val", "test") for kind in ("patients", "slides")}
    familiarity = replace(familiarity, rule=rule, model_sha256=file_checksum(folder / MODEL_FILE), rates=rates,
                          notes={**familiarity.notes, "data": str(data),
                                 "scores": {name: {kind: {p: None if c.score is None else round(c.score, 4)
                                                          for p, c in values.items()}
                                                   for kind, values in judged[name].items()} for name in judged},
                                 "seconds": round(time.perf_counter() - started, 1)})
    (folder / FAMILIARITY_FILE).write_text(json.dumps(familiarity.to_dict(), indent=1) + "\n")
    config = ModelConfig.load(folder / CONFIG_FILE)
    replace(config, familiarity=FAMILIARITY_FILE).save(folder / CONFIG_FILE)
    log(f"{familiarity.describe()}")
    return familiarity.to_dict()

