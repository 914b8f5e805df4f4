"""Training throughput against the input pipeline alone: is the model or the data the limit?

    python bench/bench_training.py [--quick] [--archs cnn,cancernet] [--data ../shared/data/idc]

decode    load_patches (PNG decode in a thread pool) from assets/sample_patient_8980.zip, or from
          --data (first --data-n records); and reading the decoded .npy cache (what later runs do)
pipeline  idc_core.data.pipeline.make_dataset over in-memory real patches, iterated alone (no model):
          training=True with augmentation (the training default), without it, and with oversampling
train     model.fit, compiled as idc_core.workflows.train does (Adam, BCE, accuracy, AUC), fed one cached
          batch repeated (so the data costs nothing: the model's own speed); and fed the real
          augmenting pipeline (what training gets)
Target: the pipeline delivers >= 3x what training consumes.
"""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path

import common
import numpy as np


def bench_decode(args) -> list[dict]:
    from idc_core.data.dataset import PatchSource, load_patches, scan_dataset

    root = args.data or common.SAMPLE_ZIP
    scan = scan_dataset(root)
    records = scan.records[: args.data_n]
    rows = []
    with PatchSource.open(root) as source:
        for workers in args.workers:
            seconds = common.best_of(partial(load_patches, source, records, workers=workers), args.repeat)
            rows.append({"what": f"decode PNGs, {workers} thread(s)", "patches": len(records),
                         "pps": len(records) / seconds, "source": str(Path(root).name)})
        patches = load_patches(source, records)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.npy"
        np.save(path, patches)
        seconds = common.best_of(lambda: np.asarray(np.load(path, mmap_mode="r")), args.repeat)
    rows.append({"what": "read decoded .npy cache", "patches": len(records), "pps": len(records) / seconds,
                 "source": "cache"})
    return rows


def bench_pipeline(patches: np.ndarray, labels: np.ndarray, args) -> list[dict]:
    from idc_core.data.pipeline import make_dataset

    rows = []
    for name, kwargs in (("augment (training default)", {"augment": True}),
                         ("augment + oversample", {"augment": True, "oversample": True}),
                         ("no augmentation", {"augment": False})):
        ds, steps = make_dataset(patches, labels, batch_size=args.batch_size, training=True, **kwargs)

        def epoch(ds=ds, steps=steps) -> int:  # this iteration's dataset: one epoch of the endless stream
            return sum(int(x.shape[0]) for x, _ in ds.take(steps))

        epoch()  # warm-up: traces the map functions
        seconds = common.best_of(epoch, args.repeat)
        rows.append({"what": f"pipeline: {name}", "patches": steps * args.batch_size,
                     "pps": steps * args.batch_size / seconds})
    return rows


def _epoch_timer():
    """A Keras callback whose .times holds the wall time of each epoch."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    return EpochTimer()


def bench_train(arch: str, patches: np.ndarray, labels: np.ndarray, args) -> list[dict]:
    import keras
    import tensorflow as tf

    from idc_core.data.pipeline import make_dataset
    from idc_core.model.builders import build_model

    rows = []
    bs, steps = args.batch_size, args.steps
    for feed in ("model only (one cached batch)", "real augmenting pipeline"):
        model = build_model(arch, weights=None, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(),
                      metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])
        if feed.startswith("model"):
            batch = (tf.constant(patches[:bs], tf.float32), tf.constant(labels[:bs], tf.float32))
            ds = tf.data.Dataset.from_tensors(batch).repeat()
        else:
            ds, _ = make_dataset(patches, labels, batch_size=bs, training=True, augment=True)  # endless
        timer = _epoch_timer()
        model.fit(ds, epochs=1 + args.repeat, steps_per_epoch=steps, verbose=0, callbacks=[timer])
        seconds = min(timer.times[1:])  # epoch 1 includes tracing
        rows.append({"what": f"train {arch}: {feed}", "patches": steps * bs, "pps": steps * bs / seconds,
                     "arch": arch})
        del model
    return rows


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--archs", default="cnn,cancernet", help="architectures to train (comma-separated)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size (default 128, as train.py)")
    p.add_argument("--steps", type=int, default=12, help="training steps per timed epoch (default 12)")
    p.add_argument("--n", type=int, default=4096, help="in-memory patches for the pipeline (default 4096)")
    p.add_argument("--repeat", type=int, default=2, help="timed repeats, best kept (default 2)")
    p.add_argument("--data", help="optional dataset folder/zip to time decoding on (default: the sample zip)")
    p.add_argument("--data-n", type=int, default=2000, help="records decoded from --data (default 2000)")
    p.add_argument("--workers", default="1,2,4", help="decode thread counts (default 1,2,4)")
    args = p.parse_args()
    if args.quick:
        args.archs, args.steps, args.n, args.repeat, args.workers = "cnn", 2, 512, 1, "4"
        args.batch_size, args.data_n = 64, 100
    args.workers = [int(w) for w in args.workers.split(",") if w]
    started = time.time()
    common.quiet_tensorflow()

    rows = bench_decode(args)
    patches, labels = common.real_patches(args.n)
    rows += bench_pipeline(patches, labels, args)
    supply = rows[-3]["pps"]  # the augmenting pipeline, as train.py uses it
    train_rows = []
    for arch in [a for a in args.archs.split(",") if a]:
        train_rows += bench_train(arch, patches, labels, args)
        print(f"  {arch}: {train_rows[-2]['pps']:.0f} patches/s (model only)", flush=True)
    for row in train_rows:
        row["pipeline_over_training"] = supply / row["pps"]
    rows += train_rows
    common.print_table(f"Training and input pipeline, patches/s (batch {args.batch_size})", rows,
                       [("what", "what", ""), ("patches", "patches", "d"), ("pps", "patches/s", ".0f"),
                        ("pipeline_over_training", "pipeline / training", ".1f")])
    model_only = [r for r in train_rows if "model only" in r["what"]]
    results = {
        "batch_size": args.batch_size,
        "rows": rows,
        "pipeline_pps": supply,
        "targets": {"pipeline_at_least_3x_training": {r["arch"]: r["pipeline_over_training"] >= 3
                                                      for r in model_only}},
    }
    common.write_json(args.out, "training", results, quick=args.quick, started=started)


if __name__ == "__main__":
    main()
