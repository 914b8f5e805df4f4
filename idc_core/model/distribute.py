"""Training on several GPUs or machines with tf.distribute: the strategy, who writes files, and the data sharding.

none: the default strategy (one device). mirrored: MirroredStrategy over every local GPU (or the logical
CPU devices a test makes). multiworker: MultiWorkerMirroredStrategy over the machines named in TF_CONFIG;
every worker runs the same command, and only the chief writes the model folder. `--batch-size` is the
GLOBAL batch (split across replicas), so results do not depend on how many devices there are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DISTRIBUTE_MODES = ("none", "mirrored", "multiworker")


def make_strategy(mode: str) -> Any:
    """The tf.distribute strategy for `mode` (ValueError for an unknown one)."""
    import tensorflow as tf

    if mode == "none":
        return tf.distribute.get_strategy()
    if mode == "mirrored":
        return tf.distribute.MirroredStrategy()
    if mode == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--distribute multiworker needs TF_CONFIG (the cluster and this worker's task): see README")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"distribute must be one of {DISTRIBUTE_MODES}, got {mode!r}")


def task() -> tuple[str, int]:
    """(task type, index) of this process from TF_CONFIG; ("chief", 0) when there is none."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    except ValueError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON ({exc})") from exc
    task_info = config.get("task") or {}
    return str(task_info.get("type", "chief")), int(task_info.get("index", 0))


def is_chief() -> bool:
    """The process that writes the model folder: the chief, or worker 0 of a cluster that has no chief."""
    kind, index = task()
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def write_dir(out: Path) -> Path:
    """Where this process saves: `out` on the chief; a scratch folder inside it on other workers.

    (Every worker must run the same save calls, which hold collective operations; only the chief's copy is kept.)
    """
    if is_chief():
        return out
    kind, index = task()
    return out / f".{kind}-{index}"


def shard_by_data(dataset: Any) -> Any:
    """Shard an in-memory tf.data pipeline by elements across workers (there are no files to shard by)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
