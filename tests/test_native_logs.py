"""TensorFlow's and LiteRT's C++ start-up lines (CUDA probing, cuInit, absl, XNNPACK) stay out of what a user reads:
the app's log, the commands' stderr and scripts/make_golden.py all load models through idc_core."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

NOISE = ("cuInit", "absl::InitializeLog", "XNNPACK", "cuda_")


def test_loading_and_scoring_with_keras_and_litert_prints_no_start_up_lines(tmp_path):
    code = f"""
import sys
import numpy as np
from idc_core.config import ModelConfig
from idc_core.model.builders import build_model
from idc_core.model.folder import load_model_dir, save_model_dir
from idc_core.workflows.export import export_model_dir
patches = np.zeros((2, 50, 50, 3), np.uint8)
folder = save_model_dir({str(tmp_path / "m")!r}, build_model("cnn", seed=0, width=0.25),
                        ModelConfig(name="m", arch="cnn", threshold=0.5))
load_model_dir(folder, runtime="keras").scorer.predict(patches)
export_model_dir(folder, quantize="none", check=patches)
load_model_dir(folder).scorer.predict(patches)
print("mine", file=sys.stderr)
"""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell may have it
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mine" in done.stderr  # our own lines pass through
    assert not [line for line in done.stderr.splitlines() if any(word in line for word in NOISE)], done.stderr
