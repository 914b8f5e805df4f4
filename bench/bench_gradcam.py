"""Grad-CAM time per patch for each architecture (idc_core.inference.gradcam.compute_heatmaps).

    python bench/bench_gradcam.py [--quick] [--archs cnn,resnet50] [--methods gradcam,gradcam++]

Per architecture and method: the first call (builds the logit view and traces the gradient), then
the best of --repeat calls on 1 patch (what the app does when a tile is clicked) and on a batch
of --batch patches (seconds per patch). Shipped models are used where they exist, else the
architecture is built with weights=None (the time does not depend on the weight values).
"""

from __future__ import annotations

import time
from functools import partial

import common

ARCHS = ("cnn", "cancernet", "resnet50", "mobilenetv2", "efficientnetb0")


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--archs", default=",".join(ARCHS), help="comma-separated architectures")
    p.add_argument("--methods", default="gradcam", help="comma-separated: gradcam, gradcam++, scorecam")
    p.add_argument("--batch", type=int, default=32, help="patches per call for the batched time (default 32)")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats, best kept (default 3)")
    args = p.parse_args()
    if args.quick:
        args.archs, args.batch, args.repeat = "cnn", 4, 1
    started = time.time()
    common.quiet_tensorflow()
    from idc_core.inference.gradcam import compute_heatmaps

    patches, _ = common.real_patches(args.batch)
    shipped = common.shipped_model_dirs()
    rows = []
    for arch in [a for a in args.archs.split(",") if a]:
        model, source = common.model_for(arch, shipped)
        for method in [m for m in args.methods.split(",") if m]:
            _, first = common.timed(partial(compute_heatmaps, model, patches[:1], method=method))
            one = common.best_of(partial(compute_heatmaps, model, patches[:1], method=method), args.repeat)
            many = common.best_of(partial(compute_heatmaps, model, patches, method=method), args.repeat)
            rows.append({"arch": arch, "method": method, "first_call_s": first, "one_patch_ms": 1000 * one,
                         "batch": len(patches), "per_patch_in_batch_ms": 1000 * many / len(patches),
                         "model": source})
            print(f"  {arch} {method}: {1000 * one:.0f} ms for one patch", flush=True)
        del model
    common.print_table(f"Grad-CAM time (best of {args.repeat})", rows,
                       [("arch", "arch", ""), ("method", "method", ""), ("first_call_s", "1st call s", ".2f"),
                        ("one_patch_ms", "1 patch ms", ".0f"),
                        ("per_patch_in_batch_ms", f"ms/patch in {args.batch}", ".1f"), ("model", "model", "")])
    common.write_json(args.out, "gradcam", {"rows": rows}, quick=args.quick, started=started)


if __name__ == "__main__":
    main()
