"""Per-slide Reinhard normalisation of the dataset, for the stain-normalisation ablation of the README.

    python -m scripts.stain_slide_cache --data ../shared/data/idc --cache-dir runs/cache-reinhard-slide \\
        --test-patients-from models/cnn-wide/config.json
    python -m idc_core train --data ../shared/data/idc --arch cnn --out runs/reinhard-slide \\
        --test-patients-from models/cnn-wide/config.json --head gap --lr 1e-3 --augment-mode hed --epochs 12 \\
        --cache-dir runs/cache-reinhard-slide

Each patient of the dataset is one slide: its patches are normalised with the L*a*b* statistics of that
patient's own tissue (no label is used), to a reference that is the median of the training patients'
statistics. The result is written where `train --cache-dir` looks for the decoded patches, so the second
command trains, validates and tests on normalised patches with nothing else changed. It is a measurement:
a model trained this way expects per-slide normalised input, which the app and the commands do not make.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

from idc_core.config import TrainConfig
from idc_core.data.dataset import PatchSource, scan_dataset
from idc_core.data.pipeline import cache_path, cached_patches, write_cache
from idc_core.workflows.train import make_split
from idc_core.wsi.stain_norm import lab_stats, normalise, reference_stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--cache-dir", required=True, help="where to write the normalised patches (train --cache-dir)")
    p.add_argument("--test-patients-from", default=None, help="as train: keep this model's test patients")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="as train: the split's seed")
    a = p.parse_args(argv)

    config = TrainConfig(data=a.data, test_patients_from=a.test_patients_from, seed=a.seed)
    scan = scan_dataset(a.data)
    split = make_split(config, scan)
    with PatchSource.open(a.data) as source:
        patches = cached_patches(source, scan.records, TrainConfig.cache_dir)
        target_path = cache_path(source, scan.records, a.cache_dir)
    by_patient: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(scan.records):
        by_patient[record.patient].append(i)
    stats = {patient: lab_stats(patches[idx]) for patient, idx in by_patient.items()}
    reference = reference_stats([stats[p] for p in split.patients["train"]])
    normalised = np.empty_like(patches)
    for patient, idx in by_patient.items():
        normalised[idx] = normalise(patches[idx], stats[patient], reference)
    write_cache(target_path, normalised)
    summary = {"cache": str(target_path), "reference": reference.to_dict(),
               "patients": {p: s.to_dict() for p, s in sorted(stats.items())}}
    target_path.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {target_path} ({len(normalised)} patches of {len(stats)} patients); reference L*a*b* "
          f"mean {np.round(reference.mean, 1).tolist()}, std {np.round(reference.std, 1).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
