"""Artefact QC (idc_core.wsi.qc) on development slides with drawn artefacts, and what it costs.

    python bench/bench_qc.py --data ../shared/data/idc [--model models/cnn-jpeg] [--note TEXT] [--quick]

1. Every complete slide (bench_tissue.COMPLETE) of a validation or test patient of the model's split (never a
   training patient) is rebuilt from its patches, then for each kind (red, green, blue and black marker ink, blur,
   fold) DRAWS artefacts are drawn over its tissue, one at a time (bench/drawn_artefacts.py: a 40-px stroke through
   four tissue tiles, a 300 x 200 px rectangle blurred with sigma 2 px, a 40-px fold through three tissue tiles;
   seeded), and QC is run
   as `idc slide` runs it (inference.tiles.tissue_fractions, then wsi.qc.tile_artefacts). Counted on the tissue
   tiles: "artefact tiles" are those at least half under the drawn mask; "clean tiles" those it does not touch, and
   every tile of the slide as it is (no drawing). Reported: the share of artefact tiles flagged (any kind, and the
   drawn kind), the share of clean tiles flagged, and, on the artefact tiles, the share the model calls IDC (the
   tile's own score at its threshold) on the clean slide, on the drawn one (what QC off would report), and the
   share of them labelled IDC in the dataset.
2. The seconds of QC on the 1.08-gigapixel slide of bench_wsi (36000 x 30000 px at 0.25 um/px, read at 4 um/px),
   against `idc slide`'s end-to-end time for that slide (workflows.slide_analysis.analyse_slide_file, QC on and
   off), in this process. Target: under 10%.
Targets: >= 0.90 of ink and blur tiles flagged, >= 0.80 of fold tiles, <= 0.02 of clean tiles. Writes
bench/results/qc.json.

    python bench/bench_qc.py --data ../shared/data/idc --development [--kinds fold]

runs part 1 on the complete slides of the model's TRAINING patients instead, where QC's rules are chosen (they are
never reported as the result), for the kinds given (default all), without part 2; writes qc_development.json.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import common
import numpy as np
from bench_tissue import COMPLETE, rebuilt
from drawn_artefacts import INKS, draw_blur, draw_fold, draw_ink

KINDS = (*INKS, "blur", "fold")
DRAWS = 3
"""Artefacts of each kind drawn on each slide, one at a time (each on the clean slide)."""
ADDED_BINS = (0.0, 0.25, 0.5, 1.0, np.inf)
"""Bins of a drawn fold tile's added density: the mean optical density (sum over R, G, B) the second layer adds
over the tile's folded pixels, as a share of the slide's typical tissue density (qc.slide_tone). A fold of fat
over fat adds almost nothing: no detector sees it; a fold of tumour over tumour adds about the slide's density."""


def added_density(clean: np.ndarray, drawn: np.ndarray, mask: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """float (N,): per tile at `coords` (y, x), the mean optical density `drawn` adds to `clean` over the tile's
    pixels under `mask`, as a share of the clean slide's tissue density (nan where the tile has none of them)."""
    from idc_core.wsi.qc import slide_tone

    def density(image: np.ndarray) -> np.ndarray:
        return -np.log10((image.astype(np.float32) + 1) / 256).sum(axis=2)

    added = np.where(mask, density(drawn) - density(clean), 0.0)
    out = np.full(len(coords), np.nan)
    for i, (y, x) in enumerate(coords.tolist()):
        under = mask[y:y + 50, x:x + 50]
        if under.any():
            out[i] = added[y:y + 50, x:x + 50][under].mean()
    return out / slide_tone(clean).density


def draw(image: np.ndarray, kind: str, centres: np.ndarray, rng: np.random.Generator
         ) -> tuple[np.ndarray, np.ndarray]:
    """The slide with one artefact of `kind` over its tissue (centres: (x, y) of its tissue tiles), and its mask."""
    if kind == "blur":
        x, y = centres[rng.integers(len(centres))]
        return draw_blur(image, (max(0, int(x) - 150), max(0, int(y) - 100), 300, 200), sigma=2.0)
    points = [tuple(int(v) for v in p) for p in centres[rng.choice(len(centres), 3 if kind == "fold" else 4)]]
    points.sort()
    return draw_fold(image, points, 40) if kind == "fold" else draw_ink(image, kind, points, 40)


def idc_share(model, image: np.ndarray, coords: np.ndarray, threshold: float) -> float | None:
    from idc_core.inference.predict import predict_patches
    from idc_core.wsi.tiling import extract_patches

    if not len(coords):
        return None
    return float((predict_patches(model, extract_patches(image, coords)) >= threshold).mean())


def drawn_artefacts(data: Path, loaded, patients: list[str], seed: int = 0, drawn_kinds: tuple[str, ...] = KINDS
                    ) -> dict:
    from idc_core.inference.tiles import tissue_fractions
    from idc_core.wsi.qc import tile_artefacts
    from idc_core.wsi.tissue import MIN_TISSUE, tile_tissue_fraction

    rng = np.random.default_rng(seed)
    rows, slides = [], []
    for patient in patients:
        image, labelled = rebuilt(data, patient)
        labels = {(int(y), int(x)): int(f.parent.name) for f, (y, x) in
                  zip(sorted((data / patient).rglob("*.png")), labelled.tolist())}
        coords, fractions, _ = tissue_fractions(image)
        tissue = fractions >= MIN_TISSUE
        clean_kinds = tile_artefacts(image, coords, tissue=fractions)
        slides.append({"patient": patient, "tissue_tiles": int(tissue.sum()),
                       "flagged_clean_slide": int((clean_kinds[tissue] != "").sum()),
                       "flagged_kinds": {str(k): int(n) for k, n in zip(*np.unique(
                           clean_kinds[tissue & (clean_kinds != "")], return_counts=True))}})
        centres = coords[tissue][:, ::-1] + 25
        for kind in [k for k in drawn_kinds for _ in range(DRAWS)]:
            drawn, mask = draw(image, kind, centres, rng)
            cover = tile_tissue_fraction(mask, coords)
            d_coords, d_fractions, _ = tissue_fractions(drawn)
            d_tissue = d_fractions >= MIN_TISSUE
            kinds = tile_artefacts(drawn, d_coords, tissue=d_fractions)
            under, untouched = d_tissue & (cover >= 0.5), d_tissue & (cover == 0)
            truth = [labels.get((int(y), int(x))) for y, x in d_coords[under].tolist()]
            known = [t for t in truth if t is not None]
            by_added = {}
            if kind == "fold":  # how visible each fold tile is, and which of them QC flagged
                bins = np.digitize(added_density(image, drawn, mask, d_coords[under]), ADDED_BINS[1:-1])
                flagged = kinds[under] != ""
                by_added = {"fold_tiles_by_added_density": np.bincount(bins, minlength=len(ADDED_BINS) - 1).tolist(),
                            "flagged_by_added_density": np.bincount(bins[flagged],
                                                                    minlength=len(ADDED_BINS) - 1).tolist()}
            rows.append({
                "patient": patient, "kind": kind, "artefact_tiles": int(under.sum()), **by_added,
                "flagged": int((kinds[under] != "").sum()), "flagged_as_drawn": int((kinds[under] == kind).sum()),
                "clean_tiles": int(untouched.sum()), "clean_flagged": int((kinds[untouched] != "").sum()),
                "idc_called_clean": idc_share(loaded.model, image, d_coords[under], loaded.config.threshold),
                "idc_called_drawn": idc_share(loaded.model, drawn, d_coords[under], loaded.config.threshold),
                "idc_true": float(np.mean(known)) if known else None,
            })
    return {"rows": rows, "slides": slides}


def summarise(rows: list[dict], slides: list[dict], kinds: tuple[str, ...] = KINDS) -> list[dict]:
    """One row per kind (all slides pooled), and one for the clean slides as they are."""
    table = []
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        n = sum(r["artefact_tiles"] for r in mine)

        def weighted(key: str, rows_: list[dict] = mine) -> float | None:
            pairs = [(r[key], r["artefact_tiles"]) for r in rows_ if r[key] is not None]
            total = sum(w for _, w in pairs)
            return sum(v * w for v, w in pairs) / total if total else None

        table.append({"kind": kind, "slides": len(mine), "artefact_tiles": n,
                      "flagged_share": sum(r["flagged"] for r in mine) / n if n else None,
                      "flagged_as_drawn_share": sum(r["flagged_as_drawn"] for r in mine) / n if n else None,
                      "clean_flagged_share": (sum(r["clean_flagged"] for r in mine)
                                              / max(1, sum(r["clean_tiles"] for r in mine))),
                      **{key: weighted(key) for key in ("idc_called_clean", "idc_called_drawn", "idc_true")}})
    folds = [r for r in rows if "fold_tiles_by_added_density" in r]
    for i, (low, high) in enumerate(zip(ADDED_BINS[:-1], ADDED_BINS[1:])):
        n = sum(r["fold_tiles_by_added_density"][i] for r in folds)
        if folds:
            table.append({"kind": f"fold adding {low:g}-{high:g} x the slide's density", "artefact_tiles": n,
                          "flagged_share": sum(r["flagged_by_added_density"][i] for r in folds) / n if n else None})
    tissue = sum(s["tissue_tiles"] for s in slides)
    table.append({"kind": "none (slides as they are)", "slides": len(slides), "artefact_tiles": 0,
                  "clean_flagged_share": sum(s["flagged_clean_slide"] for s in slides) / max(1, tissue)})
    return table


def timing(loaded, gigapixels: float, repeat: int) -> dict:
    """QC seconds on bench_wsi's synthetic slide of `gigapixels`, against the slide's end-to-end time."""
    from bench_wsi import write_svs

    from idc_core.inference.tiles import tissue_fractions
    from idc_core.workflows.slide_analysis import SlideOptions, analyse_slide_file
    from idc_core.wsi.qc import tile_artefacts
    from idc_core.wsi.reader import open_slide

    side = int(np.sqrt(gigapixels * 1e9 * 1.2))
    width, height = side, int(side / 1.2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.svs"
        write_svs(path, width, height)
        with open_slide(path, model_mpp=loaded.config.mpp) as reader:
            level = reader.choose_level(loaded.config.mpp, "auto", loaded.config.jpeg_trained).level
            image = reader.read_at_mpp(loaded.config.mpp, level=level)
        coords, fractions, _ = tissue_fractions(image)
        qc_s = common.best_of(lambda: tile_artefacts(image, coords, tissue=fractions), repeat)
        ends = {}
        for qc in (True, False):
            def run(qc: bool = qc) -> None:
                row = analyse_slide_file(path, Path(tmp) / f"out-{qc}", loaded, options=SlideOptions(qc=qc))
                assert row["status"] == "ok", row["reason"]
            ends[qc] = common.best_of(run, repeat)
    return {"level0": f"{width}x{height}", "model_scale": f"{image.shape[1]}x{image.shape[0]}",
            "tissue_tiles": int((fractions >= 0.1).sum()), "qc_s": qc_s, "end_to_end_qc_on_s": ends[True],
            "end_to_end_qc_off_s": ends[False], "qc_share_of_end_to_end": qc_s / ends[True]}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--data", type=Path, required=True, help="the dataset folder (patient folders)")
    p.add_argument("--model", default="models/cnn-jpeg", help="model folder whose validation/test patients are used")
    p.add_argument("--note", default="", help="what else ran on the machine meanwhile, kept in the JSON")
    p.add_argument("--development", action="store_true",
                   help="the complete slides of the model's training patients (where rules are chosen), no timing")
    p.add_argument("--kinds", default=",".join(KINDS), help="artefact kinds to draw, comma-separated")
    args = p.parse_args()
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if set(kinds) - set(KINDS):
        p.error(f"--kinds: unknown {sorted(set(kinds) - set(KINDS))}; known: {', '.join(KINDS)}")
    started = time.time()
    common.quiet_tensorflow()
    from idc_core.model.folder import load_model_dir

    loaded = load_model_dir(common.REPO / args.model)
    split = json.loads((common.REPO / args.model / "config.json").read_text())["split_patients"]
    chosen = set(split["train"]) if args.development else set(split["val"]) | set(split["test"])
    patients = [q for q in COMPLETE if q in chosen and (args.data / q).is_dir()]
    patients = patients[:1] if args.quick else patients
    drawn = drawn_artefacts(args.data, loaded, patients, drawn_kinds=kinds)
    table = summarise(drawn["rows"], drawn["slides"], kinds)
    which = "development (training-patient)" if args.development else "held-out"
    common.print_table(f"Artefact QC on {len(patients)} {which} complete slides with drawn artefacts", table, [
        ("kind", "artefact", "s"), ("artefact_tiles", "tiles", "d"), ("flagged_share", "flagged", ".1%"),
        ("flagged_as_drawn_share", "as drawn", ".1%"), ("clean_flagged_share", "clean flagged", ".2%"),
        ("idc_called_clean", "IDC called (clean)", ".1%"), ("idc_called_drawn", "IDC called (drawn)", ".1%"),
        ("idc_true", "IDC true", ".1%")])
    results = {"model": args.model, "note": args.note, "patients": patients, "summary": table, **drawn}
    if args.development:
        common.write_json(args.out, "qc_development", results, quick=args.quick, started=started)
        return
    cost = timing(loaded, 0.02 if args.quick else 1.08, 1 if args.quick else 3)
    common.print_table("QC time against the slide's end-to-end time", [cost], [
        ("level0", "level 0", "s"), ("tissue_tiles", "tiles", "d"), ("qc_s", "QC s", ".3f"),
        ("end_to_end_qc_on_s", "end to end s", ".2f"), ("qc_share_of_end_to_end", "QC share", ".1%")])
    common.write_json(args.out, "qc", {**results, "timing": cost}, quick=args.quick, started=started)


if __name__ == "__main__":
    main()
