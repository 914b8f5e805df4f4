"""idc_core.paths: the models and assets folders come from the environment or the working directory, never from
where the package lies (an installed package runs from anywhere)."""

from __future__ import annotations

import pytest

from idc_core.errors import ModelError
from idc_core.model.folder import default_model_dir
from idc_core.paths import assets_root, models_root


def test_without_the_variable_the_folders_are_those_of_the_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("IDC_MODELS_DIR", raising=False)
    monkeypatch.delenv("IDC_ASSETS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert (models_root(), assets_root()) == (tmp_path / "models", tmp_path / "assets")
    assert models_root(tmp_path / "app" / "models") == tmp_path / "app" / "models"  # the app's own default
    with pytest.raises(ModelError, match=f"no default model: '{tmp_path}/models/DEFAULT' is missing"):
        default_model_dir()


def test_the_variables_win_and_a_relative_one_is_taken_from_the_working_directory(tmp_path, monkeypatch) -> None:
    (tmp_path / "mine" / "best").mkdir(parents=True)
    (tmp_path / "mine" / "DEFAULT").write_text("best\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IDC_MODELS_DIR", "mine")
    monkeypatch.setenv("IDC_ASSETS_DIR", str(tmp_path / "samples"))
    assert models_root("elsewhere") == tmp_path / "mine" and assets_root() == tmp_path / "samples"
    assert default_model_dir() == tmp_path / "mine" / "best"
