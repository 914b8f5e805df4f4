"""Every command's --help is instant and clean: TensorFlow is imported only when a command runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

from idc_core.__main__ import COMMANDS

# each command through `python -m idc_core COMMAND` (what the `idc` script runs)
INVOCATIONS = [("idc_core", command) for command in COMMANDS]


def test_the_command_table_names_every_module_of_idc_core_cli():
    modules = {p.stem for p in (REPO / "idc_core" / "cli").glob("*.py")} - {"__init__", "options"}
    assert COMMANDS.keys() == modules
    assert all(module == f"idc_core.cli.{name}" for name, (module, _) in COMMANDS.items())


@pytest.mark.parametrize("invocation", INVOCATIONS, ids=" ".join)
def test_help_prints_usage_under_the_name_it_was_run_by_and_nothing_from_tensorflow(invocation):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", *invocation, "--help"], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m {' '.join(invocation)} ")
    assert done.stderr == ""


def test_the_idc_console_script_names_itself_in_every_usage_line(tmp_path):
    script = tmp_path / "idc"  # what `pip install` writes for the [project.scripts] entry idc
    script.write_text("import sys\nfrom idc_core.__main__ import main\nsys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for command in ("", *COMMANDS):
        done = subprocess.run([sys.executable, str(script), *command.split(), "--help"], capture_output=True,
                              text=True, cwd=REPO, env=env, timeout=120)
        assert done.returncode == 0 and done.stdout.startswith(f"usage: idc {command or 'COMMAND'} "), done.stdout


def test_importing_the_command_modules_does_not_import_tensorflow():
    modules = ", ".join([*(module for module, _ in COMMANDS.values()), "idc_core.__main__"])
    code = f"import sys, {modules}; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr[-500:]


# What a --help must not pay for (each costs 0.1-3 s of CPU to import, numpy, Pillow and OpenCV ~0.3 s together):
# --help of every command stays under 0.5 s on a quiet machine without timing it in a test.
HEAVY = ("tensorflow", "keras", "sklearn", "scipy", "pandas", "ray", "streamlit", "ai_edge_litert", "tf_keras_vis",
         "numpy", "PIL", "cv2", "shapely", "tifffile", "openslide")


def test_help_of_every_command_imports_none_of_the_heavy_packages():
    code = ("import contextlib, io, sys\nfrom idc_core.__main__ import COMMANDS, main\nheavy = {}\n"
            "for name in COMMANDS:\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main([name, '--help'])\n"
            f"    heavy[name] = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip() == str({name: [] for name in COMMANDS}), done.stdout + done.stderr[-500:]


def test_the_version_is_pyprojects_and_idc_version_prints_it():
    import tomllib

    import idc_core

    assert idc_core.__version__ == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run([sys.executable, "-m", "idc_core", "--version"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert (done.returncode, done.stdout) == (0, f"idc {idc_core.__version__}\n")
