"""idc_core.paths: the models and assets folders come from the environment, else the package's own checkout (an
editable install), else the working directory; the commands find their default model from any folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ASSETS, REPO

from idc_core import paths
from idc_core.errors import ModelError
from idc_core.model.folder import default_model_dir
from idc_core.paths import assets_root, default_model_path, models_root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (paths.MODELS_ENV, paths.ASSETS_ENV, "PYTHONPATH")}
    return {**env, **extra}


def test_the_checkout_is_found_from_where_the_package_lies():
    assert paths.checkout_root() == REPO


def test_from_another_folder_the_checkouts_folders_are_used(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    monkeypatch.delenv(paths.ASSETS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert (models_root(), assets_root()) == (REPO / "models", REPO / "assets")
    assert default_model_dir() == REPO / "models" / (REPO / "models" / "DEFAULT").read_text().strip()
    assert models_root(tmp_path / "app" / "models") == tmp_path / "app" / "models"  # the app's own default


def test_without_a_checkout_the_working_directorys_folders_are_used(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    monkeypatch.delenv(paths.ASSETS_ENV, raising=False)
    monkeypatch.setattr(paths, "checkout_root", lambda: None)  # a wheel in site-packages
    monkeypatch.chdir(tmp_path)
    assert (models_root(), assets_root()) == (tmp_path / "models", tmp_path / "assets")
    with pytest.raises(ModelError) as info:
        default_model_dir()
    assert f"no '{tmp_path}/models/DEFAULT'" in str(info.value)
    assert "--model DIR" in str(info.value) and "IDC_MODELS_DIR" in str(info.value)
    (tmp_path / "models" / "best").mkdir(parents=True)
    (tmp_path / "models" / "DEFAULT").write_text("best\n")
    assert default_model_path() == tmp_path / "models" / "best"


def test_a_checkout_without_a_default_gives_way_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    (tmp_path / "checkout" / "models").mkdir(parents=True)
    (tmp_path / "work" / "models" / "mine").mkdir(parents=True)
    (tmp_path / "work" / "models" / "DEFAULT").write_text("mine")
    monkeypatch.setattr(paths, "checkout_root", lambda: tmp_path / "checkout")
    monkeypatch.chdir(tmp_path / "work")
    assert models_root() == tmp_path / "work" / "models"
    assert default_model_path() == tmp_path / "work" / "models" / "mine"
    (tmp_path / "work" / "models" / "DEFAULT").unlink()
    assert models_root() == tmp_path / "checkout" / "models"  # the first place, where a DEFAULT would be read
    with pytest.raises(ModelError, match=f"no '{tmp_path}/checkout/models/DEFAULT' or '{tmp_path}/work/models/"):
        default_model_path()


def test_the_variables_win_and_a_relative_one_is_taken_from_the_working_directory(tmp_path, monkeypatch) -> None:
    (tmp_path / "mine" / "best").mkdir(parents=True)
    (tmp_path / "mine" / "DEFAULT").write_text("best\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IDC_MODELS_DIR", "mine")
    monkeypatch.setenv("IDC_ASSETS_DIR", str(tmp_path / "samples"))
    assert models_root("elsewhere") == tmp_path / "mine" and assets_root() == tmp_path / "samples"
    assert default_model_dir() == tmp_path / "mine" / "best"
    monkeypatch.setenv("IDC_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(ModelError, match=f"no '{tmp_path}/empty/DEFAULT';"):  # the variable alone is looked in
        default_model_dir()


def test_the_command_finds_the_checkouts_default_model_from_any_folder(tmp_path):
    patch = next((ASSETS / "patches").glob("*.png"))
    done = subprocess.run([sys.executable, "-m", "idc_core", "predict", str(patch)], capture_output=True, text=True,
                          cwd=tmp_path, env=_env(PYTHONPATH=str(REPO)), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith(f"{patch},")
    assert f"model {REPO / 'models'}/" in done.stderr


def test_an_installed_copy_without_models_says_both_ways_before_importing_tensorflow(tmp_path):
    site = tmp_path / "site"  # the package alone, as a wheel installs it: no checkout around it
    shutil.copytree(REPO / "idc_core", site / "idc_core", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "work").mkdir()
    code = ("import sys; from idc_core.__main__ import main; status = main(['predict', 'x.png']); "
            "print('tensorflow' in sys.modules); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path / "work",
                          env=_env(PYTHONPATH=str(site)), timeout=120)
    assert done.returncode == 2 and done.stdout.strip() == "False"  # decided before TensorFlow's import
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: no default model: no '")
    assert f"{tmp_path}/work/models/DEFAULT" in done.stderr
    assert "--model DIR" in done.stderr and "IDC_MODELS_DIR" in done.stderr and "README" in done.stderr
