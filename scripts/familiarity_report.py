"""How well the familiarity check tells breast H&E of the dataset from unfamiliar material, for a model folder.

    python scripts/familiarity_report.py --model models/cnn-jpeg --data ../shared/data/idc \
        --unfamiliar ../shared/data/realworld-dev --out models/cnn-jpeg/familiarity_report.json

For each candidate (CANDIDATES: the model's layers, alone or side by side, each with the slide score "median"
distance or "share_beyond" the training tiles' 99% quantile), fitted and thresholded as `idc familiarity` does
(workflows.familiarity_fit: the same training sample, the same rule on the validation patients and complete
slides): the score of every validation and test patient and complete slide, the shares flagged, and the verdict on
every image of the unfamiliar material (each read as the slide command reads a plain image without a scale: at the
model's scale; its tissue tiles judged as a slide's). Then the model's own familiarity.json (the shipped check) on
all of it and on the bundled sample slide, patient zip and the test fixtures. Every number the README gives about
the check comes from this file. The features are computed once for all the layers (kept in .cache/familiarity/).
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from idc_core import PATCH_SIZE
from idc_core.inference.familiarity import MAX_TILES, model_features, spread_sample
from idc_core.inference.tiles import tissue_tiles
from idc_core.model.folder import MODEL_FILE, load_model_dir
from idc_core.stats.familiarity import MAX_FLAGGED, Familiarity, flagged_checks
from idc_core.workflows.familiarity_fit import (
    PatchFeatures,
    SlidePatches,
    complete_patients,
    dataset_features,
    fit_on_training,
    split_patients,
    threshold_on,
    verdicts,
)
from idc_core.workflows.slide_analysis import file_checksum, read_scaled_slide
from idc_core.wsi.stain_check import not_he_reason
from idc_core.wsi.tiling import extract_patches

LAYERS = ("block1_pool", "block2_pool", "head_pool", "head_dense")
"""Every layer a candidate uses; their features are computed in one pass ("+".join(LAYERS))."""
CANDIDATES = ("head_pool", "head_dense", "block2_pool+head_pool", "block1_pool+block2_pool+head_pool")
MEASURES = ("median", "share_beyond")
REPO = Path(__file__).resolve().parents[1]
BUNDLED = (REPO / "assets" / "sample_slide.png", *sorted((REPO / "assets").glob("sample_patient_*.zip")),
           *sorted((REPO / "tests" / "data" / "familiarity").glob("*.png")))


def columns(model: Any, layer: str) -> np.ndarray:
    """The columns of the "+".join(LAYERS) features that `layer` ("a+b") takes."""
    widths = [int(model.get_layer(name).output.shape[-1]) for name in LAYERS]
    starts = np.cumsum([0, *widths])
    return np.concatenate([np.arange(starts[LAYERS.index(n)], starts[LAYERS.index(n) + 1]) for n in layer.split("+")])


def cached_features(loaded: Any, data: str, wanted: set[str], whole: set[str]) -> tuple[PatchFeatures, SlidePatches]:
    """dataset_features at every layer, kept in .cache/familiarity/ per model file (a re-run is quick)."""
    key = (str(data), sorted(wanted), LAYERS)
    cache = REPO / ".cache" / "familiarity" / f"{file_checksum(loaded.path / MODEL_FILE)[:16]}.pkl"
    if cache.is_file():
        found, slides, stored = pickle.loads(cache.read_bytes())
        if stored == key and whole <= set(slides.patches):
            return found, SlidePatches({q: v for q, v in slides.patches.items() if q in whole})
    found, slides = dataset_features(loaded.model, data, wanted, layer="+".join(LAYERS), keep_whole=whole)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps((found, slides, key)))
    return found, slides


def image_features(model: Any, image: np.ndarray) -> dict[str, Any]:
    """An image at the model's scale: its tissue tiles' features at every layer (at most MAX_TILES, spread, as the
    slide check takes them), and whether the stain check refuses it (the slide command then scores nothing)."""
    coords, tissue, _ = tissue_tiles(image)
    chosen = coords[tissue][spread_sample(int(tissue.sum()), MAX_TILES)]
    patches = extract_patches(image, chosen, PATCH_SIZE) if len(chosen) else np.zeros((0, 50, 50, 3), np.uint8)
    features = model_features(model, patches, layer="+".join(LAYERS)) if len(chosen) else np.zeros((0, 0))
    return {"features": features, "tiles": int(tissue.sum()), "not_he": not_he_reason(image)}


def judged(familiarity: Familiarity, found: dict[str, Any], cols: np.ndarray) -> dict[str, Any]:
    """One image's score and verdict under a fitted check."""
    features = found["features"][:, cols] if len(found["features"]) else np.zeros((0, len(cols)))
    check = familiarity.check(features)
    return {"score": None if check.score is None else round(check.score, 4), "familiar": check.familiar,
            "tiles": found["tiles"], "note": check.reason, "refused_by_stain_check": found["not_he"]}


def breast_distances(familiarity: Familiarity, found: PatchFeatures, cols: np.ndarray,
                     present: dict[str, list[str]], slides: dict[str, dict[str, Any]]
                     ) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The tile distances of every validation and test patient (all its patches) and complete slide (its tissue
    tiles, as the slide check takes them), as workflows.familiarity_fit.unit_distances gives them."""
    return {name: {"patients": {p: familiarity.distances(found.features[found.patients == p][:, cols])
                                for p in present[name]},
                   "slides": {p: familiarity.distances(f["features"][:, cols]) for p, f in slides.items()
                              if p in present[name]}}
            for name in ("val", "test")}


def evaluate(familiarity: Familiarity, units: dict[str, dict[str, dict[str, np.ndarray]]], cols: np.ndarray,
             images: dict[str, dict[str, Any]], *, choose: float | None) -> dict[str, Any]:
    """Shares flagged and the verdicts on the unfamiliar images, the threshold chosen on validation as the command
    chooses it (`choose`: the largest share flagged) or the fitted one's (None)."""
    if choose is not None:
        familiarity = replace(familiarity, threshold=threshold_on(familiarity, units["val"], choose))
    checks = {name: verdicts(familiarity, units[name]) for name in units}
    rates = {f"{name}_{kind}": flagged_checks(list(checks[name][kind].values()))
             for name in checks for kind in checks[name]}
    rates["all_breast_outside_training"] = flagged_checks([c for name in checks for kind in checks[name]
                                                           for c in checks[name][kind].values()])
    shown = {name: judged(familiarity, found, cols) for name, found in images.items()}
    return {
        "layer": familiarity.layer, "measure": familiarity.measure, "threshold": round(familiarity.threshold, 4),
        "tile_cut": round(familiarity.tile_cut, 4), "rates": rates,
        "unfamiliar_images_flagged": {"units": sum(v["familiar"] is not None for v in shown.values()),
                                      "flagged": sum(v["familiar"] is False for v in shown.values())},
        "scores": {name: {kind: {p: None if c.score is None else round(c.score, 4) for p, c in v.items()}
                          for kind, v in checks[name].items()} for name in checks},
        "flagged": sorted(f"{name} {kind[:-1]} {p}" for name in checks for kind in checks[name]
                          for p, c in checks[name][kind].items() if c.familiar is False),
        "images": shown,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="model folder (with its familiarity.json)")
    p.add_argument("--data", required=True, help="the labelled data the model was trained on")
    p.add_argument("--unfamiliar", required=True, type=Path,
                   help="a folder of unfamiliar images (other organs, stains): every .png/.tif in it and in tiles/")
    p.add_argument("--out", required=True, type=Path, help="the JSON report to write")
    p.add_argument("--complete", nargs="+", metavar="PATIENT", help="as idc familiarity's --complete")
    args = p.parse_args()
    started = time.perf_counter()
    loaded = load_model_dir(args.model)
    splits = loaded.config.split_patients
    wanted = {q for name in ("train", "val", "test") for q in splits.get(name, [])}
    held_out = set(splits.get("val", [])) | set(splits.get("test", []))
    whole = sorted(held_out & set(args.complete)) if args.complete else complete_patients(args.data, held_out)
    print("features of the data", flush=True)
    found, rebuilt = cached_features(loaded, args.data, wanted, set(whole))
    present = split_patients(splits, found)
    slides = {q: image_features(loaded.model, rebuilt.image(q)) for q in rebuilt.patches}
    files = sorted(f for f in (*args.unfamiliar.glob("*"), *args.unfamiliar.glob("tiles/*"))
                   if f.suffix.lower() in (".png", ".tif", ".tiff"))
    images = {str(f.relative_to(args.unfamiliar)):
              image_features(loaded.model, read_scaled_slide(f, model_mpp=loaded.config.mpp).image) for f in files}
    bundled = {str(f.relative_to(REPO)):
               image_features(loaded.model, read_scaled_slide(f, model_mpp=loaded.config.mpp).image) for f in BUNDLED}
    report: dict[str, Any] = {"model": loaded.config.name, "data": args.data, "unfamiliar": str(args.unfamiliar),
                              "complete_slides": whole, "candidates": []}
    for layer in CANDIDATES:
        cols = columns(loaded.model, layer)
        subset = PatchFeatures(found.patients, found.xs, found.ys, found.features[:, cols])
        for measure in MEASURES:
            fitted = fit_on_training(subset, present["train"], layer=layer, measure=measure)
            row = evaluate(fitted, breast_distances(fitted, found, cols, present, slides), cols, images,
                           choose=MAX_FLAGGED)
            report["candidates"].append(row)
            print(f"{layer:<36} {measure:<12} threshold {row['threshold']:<8} breast flagged "
                  + ", ".join(f"{k} {v['flagged']}/{v['units']}" for k, v in row["rates"].items())
                  + f"; unfamiliar images flagged {row['unfamiliar_images_flagged']['flagged']}/"
                    f"{row['unfamiliar_images_flagged']['units']}", flush=True)
    own = loaded.familiarity
    if own is not None:
        cols = columns(loaded.model, own.layer)
        shipped = evaluate(own, breast_distances(own, found, cols, present, slides), cols, {**images, **bundled},
                           choose=None)
        report["shipped"] = {"rule": own.rule, "describe": own.describe(), **shipped}
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["machine"] = "2 cores shared with other jobs while it ran: the seconds are not a benchmark"
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
