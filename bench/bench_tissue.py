"""How many of the dataset's own labelled patches the tissue detector skips, on every complete slide.

    python bench/bench_tissue.py --data ../shared/data/idc [--patients 8863,8980]

Every labelled patch of the dataset is tissue by the dataset's own definition, so a good default skips
few of them. Each complete patient's slide is rebuilt from the x/y in its patch names (as the app does
with a patient zip) and, for each saturation-threshold cap and minimum tissue per tile, the share of
labelled patches left out as background is counted (tiles on the 50-px grid of the patches). The
background outside the patches is white and is dropped by every setting. Writes bench/results/tissue.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import common
import numpy as np

COMPLETE = ("8863 8865 8867 8913 8914 8917 8950 8951 8955 8974 8975 8980 8984 9022 9023 9035 9036 9037 9041 "
            "9076 9077 9078 9083 9123 9124 9126").split()
CAPS = (None, 25, 20, 15, 10)  # None: Otsu's threshold as it is (floored at MIN_OTSU)
MIN_TISSUES = (0.05, 0.1, 0.2, 0.3, 0.5)


def rebuilt(data: Path, patient: str) -> tuple[np.ndarray, np.ndarray]:
    """(slide image, (N, 2) row/col of its labelled patches) for one complete patient."""
    from idc_core.data.dataset import parse_patch_name
    from idc_core.data.image_io import read_image
    from idc_core.wsi.tiling import assemble_slide

    files = sorted((data / patient).rglob("*.png"))
    parsed = [parse_patch_name(f.name) for f in files]
    xs = np.array([p[1] for p in parsed]) - min(p[1] for p in parsed)
    ys = np.array([p[2] for p in parsed]) - min(p[2] for p in parsed)
    return assemble_slide(xs, ys, [read_image(f) for f in files]), np.stack([ys, xs], 1)


def run(data: Path, patients: list[str]) -> dict:
    from idc_core.wsi.tissue import MIN_OTSU, tile_tissue_fraction, tissue_mask

    skipped = {(cap, m): [] for cap in CAPS for m in MIN_TISSUES}
    per_patient = []
    for patient in patients:
        image, coords = rebuilt(data, patient)
        otsu = tissue_mask(image)[1]
        row = {"patient": patient, "patches": len(coords), "otsu": otsu}
        for cap in CAPS:
            threshold = None if cap is None else min(max(otsu, MIN_OTSU), cap)
            fraction = tile_tissue_fraction(tissue_mask(image, threshold)[0], coords, 50)
            for m in MIN_TISSUES:
                share = float((fraction < m).mean())
                skipped[(cap, m)].append(share)
                row[f"cap{cap}_min{m}"] = share
        per_patient.append(row)
    grid = [{"cap": "otsu" if cap is None else cap, "min_tissue": m, "mean_skipped": float(np.mean(v)),
             "worst_skipped": float(np.max(v))} for (cap, m), v in skipped.items()]
    common.print_table("Labelled patches skipped as background (26 complete slides)", grid, [
        ("cap", "threshold", "s"), ("min_tissue", "min tissue", ".2f"), ("mean_skipped", "mean", ".1%"),
        ("worst_skipped", "worst slide", ".1%")])
    return {"patients": per_patient, "grid": grid}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--data", type=Path, required=True, help="the dataset folder (patient folders)")
    p.add_argument("--patients", default=",".join(COMPLETE), help="complete patients to rebuild")
    args = p.parse_args()
    started = time.time()
    patients = [q for q in args.patients.split(",") if q and (args.data / q).is_dir()]
    common.write_json(args.out, "tissue", run(args.data, patients[:2] if args.quick else patients),
                      quick=args.quick, started=started)


if __name__ == "__main__":
    main()
