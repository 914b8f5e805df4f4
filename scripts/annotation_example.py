"""Annotations against patch labels: the bundled patient zip as a scanner-like pyramid plus a QuPath GeoJSON of its own
labels, scored by the slide command with --annotations, next to the same patient scored from its labelled patches.

    python scripts/annotation_example.py --out example [--quality 90] [--no-chroma-subsampling] [--model M]

Writes OUT/patient_8980.tif (a tiled JPEG pyramid at the dataset's 4 um/px, YCbCr 4:2:0 like a scanner unless told
otherwise), OUT/patient_8980.geojson (its IDC patches as Tumor annotations, the others as Stroma), runs
`python -m idc_core slide OUT/patient_8980.tif --out OUT/results --annotations OUT` and writes OUT/comparison.json
with both sets of metrics (tile scores alone, and with neighbouring tiles); prints them as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METRICS = (("balanced_accuracy", "balanced accuracy"), ("recall", "sensitivity"), ("specificity", "specificity"),
           ("roc_auc", "ROC AUC"), ("f1", "F1"), ("dice_area", "Dice of the IDC area"), ("n_patches", "tiles judged"))


def write_pyramid(path: Path, image, quality: int, subsampling: bool) -> None:
    """A tiled JPEG pyramid with TIFF resolution tags at 4.0 um/px (levels halved down to < 512 px)."""
    import cv2
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        level, first = image, True
        while True:
            extra = {"resolution": (1e4 / 4.0, 1e4 / 4.0), "resolutionunit": "CENTIMETER"} if first else {}
            tif.write(level, tile=(256, 256), compression="jpeg", compressionargs={"level": quality},
                      subsampling=(2, 2) if subsampling else (1, 1), photometric="rgb", metadata=None,
                      subfiletype=0 if first else 1, **extra)
            first = False
            if min(level.shape[:2]) < 512:
                break
            level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--zip", type=Path, default=REPO / "assets" / "sample_patient_8980.zip")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the pyramid (default 90)")
    parser.add_argument("--no-chroma-subsampling", action="store_true", help="store JPEG 4:4:4 instead of 4:2:0")
    parser.add_argument("--model", type=Path, help="model folder (default: the default model)")
    args = parser.parse_args()

    from idc_core.cli.slide import main as slide_main
    from idc_core.model.folder import default_model_dir, load_model_dir
    from idc_core.workflows.slide_analysis import analyse_slide
    from idc_core.wsi.annotations import labels_geojson
    from idc_core.wsi.reader import open_slide
    from idc_core.wsi.truth import load_slide_input, truth_summary

    args.out.mkdir(parents=True, exist_ok=True)
    zipped = load_slide_input(args.zip.name, args.zip.read_bytes())
    stem = f"patient_{zipped.patient}"
    pyramid = args.out / f"{stem}.tif"
    write_pyramid(pyramid, zipped.image, args.quality, not args.no_chroma_subsampling)
    truth = zipped.truth
    (args.out / f"{stem}.geojson").write_text(json.dumps(labels_geojson(truth.xs, truth.ys, truth.labels,
                                                                        size=truth.size), indent=1))

    folder = args.model or default_model_dir()
    loaded = load_model_dir(folder)
    with open_slide(args.zip, model_mpp=loaded.config.mpp) as reader:
        analysis = analyse_slide(reader, loaded.model, model_mpp=loaded.config.mpp, threshold=loaded.config.threshold,
                                 context=loaded.context, jpeg_trained=loaded.config.jpeg_trained)
    from_patches = truth_summary(analysis.result, truth, loaded.config.threshold)

    results = args.out / "results"
    command = [str(pyramid), "--out", str(results), "--annotations", str(args.out), "--model", str(folder), "--force"]
    if slide_main(command) != 0:
        return 1
    from_annotations = json.loads((results / stem / "summary.json").read_text())["truth"]
    report = {"patient": zipped.patient, "model": loaded.config.name,
              "pyramid": {"quality": args.quality, "chroma_subsampling": "4:4:4" if args.no_chroma_subsampling
                          else "4:2:0"},
              "command": "python -m idc_core slide " + " ".join(command),
              "from_patches": from_patches, "from_annotations": {k: from_annotations[k] for k in from_patches}}
    (args.out / "comparison.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"| patient {zipped.patient}, model {loaded.config.name} | tiles alone: patches | annotations | "
          "with neighbours: patches | annotations |\n|---|---|---|---|---|")
    for key, label in METRICS:
        cells = [f"{part[scored][key]:.3f}" if key != "n_patches" else str(part[scored][key])
                 for scored in ("tile_scores", "with_neighbours") for part in (from_patches, from_annotations)]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
