"""A TFLite export of a model, scored by LiteRT without TensorFlow, written only if it agrees with the Keras model.

    python -m idc_core export [--model DIR] [--quantize none|float16|dynamic] [--check PATH ...]

"none" (the default) keeps float32: P(IDC) within about 1e-6 of Keras, what the shipped models are scored with.
"float16" stores float16 weights (half the size); "dynamic" is dynamic-range quantisation (int8 weights, about 4x
smaller, P(IDC) moved by up to 0.02). The export is compared with the Keras model on real patches (by default the
sample patches, the sample slide's tissue tiles and the sample patient zip in assets/, 1,699 patches; or --check
images/folders/zips): it is written (DIR/model.tflite, model-float16.tflite or model-int8.tflite, and its
comparison in DIR/export.json) only when the largest probability difference and the label agreement at the
model's threshold are within limits; otherwise nothing is written and the command exits 1. A folder with a
verified export is then scored by it (idc predict, evaluate, slide, the app); see idc_core.model.lite.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from idc_core.cli.options import add_model, command_prog, error, import_tensorflow, model_folder
from idc_core.config import EXPORT_MAX_DIFF as MAX_DIFF
from idc_core.config import EXPORT_MIN_AGREEMENT as MIN_AGREEMENT
from idc_core.config import QUANTIZATIONS
from idc_core.errors import IDCError
from idc_core.paths import assets_root

CHECK_ASSETS = ("patches", "sample_slide.png", "sample_patient_8980.zip")


def default_check() -> list[Path]:
    """The sample patches, slide and patient zip of paths.assets_root() that exist."""
    return [path for name in CHECK_ASSETS if (path := assets_root() / name).exists()]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: 0 when the export was written, 1 when it did not match the model, 2 on an error."""
    p = argparse.ArgumentParser(prog=command_prog("export"), description=__doc__.splitlines()[0])
    add_model(p)
    p.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                   help="none = float32 (default), float16 weights, or dynamic-range int8")
    p.add_argument("--check", nargs="+", default=[str(p) for p in default_check()], metavar="PATH",
                   help="real patches/slides/zips to compare on (default: the sample patches, slide and zip of "
                        "$IDC_ASSETS_DIR, else of the checkout's assets/ or ./assets)")
    p.add_argument("--max-diff", type=float, default=MAX_DIFF, help=f"largest |dP| allowed (default {MAX_DIFF})")
    p.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT,
                   help=f"smallest share of equal labels (default {MIN_AGREEMENT})")
    args = p.parse_args(argv)
    try:
        folder = model_folder(args.model)  # before TensorFlow's import: a missing model is said at once
    except IDCError as exc:
        return error(exc, 2)
    import_tensorflow()
    from idc_core.workflows.export import export_model_dir, read_check_patches

    try:
        out, agreement = export_model_dir(folder, quantize=args.quantize, check=read_check_patches(args.check),
                                          max_diff=args.max_diff, min_agreement=args.min_agreement)
    except IDCError as exc:
        return error(exc, 2)
    summary = (f"{agreement.n} patches: max |dP| {agreement.max_abs_diff:.2e}, "
               f"labels agree {agreement.label_agreement:.2%} at threshold {agreement.threshold:g}")
    if out is None:
        print(f"not written: the export does not match the model ({summary})", file=sys.stderr)
        return 1
    print(f"wrote {out} ({summary})", file=sys.stderr)
    return 0

