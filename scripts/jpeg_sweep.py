"""The sweep that chooses the default model (issue 28): networks trained from scratch with JPEG re-encoding, each
judged on the validation patients only, on plain patches and on the same patches saved as JPEG 90 and 70.

    python scripts/jpeg_sweep.py --data ../shared/data/idc [--only NAME ...]

Each candidate is one `python -m idc_core train` command (printed, and kept in its config.json) writing
models/NAME. A candidate whose folder is complete is not trained again; one that was stopped mid-way resumes
where it stopped (the train command does that), so the sweep can be stopped and run again at any time. The
validation table goes to models/jpeg_sweep.json and is printed; the test patients are never looked at here
(scripts/jpeg_robustness.py reports them once, for the model chosen).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

REFERENCE = "cnn-2conv"
"""The model each candidate is held against: the best one on plain patches, trained without JPEG."""
BASE = ["--arch", "cnn", "--test-patients-from", "models/cnn-wide/config.json", "--head", "gap", "--lr", "1e-3",
        "--augment-mode", "hed", "--epochs", "30", "--patience", "5", "--convs-per-block", "2"]
"""What every candidate shares: cnn-2conv's network, split and schedule, with a longer budget and patience."""
CANDIDATES = {
    "jpeg-q40-p50": ["--jpeg-augment", "0.5", "--jpeg-quality", "40", "95"],
    "distil-q40-p50": ["--jpeg-augment", "0.5", "--jpeg-quality", "40", "95", "--distill-from", "models/cnn-2conv"],
    "jpeg-q40-p30": ["--jpeg-augment", "0.3", "--jpeg-quality", "40", "95"],
    "wide-q40-p50": ["--jpeg-augment", "0.5", "--jpeg-quality", "40", "95", "--width", "1.5"],
}
QUALITIES = (None, 90, 70)
KEYS = ("balanced_accuracy", "roc_auc", "f1")
RESULTS = Path("models/jpeg_sweep.json")


def train_command(name: str, data: str) -> list[str]:
    return [sys.executable, "-m", "idc_core", "train", "--data", data, *BASE, *CANDIDATES[name], "--out",
            f"models/{name}"]


def validation_row(folder: Path, data: str) -> dict:
    """A model's validation figures on plain patches and JPEG 90 / 70, its validation ECE and its epochs."""
    from idc_core.model.folder import load_model_dir
    from idc_core.workflows.evaluate import evaluate_model

    loaded = load_model_dir(folder)
    row: dict = {"threshold": loaded.config.threshold}
    for quality in QUALITIES:
        report = evaluate_model(loaded, data, split="val", jpeg_quality=quality)
        key = "png" if quality is None else f"jpeg{quality}"
        row[key] = {k: report[k] for k in KEYS} | {"ece": report["calibration"]["ece"], "n": report["n_patches"]}
        print(f"  {folder.name:<16} {key:<7} " + "  ".join(f"{k} {row[key][k]:.4f}" for k in (*KEYS, "ece")),
              flush=True)
    history = json.loads((folder / "history.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    row["epochs"] = len(history["val_auc"])
    row["best_epoch"] = 1 + max(range(row["epochs"]), key=history["val_auc"].__getitem__)
    row["train_minutes"] = round(metrics["train_seconds"] / 60, 1)
    row["command"] = loaded.config.command
    return row


def table(rows: dict[str, dict]) -> str:
    """The README's markdown table: balanced accuracy / ROC-AUC / F1 per input, and ECE, epochs and minutes."""
    lines = ["| model | plain | JPEG 90 | JPEG 70 | ECE (plain) | epochs (best) | minutes |",
             "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        cells = [" / ".join(f"{row[key][k]:.3f}" for k in KEYS) for key in ("png", "jpeg90", "jpeg70")]
        lines.append(f"| `{name}` | {' | '.join(cells)} | {row['png']['ece']:.3f} | {row['epochs']} "
                     f"({row['best_epoch']}) | {row['train_minutes']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the dataset (folder or zip)")
    p.add_argument("--only", nargs="+", choices=sorted(CANDIDATES), help="these candidates only (default all)")
    args = p.parse_args()
    rows = json.loads(RESULTS.read_text()).get("models", {}) if RESULTS.is_file() else {}
    rows[REFERENCE] = rows.get(REFERENCE) or validation_row(Path("models") / REFERENCE, args.data)
    for name in args.only or CANDIDATES:
        folder = Path("models") / name
        if not (folder / "metrics.json").is_file():
            command = train_command(name, args.data)
            print("$ python " + shlex.join(command[1:]), flush=True)
            if subprocess.run(command).returncode:
                sys.exit(f"{name}: the training failed; run the sweep again to resume it")
        rows[name] = validation_row(folder, args.data)
        RESULTS.write_text(json.dumps({"command": "python scripts/jpeg_sweep.py --data " + args.data,
                                       "split": "validation patients only", "models": rows}, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
