"""Shared helpers of the benchmarks: options, timing, real patches, models, FLOPs, tables, JSON.

Every script is run as `python bench/<script>.py [--quick] [--out DIR]` with the package installed
(`pip install -r requirements.txt` installs it editable, so idc_core is the working tree's). TensorFlow is imported
lazily (inside the functions that need it), so a parent process that only launches children
(bench_memory, bench_startup, run_all) stays light.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

RESULTS = REPO / "bench" / "results"
PATCHES = REPO / "assets" / "patches"
SAMPLE_SLIDE = REPO / "assets" / "sample_slide.png"
SAMPLE_TRUTH = REPO / "assets" / "sample_slide_tiles.csv"
SAMPLE_ZIP = REPO / "assets" / "sample_patient_8980.zip"
MODELS = REPO / "models"


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: --quick (small sizes, to check the script) and --out."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script works, numbers mean little")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"folder of the JSON result (default {RESULTS})")
    return p


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Fastest of `repeat` timed calls of fn(), in seconds (noise on a shared machine only adds time)."""
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), seconds) for one call."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


@functools.cache
def compile_bytecode() -> None:
    """Compile the package's bytecode, as `pip install` or a user's first run does. Where writing it is switched off
    (PYTHONDONTWRITEBYTECODE, as in this project's sandbox), every fresh process would otherwise compile the
    package's modules again: about 0.2 s of a slide command, which no user pays twice."""
    import compileall

    compileall.compile_dir(str(REPO / "idc_core"), quiet=1)


def whole_process(command: list[str], repeat: int = 1, **popen: Any) -> dict[str, float]:
    """Best wall seconds, the largest peak RSS (MB, ru_maxrss of that very child: os.wait4) and the least CPU seconds
    (user + system: less moved by other jobs on a shared machine than wall time) of running `command` as a fresh
    process `repeat` times, the package's bytecode compiled first (compile_bytecode); a failing command raises
    with its stderr."""
    compile_bytecode()
    runs = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
        runs.append((seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime))
    return {"seconds": min(r[0] for r in runs), "peak_rss_mb": max(r[1] for r in runs),
            "cpu_seconds": min(r[2] for r in runs)}


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, load, versions and git commit, to read the numbers against."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if "tensorflow" in sys.modules:
        import keras
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = keras.__version__
        info["tf_threads_intra_inter"] = [
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        ]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        info["git"] = commit + (" (dirty)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        info["git"] = None
    return info


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> None:
    """Print rows as an aligned text table; columns are (key, header, format spec such as '.1f')."""
    cells = [[_fmt(row.get(key), spec) for key, _, spec in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    sys.stdout.flush()


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not spec:
        return str(value)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def write_json(out_dir: Path, name: str, results: Any, *, quick: bool, started: float) -> Path:
    """Write out_dir/<name>.json: the command, machine, duration and results; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": "python " + shlex.join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(time.time() - started, 1),
        "machine": machine_info(),
        "results": results,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    tmp.replace(path)
    print(f"\nwrote {os.path.relpath(path, Path.cwd())}")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def real_patches(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n real patches (uint8 (n, 50, 50, 3)) and labels: the bundled 24, repeated in order."""
    from idc_core.data.dataset import parse_patch_name
    from idc_core.data.image_io import fit_patch, read_image

    paths = sorted(PATCHES.glob("*.png"))
    if not paths:
        raise SystemExit(f"no patches in {PATCHES}")
    patches = np.stack([fit_patch(read_image(p))[0] for p in paths])
    labels = np.array([parse_patch_name(p.name)[3] for p in paths], dtype=np.int64)
    reps = -(-n // len(paths))
    return np.ascontiguousarray(np.tile(patches, (reps, 1, 1, 1))[:n]), np.tile(labels, reps)[:n]


def shipped_model_dirs() -> dict[str, Path]:
    """arch -> the shipped model folder to benchmark for it (the default model first, else by name)."""
    from idc_core.model.folder import default_model_dir, list_model_dirs, read_model_card

    dirs = list_model_dirs(MODELS)
    try:
        default = default_model_dir(MODELS)
        dirs = [default] + [d for d in dirs if d != default]
    except Exception:  # no models/DEFAULT yet
        pass
    found: dict[str, Path] = {}
    for folder in dirs:
        try:
            arch = read_model_card(folder)["config"]["arch"]
        except Exception:
            continue
        if (folder / "model.keras").is_file():
            found.setdefault(arch, folder)
    return found


def model_for(arch: str, shipped: dict[str, Path] | None = None) -> tuple[Any, str]:
    """(keras model, where it came from): the shipped model of that arch, else built with weights=None."""
    from idc_core.model.builders import build_model
    from idc_core.model.folder import load_model_dir

    shipped = shipped_model_dirs() if shipped is None else shipped
    if arch in shipped:
        return load_model_dir(shipped[arch]).model, f"{shipped[arch].relative_to(REPO)} (trained)"
    return build_model(arch, weights=None, seed=0), "built, weights=None (untrained)"


def model_threshold(arch: str, shipped: dict[str, Path]) -> float:
    """The decision threshold of the shipped model of `arch`, else 0.5."""
    from idc_core.model.folder import read_model_card

    return float(read_model_card(shipped[arch])["config"]["threshold"]) if arch in shipped else 0.5


def default_model() -> tuple[Any, str]:
    """The model named by models/DEFAULT, else an untrained cnn (the numbers do not depend on weights)."""
    from idc_core.model.builders import build_model
    from idc_core.model.folder import default_model_dir, load_model_dir

    try:
        folder = default_model_dir(MODELS)
        return load_model_dir(folder).model, f"{folder.relative_to(REPO)} (models/DEFAULT)"
    except Exception:
        return build_model("cnn", weights=None, seed=0), "cnn built, weights=None (no models/DEFAULT yet)"


def flops_per_patch(model: Any) -> tuple[int, str]:
    """Float operations of one forward pass on one patch, and how they were counted.

    TensorFlow's graph profiler (tf.compat.v1.profiler, float_operation) on the frozen graph of
    model(x, training=False) for a (1, 50, 50, 3) input: a multiply-add counts as 2 FLOPs;
    batch-norm, activations and pooling are included. If the profiler fails, 2 x the MACs of the
    Conv2D / DepthwiseConv2D / SeparableConv2D / Dense layers, summed layer by layer.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        spec = tf.TensorSpec([1, *model.inputs[0].shape[1:]], tf.float32)
        concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        frozen = convert_variables_to_constants_v2(concrete)
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
        if profile.total_float_ops > 0:
            return int(profile.total_float_ops), "tf.compat.v1.profiler float_operation, frozen graph, batch 1"
    except Exception:  # the profiler is a TF1 API: fall back to counting MACs
        pass
    return 2 * layer_macs(model), "2 x conv/dense MACs summed layer by layer"


def layer_macs(model: Any) -> int:
    """Multiply-accumulates of the Conv2D, DepthwiseConv2D, SeparableConv2D and Dense layers, per patch."""
    import keras

    macs = 0
    for layer in model.layers:
        out = layer.output.shape
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            macs += out[1] * out[2] * (kh * kw * cin * layer.depth_multiplier + cin * layer.depth_multiplier * out[-1])
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            macs += out[1] * out[2] * kh * kw * layer.input.shape[-1] * layer.depth_multiplier
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            macs += out[1] * out[2] * kh * kw * layer.input.shape[-1] * out[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)


def matmul_flops(n: int = 4096, repeat: int = 5) -> float:
    """FLOP/s of a float32 n x n matrix multiply in TensorFlow (best of `repeat`; 2 n^3 FLOPs each)."""
    import tensorflow as tf

    a = tf.random.uniform([n, n], dtype=tf.float32, seed=1)
    b = tf.random.uniform([n, n], dtype=tf.float32, seed=2)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)))
    matmul(a, b).numpy()  # trace and warm up
    seconds = best_of(lambda: matmul(a, b).numpy(), repeat)
    return 2.0 * n**3 / seconds


def quiet_tensorflow() -> None:
    """Silence TensorFlow/absl warnings and Keras progress output in benchmark tables."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
