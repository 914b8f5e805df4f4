"""How a model fares on patches saved as JPEG: its held-out metrics on the plain patches and on the same patches
re-encoded at JPEG quality 90 and 70, for the validation and the test patients; written into the model's
metrics.json ("jpeg_robustness") and printed as a table.

    python scripts/jpeg_robustness.py --model models/cnn-jpeg --data ../shared/data/idc

Each figure is what `idc evaluate --model M --data D --split S [--jpeg-quality Q]` reports.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from idc_core.model.folder import load_model_dir
from idc_core.workflows.evaluate import evaluate_model

QUALITIES = (None, 90, 70)
KEYS = ("balanced_accuracy", "roc_auc", "f1", "recall", "specificity")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--data", required=True, help="labelled data in the dataset layout")
    args = p.parse_args()
    loaded = load_model_dir(args.model)
    table: dict[str, dict[str, dict]] = {}
    for split in ("val", "test"):
        for quality in QUALITIES:
            report = evaluate_model(loaded, args.data, split=split, jpeg_quality=quality)
            row = {k: report[k] for k in KEYS} | {"called_idc": report["confusion_matrix"][0][1]
                                                  + report["confusion_matrix"][1][1], "n": report["n_patches"]}
            row["called_idc"] = row["called_idc"] / row["n"]
            table.setdefault(split, {})["png" if quality is None else f"jpeg{quality}"] = row
            print(f"{split:<5} {'PNG' if quality is None else f'JPEG {quality}':<8} "
                  + "  ".join(f"{k} {row[k]:.3f}" for k in (*KEYS, "called_idc")), flush=True)
    path = Path(args.model) / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["jpeg_robustness"] = {"command": f"python scripts/jpeg_robustness.py --model {args.model} --data "
                                             f"{args.data}", "threshold": loaded.config.threshold, **table}
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote jpeg_robustness into {path}")


if __name__ == "__main__":
    main()
