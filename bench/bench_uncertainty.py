"""The cost of per-patch uncertainty: patches/s of the plain score against MC dropout, TTA and plain confidence.

    python bench/bench_uncertainty.py [--quick] [--n 1024] [--samples 16] [--model models/cnn-gap-hed]

All on the same real patches (assets/patches, repeated) with the default (or given) model, batch 256:
- plain:      idc_core.inference.predict.predict_patches (one pass);
- confidence: the same pass, the uncertainty read off the score (no extra pass);
- tta:        the plain pass + the 8 dihedral views of each patch, batched (8 copies of 32 patches per call);
- mc:         the plain pass + `samples` dropout passes, batched (16 copies of 16 patches per call);
- mc unbatched: the same MC samples as `samples` separate calls over all patches (what batching replaces).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import common


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024, help="patches (default 1024)")
    p.add_argument("--samples", type=int, default=16, help="Monte-Carlo dropout passes (default 16)")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: models/DEFAULT)")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats, best kept (default 3)")
    args = p.parse_args()
    if args.quick:
        args.n, args.samples, args.repeat = 64, 4, 1
    started = time.time()
    common.quiet_tensorflow()
    from idc_core.inference.predict import predict_patches
    from idc_core.inference.uncertainty import mc_dropout_view, predict_with_uncertainty
    from idc_core.model.folder import default_model_dir, load_model_dir

    loaded = load_model_dir(args.model or default_model_dir())
    patches, _ = common.real_patches(args.n)
    threshold = loaded.config.threshold
    view = mc_dropout_view(loaded.model)

    def unbatched_mc() -> None:
        predict_patches(loaded.model, patches)
        for _ in range(args.samples):
            predict_patches(view, patches)

    runs = {
        "plain": partial(predict_patches, loaded.model, patches),
        "confidence": partial(predict_with_uncertainty, loaded.model, patches, method="confidence",
                              threshold=threshold),
        "tta": partial(predict_with_uncertainty, loaded.model, patches, method="tta", threshold=threshold),
        "mc": partial(predict_with_uncertainty, loaded.model, patches, method="mc", threshold=threshold,
                      samples=args.samples),
        "mc unbatched": unbatched_mc,
    }
    rows = []
    for name, run in runs.items():
        run()  # trace and warm up
        seconds = common.best_of(run, args.repeat)
        rows.append({"method": name, "seconds": seconds, "patches_per_s": len(patches) / seconds})
        print(f"  {name}: {len(patches) / seconds:,.0f} patches/s", flush=True)
    plain = rows[0]["seconds"]
    for row in rows:
        row["x_plain_time"] = row["seconds"] / plain
    common.print_table(f"Uncertainty cost on {len(patches)} patches, {loaded.path.name} (best of {args.repeat})",
                       rows, [("method", "method", ""), ("patches_per_s", "patches/s", ",.0f"),
                              ("x_plain_time", "x plain time", ".1f")])
    common.write_json(args.out, "uncertainty", {"model": str(loaded.path), "n": len(patches),
                                                "samples": args.samples, "rows": rows},
                      quick=args.quick, started=started)


if __name__ == "__main__":
    main()
