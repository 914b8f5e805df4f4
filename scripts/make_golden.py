"""Golden outputs of the shipped models: what each model under models/ says about the bundled samples.

    python scripts/make_golden.py            # rewrite tests/data/golden/ (after a model changes on purpose)
    python scripts/make_golden.py --check    # compare with it instead, as tests/test_golden.py does

For every model folder under models/ that has a config.json, tests/data/golden/<model>/ gets one CSV per
input, P(IDC) with 6 decimals and the label at the model's threshold:

- patches.csv: the patches in assets/patches/, through `idc predict` (columns file, prob_idc, label)
- sample_patient_8980_members.csv: the 696 patches of the patient zip, through `idc predict`
- sample_slide.csv: assets/sample_slide.png read at the model's scale, tiled and scored as `idc slide`
  does (its tiles.csv: x, y, width, height of each tissue tile in level-0 pixels, prob_idc, label, and prob_idc_tile
  when the model has a slide-context step, and qc: the artefact kind of a tile set aside by QC, wsi.qc)
- sample_patient_8980.csv: the patient zip rebuilt as a slide from the x/y in its names, likewise
- model.json: the model's threshold, mpp, what scored it (runtime and file: the folder's verified TFLite export
  run by LiteRT when it has one, else Keras, as the commands choose) and the sha256 of every file in its folder,
  so that a failing comparison can say whether the model changed or the code did.

The patches go through the `idc predict` command itself (idc_core.__main__.main, with --csv), the slides
through workflows.slide_analysis.analyse_slide, what `idc slide` runs for each slide, without the heatmap and GeoJSON it
writes besides. The whole folder is replaced, so golden outputs of a model that is gone are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MODELS = REPO / "models"
ASSETS = REPO / "assets"
GOLDEN = REPO / "tests" / "data" / "golden"
COMMAND = "python scripts/make_golden.py"
# Float noise, measured on this machine (2 cores, x86-64) on sample-slide tiles with every shipped model: batch
# size 256 vs 7, 2 threads vs 1, and TensorFlow's oneDNN kernels on vs off (a stand-in for another CPU's
# kernels) move P(IDC) by at most 2e-7; writing 6 decimals adds up to 1e-6. 1e-4 is 100x that, and small next
# to differences that matter (the app shows P(IDC) with 3 decimals; the int8 export may differ by 0.02).
ATOL = 1e-4
PATCH_INPUTS = {  # golden CSV -> what `idc predict` is given (relative to assets/)
    "patches.csv": "patches",
    "sample_patient_8980_members.csv": "sample_patient_8980.zip",
}
SLIDE_INPUTS = {  # golden CSV -> the slide file (relative to assets/)
    "sample_slide.csv": "sample_slide.png",
    "sample_patient_8980.csv": "sample_patient_8980.zip",
}
META_FILE = "model.json"
VALUE_COLUMNS = ("prob_idc", "label")  # what the patch CSVs keep of `idc predict`'s
KEY_COLUMNS = ("file", "x", "y", "width", "height", "size")  # what names a row: a patch's file, a tile's level-0 box


def shipped_models(root: Path = MODELS) -> list[Path]:
    """The model folders under models/ that have a config.json, sorted."""
    from idc_core.model.folder import list_model_dirs

    return list_model_dirs(root)


def _predict_rows(model_dir: Path) -> dict[str, str]:
    """The CSVs of PATCH_INPUTS, from one run of `idc predict --model model_dir --csv ...` over all of them."""
    from idc_core.__main__ import main as idc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "predict.csv"
        paths = [str(ASSETS / name) for name in PATCH_INPUTS.values()]
        with contextlib.redirect_stderr(io.StringIO()) as log:  # its progress bar and summary
            status = idc(["predict", "--model", str(model_dir), "--csv", str(out), *paths])
        if status != 0:
            raise RuntimeError(f"idc predict --model {model_dir} failed (exit {status}):\n{log.getvalue()}")
        with open(out, newline="") as handle:
            rows = list(csv.DictReader(handle))
    texts = {}
    for golden, name in PATCH_INPUTS.items():
        prefix = str(ASSETS / name) + "/"
        mine = [row for row in rows if row["file"].startswith(prefix)]
        if not mine:
            raise RuntimeError(f"idc predict gave no rows for {ASSETS / name}")
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(("file", *VALUE_COLUMNS))
        for row in mine:
            writer.writerow([str(Path(row["file"]).relative_to(ASSETS)), row["prob_idc"], row["label"]])
        texts[golden] = text.getvalue()
    return texts


def _slide_rows(loaded) -> dict[str, str]:
    """The tiles.csv of each of SLIDE_INPUTS, as `idc slide` scores it (workflows.slide_analysis.analyse_slide)."""
    from idc_core.workflows.slide_analysis import analyse_slide
    from idc_core.wsi.outputs import tiles_csv
    from idc_core.wsi.reader import open_slide

    texts = {}
    for golden, name in SLIDE_INPUTS.items():
        with open_slide(ASSETS / name, model_mpp=loaded.config.mpp) as reader:
            analysis = analyse_slide(reader, loaded.scorer, model_mpp=loaded.config.mpp,
                                     threshold=loaded.config.threshold, context=loaded.context)
        texts[golden] = tiles_csv(analysis.result, analysis.level0_boxes())
    return texts


def score_model(model_dir: Path, out: Path) -> Path:
    """Write the golden CSVs and model.json of one model folder into out/ (created); returns out."""
    from idc_core.model.folder import load_model_dir
    from idc_core.workflows.slide_analysis import file_checksum

    loaded = load_model_dir(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    for golden, text in {**_predict_rows(model_dir), **_slide_rows(loaded)}.items():
        (out / golden).write_text(text)
    files = {p.relative_to(model_dir).as_posix(): file_checksum(p) for p in sorted(model_dir.rglob("*")) if p.is_file()}
    meta = {"model": model_dir.name, "threshold": loaded.config.threshold, "mpp": loaded.config.mpp,
            "scored_by": loaded.scored_by, "sha256": files, "made_by": COMMAND}
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _read(path: Path) -> tuple[list[str], dict[tuple[str, ...], dict[str, str]]]:
    """Header and rows of a golden CSV, keyed by the KEY_COLUMNS it has (file, or x/y/size): never by a value."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        keys = [c for c in header if c in KEY_COLUMNS]
        return header, {tuple(row[k] for k in keys): row for row in reader}


def _key_text(key: tuple[str, ...], header: Sequence[str]) -> str:
    keys = [c for c in header if c in KEY_COLUMNS]
    return key[0] if keys == ["file"] else ", ".join(f"{k}={v}" for k, v in zip(keys, key))


def _is_number_column(column: str) -> bool:
    """A probability (prob_idc, prob_idc_tile, ...) or the uncertainty: compared within the tolerance."""
    return column.startswith("prob") or column == "uncertainty"


def _differences(gold: dict[str, str], new: dict[str, str], threshold: float, atol: float) -> tuple[float, list[str]]:
    """The largest |d| over a row's number columns and each column that differs: a number by more than atol, a label
    that flipped while the golden P(IDC) is not within atol of the threshold, any other column at all."""
    largest, differing = 0.0, []
    for column, value in gold.items():
        if column in KEY_COLUMNS:
            continue
        if _is_number_column(column) and value and new[column]:
            delta = abs(float(new[column]) - float(value))
            largest = max(largest, delta)
            if delta > atol:
                differing.append(column)
        elif column == "label":  # a tile set aside by QC has the label artefact and no P(IDC)
            p_gold, p_new = gold.get("prob_idc", ""), new.get("prob_idc", "")
            near = bool(p_gold and p_new) and abs(float(p_gold) - threshold) <= atol
            if value != new[column] and not near:
                differing.append(column)
        elif value != new[column]:
            differing.append(column)
    return largest, differing


def compare_csv(golden: Path, new: Path, *, threshold: float, atol: float = ATOL, show: int = 15) -> list[str]:
    """What differs between a golden CSV and a new one: rows missing or new, any probability column (prob_idc,
    prob_idc_tile) or the uncertainty off by more than atol, labels that flipped.

    Rows are matched on their file or level-0 box only. A label may flip without counting when the golden P(IDC)
    is within atol of the threshold (float noise can put it on either side). Each problem is one line; at most
    `show` rows are listed per kind.
    """
    head_g, gold = _read(golden)
    head_n, rows = _read(new)
    if head_g != head_n:
        return [f"{golden.name}: columns {head_n}, golden {head_g}"]
    problems = []
    for what, keys in (("missing (in golden, not scored now)", gold.keys() - rows.keys()),
                       ("new (scored now, not in golden)", rows.keys() - gold.keys())):
        if keys:
            listed = ", ".join(f"[{_key_text(k, head_g)}]" for k in sorted(keys)[:show])
            problems.append(f"{golden.name}: {len(keys)} rows {what}: {listed}{' ...' if len(keys) > show else ''}")
    differing = []
    for key in sorted(gold.keys() & rows.keys()):
        largest, columns = _differences(gold[key], rows[key], threshold, atol)
        if columns:
            differing.append((largest, key, columns))
    if differing:
        differing.sort(key=lambda item: -item[0])
        problems.append(f"{golden.name}: {len(differing)} of {len(gold)} rows differ (|d| > {atol:g} in a probability "
                        f"column or label flipped; largest |d| {differing[0][0]:.6f}):")
        for _, key, columns in differing[:show]:
            g, n = gold[key], rows[key]
            said = ", ".join(f"{c} {g[c]} -> {n[c]}" for c in columns)
            problems.append(f"    [{_key_text(key, head_g)}] {said}")
        if len(differing) > show:
            problems.append(f"    ... and {len(differing) - show} more")
    return problems


def compare_model(golden_dir: Path, new_dir: Path, *, atol: float = ATOL) -> list[str]:
    """Every difference between a model's golden folder and a fresh score_model() folder, with a hint why."""
    if not golden_dir.is_dir():
        return [f"no golden outputs for model {new_dir.name!r} ({golden_dir} is missing): run {COMMAND}"]
    meta_g = json.loads((golden_dir / META_FILE).read_text())
    meta_n = json.loads((new_dir / META_FILE).read_text())
    problems = []
    for name in sorted({*PATCH_INPUTS, *SLIDE_INPUTS}):
        if not (golden_dir / name).is_file():
            problems.append(f"{name}: no golden file {golden_dir / name}: run {COMMAND}")
            continue
        problems += compare_csv(golden_dir / name, new_dir / name, threshold=float(meta_g["threshold"]), atol=atol)
    if problems:
        changed = [f"{key} {meta_g.get(key)} -> {meta_n.get(key)}" for key in ("threshold", "mpp")
                   if meta_g.get(key) != meta_n.get(key)]
        files_g, files_n = meta_g.get("sha256", {}), meta_n.get("sha256", {})
        for name in sorted(files_g.keys() | files_n.keys()):
            if files_g.get(name) != files_n.get(name):
                how = "added" if name not in files_g else "removed" if name not in files_n else "changed"
                changed.append(f"{name} {how}")
        why = (f"the model folder changed since the golden outputs were made ({'; '.join(changed)}): if that is "
               f"intended, regenerate them with `{COMMAND}` and commit tests/data/golden/" if changed else
               "the model folder is the one the golden outputs were made with, so the code changed what it predicts")
        problems = [f"models/{new_dir.name}: predictions differ from tests/data/golden/{new_dir.name}/ ({why})",
                    *problems]
    return problems


def make_golden(models: Sequence[Path], out: Path) -> None:
    """Replace `out` with the golden outputs of `models` (written beside it first, then swapped in)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".golden-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the folder it becomes is an ordinary one
    try:
        for model_dir in models:
            print(f"scoring the samples with {model_dir} ...", file=sys.stderr)
            score_model(model_dir, tmp / model_dir.name)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_golden(models: Sequence[Path], golden: Path, *, atol: float = ATOL) -> list[str]:
    """Re-score with every model and compare with `golden`; [] when everything agrees."""
    problems = []
    known = {p.name for p in golden.iterdir() if p.is_dir()} if golden.is_dir() else set()
    gone = sorted(known - {m.name for m in models})
    if gone:
        problems.append(f"golden outputs for models that are not shipped: {', '.join(gone)}: run {COMMAND}")
    with tempfile.TemporaryDirectory() as tmp:
        for model_dir in models:
            new = score_model(model_dir, Path(tmp) / model_dir.name)
            problems += compare_model(golden / model_dir.name, new, atol=atol)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help=f"compare with {GOLDEN.relative_to(REPO)} (|dP| <= {ATOL:g}) instead of rewriting it")
    args = parser.parse_args(argv)
    models = shipped_models()
    if not models:
        print(f"error: no model folders with a config.json under {MODELS}", file=sys.stderr)
        return 2
    if args.check:
        problems = check_golden(models, GOLDEN)
        print("\n".join(problems) if problems else f"{len(models)} models agree with {GOLDEN}",
              file=sys.stderr if problems else sys.stdout)
        return 1 if problems else 0
    make_golden(models, GOLDEN)
    print(f"golden outputs of {len(models)} models ({', '.join(m.name for m in models)}) in {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
