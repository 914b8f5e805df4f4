"""Build the demo assets from a folder or zip in the dataset layout.

    python scripts/make_assets.py --data DATA --slide-patient P --zip-patient Q \
        --sample-patients A B C --out assets

Writes into --out:
- sample_slide.png: patient P's whole slide rebuilt from the x/y in the patch names,
  shifted so the patch grid starts at (0, 0) (tiles of stride 50 fall on the patches);
- sample_slide_tiles.csv: x, y (in sample_slide.png), label and file name of each patch;
- sample_patient_<Q>.zip: patient Q's patches in the dataset layout (<Q>/<label>/<name>);
- patches/: a balanced handful of full-size 50x50 patches of the sample patients,
  under their original file names;
- README.md: where each asset comes from.
The outputs are deterministic for the same data and arguments.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from idc_core import PATCH_SIZE  # noqa: E402
from idc_core.data.dataset import PatchRecord, PatchSource, parse_patch_name, scan_dataset  # noqa: E402
from idc_core.data.image_io import decode_image, encode_png  # noqa: E402
from idc_core.errors import DatasetError, IDCError  # noqa: E402
from idc_core.wsi.tiling import assemble_slide  # noqa: E402

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same data gives the same zip bytes
DATASET = (
    'the public "Breast Histopathology Images" dataset\n(IDC_regular_ps50_idx5; '
    "Janowczyk & Madabhushi 2016, Cruz-Roa et al. 2014)"
)


def _base(record: PatchRecord) -> str:
    return record.path.replace("\\", "/").rsplit("/", 1)[-1]


def _patient_records(records: Sequence[PatchRecord], patient: str) -> list[PatchRecord]:
    """The patient's records sorted by (y, x); none -> DatasetError."""
    found = sorted((r for r in records if r.patient == patient), key=lambda r: (r.y, r.x))
    if not found:
        raise DatasetError(f"patient {patient!r}: no patches in the data")
    return found


def write_slide(source: PatchSource, records: Sequence[PatchRecord], out: Path) -> dict:
    """Rebuild the slide of `records` into out/sample_slide.png and its tiles CSV."""
    xs = np.array([r.x for r in records])
    ys = np.array([r.y for r in records])
    xs, ys = xs - xs.min() % PATCH_SIZE, ys - ys.min() % PATCH_SIZE  # patch grid offset (1 px)
    patches = [decode_image(source.read_bytes(r.path), name=r.path) for r in records]
    slide = assemble_slide(xs, ys, patches)
    (out / "sample_slide.png").write_bytes(encode_png(slide))
    with open(out / "sample_slide_tiles.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "label", "file"])
        for x, y, record in zip(xs.tolist(), ys.tolist(), records):
            writer.writerow([x, y, record.label, _base(record)])
    labels = [r.label for r in records]
    return {"width": slide.shape[1], "height": slide.shape[0], "patches": len(records),
            "idc": labels.count(1)}


def write_patient_zip(source: PatchSource, records: Sequence[PatchRecord], out: Path) -> Path:
    """Zip the patient's patches in the dataset layout: <patient>/<label>/<name>."""
    path = out / f"sample_patient_{records[0].patient}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for record in sorted(records, key=_base):
            info = zipfile.ZipInfo(f"{record.patient}/{record.label}/{_base(record)}", ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, source.read_bytes(record.path))
    return path


def pick_patches(
    source: PatchSource,
    records: Sequence[PatchRecord],
    patients: Sequence[str],
    per_class: int,
    max_total: int,
    seed: int,
) -> list[tuple[PatchRecord, bytes]]:
    """Up to k full-size patches per class and patient (k balanced to fit max_total).

    Chosen by a seeded shuffle of each patient's patches; border crops are skipped.
    """
    k = min(per_class, max_total // (2 * len(patients)))
    if k < 1:
        raise ValueError(
            f"max_total {max_total} is too small for 2 classes x {len(patients)} patients"
        )
    rng = np.random.default_rng(seed)
    chosen = []
    for patient in patients:
        mine = _patient_records(records, patient)
        for label in (0, 1):
            pool = sorted((r for r in mine if r.label == label), key=_base)
            taken = 0
            for index in rng.permutation(len(pool)):
                if taken == k:
                    break
                data = source.read_bytes(pool[index].path)
                if decode_image(data, name=pool[index].path).shape[:2] == (PATCH_SIZE, PATCH_SIZE):
                    chosen.append((pool[index], data))
                    taken += 1
            if taken < k:
                print(f"warning: patient {patient} has only {taken} full-size class {label} "
                      f"patches (wanted {k})", file=sys.stderr)
    return chosen


def write_patches(chosen: Sequence[tuple[PatchRecord, bytes]], folder: Path) -> None:
    """Copy the chosen patches to `folder` under their original names (old patch files removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        if parse_patch_name(old.name) is not None:
            old.unlink()
    for record, data in chosen:
        (folder / _base(record)).write_bytes(data)


def readme_text(
    command: str, slide_patient: str, slide: dict, zip_path: Path, zip_count: int,
    chosen: Sequence[tuple[PatchRecord, bytes]], patients: Sequence[str],
) -> str:
    counts = {
        p: tuple(sum(r.patient == p and r.label == c for r, _ in chosen) for c in (0, 1))
        for p in patients
    }
    patch_lines = "\n".join(
        f"  - patient {p}: {n0} without IDC (class0), {n1} with IDC (class1)"
        for p, (n0, n1) in counts.items()
    )
    return f"""# Demo assets

Every file here comes from {DATASET}:
50x50 RGB patches of H&E-stained breast tissue cut from whole-mount slides, labelled
0 (no invasive ductal carcinoma) or 1 (IDC). The file name of a patch is
`<patient>_idx5_x<X>_y<Y>_class<label>.png`, X/Y being its top-left corner in the slide.

Built with `scripts/make_assets.py` (deterministic for the same data and arguments):

    {command}

Which split of the shipped model each patient belongs to:
Patients: see models/cnn/config.json split_patients

- `sample_slide.png`: the whole slide of patient {slide_patient}, rebuilt from the x/y in the
  names of its {slide["patches"]} patches ({slide["idc"]} with IDC),
  {slide["width"]}x{slide["height"]} pixels, white where the dataset has no patch. Coordinates
  are shifted by the dataset's 1-pixel grid offset, so 50-pixel tiles from (0, 0) fall exactly
  on the original patches.
- `sample_slide_tiles.csv`: the ground truth of that slide: `x`, `y` (top-left corner in
  `sample_slide.png`), `label` and the original `file` name of each patch.
- `{zip_path.name}`: the {zip_count} patches of the patient in its name,
  in the dataset layout (`<patient>/<label>/<name>`), to try the dataset upload.
- `patches/`: {len(chosen)} full-size patches under their original names (label in the name):
{patch_lines}
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="dataset folder or zip in the dataset layout")
    parser.add_argument("--slide-patient", required=True,
                        help="patient whose slide is rebuilt (one with every patch present)")
    parser.add_argument("--zip-patient", required=True, help="patient zipped in the dataset layout")
    parser.add_argument("--sample-patients", nargs="+", required=True,
                        help="patients the sample patches are taken from")
    parser.add_argument("--out", default="assets", help="output folder (default: assets)")
    parser.add_argument("--per-class", type=int, default=6,
                        help="patches per class and sample patient (default: 6)")
    parser.add_argument("--max-patches", type=int, default=24,
                        help="most sample patches in total, kept balanced (default: 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patch choice (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    command = "python scripts/make_assets.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    data = Path(args.data).resolve()
    try:
        scan = scan_dataset(data)
        out.mkdir(parents=True, exist_ok=True)
        with PatchSource.open(data) as source:
            slide_records = _patient_records(scan.records, args.slide_patient)
            slide = write_slide(source, slide_records, out)
            zip_records = _patient_records(scan.records, args.zip_patient)
            zip_path = write_patient_zip(source, zip_records, out)
            chosen = pick_patches(source, scan.records, args.sample_patients,
                                  args.per_class, args.max_patches, args.seed)
            write_patches(chosen, out / "patches")
        (out / "README.md").write_text(
            readme_text(command, args.slide_patient, slide, zip_path, len(zip_records), chosen,
                        args.sample_patients),
            encoding="utf-8",
        )
    except (IDCError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: slide {slide['width']}x{slide['height']} ({slide['patches']} patches), "
          f"{zip_path.name} ({len(zip_records)} patches), {len(chosen)} sample patches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
