"""Every command's --help is instant and clean: TensorFlow is imported only when a command runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

COMMANDS = ("train", "evaluate", "predict", "export", "slide", "calibrate")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_prints_usage_and_nothing_from_tensorflow(command):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", f"idc_core.{command}", "--help"], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m idc_core.")
    assert done.stderr == ""


def test_importing_the_command_modules_does_not_import_tensorflow():
    code = ("import sys, idc_core.train, idc_core.evaluate, idc_core.predict, idc_core.export, idc_core.slide, "
            "idc_core.calibrate, "
            "idc_core.__main__; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr[-500:]
