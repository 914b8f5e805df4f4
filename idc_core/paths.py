"""Where idc_core looks for files outside the package, so that the commands run from any folder.

Each place is an environment variable; else the folder of the package's own checkout (an editable install, or a
checkout on PYTHONPATH: found from where the package lies, without importing TensorFlow); else the folder of the
working directory. A wheel installed from elsewhere has no checkout: the variable or the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from idc_core.errors import ModelError

MODELS_ENV = "IDC_MODELS_DIR"
ASSETS_ENV = "IDC_ASSETS_DIR"
DEFAULT_FILE = "DEFAULT"
"""The file of a models root that names its default model folder (one line)."""


def checkout_root() -> Path | None:
    """The project folder this package runs from (the folder above idc_core/ when it holds the project's
    pyproject.toml), None for an installed wheel (site-packages holds no pyproject.toml)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def _candidates(variable: str, name: str) -> list[Path]:
    """[$variable] when it is set, else the checkout's `name` folder (if any) and then that of the working directory."""
    value = os.environ.get(variable)
    if value:
        return [Path(value).absolute()]
    here, checkout = Path(name).absolute(), checkout_root()
    return [checkout / name, here] if checkout is not None and checkout / name != here else [here]


def models_root(default: str | Path | None = None) -> Path:
    """The model folders' root: $IDC_MODELS_DIR; else `default` when given (the app's own models/); else the first of
    the checkout's models/ and models/ of the working directory that has a DEFAULT file (the first of them when
    none has)."""
    if default is not None and not os.environ.get(MODELS_ENV):
        return Path(default).absolute()
    candidates = _candidates(MODELS_ENV, "models")
    return next((root for root in candidates if (root / DEFAULT_FILE).is_file()), candidates[0])


def assets_root(default: str | Path | None = None) -> Path:
    """The sample data (patches, slide, patient zip: the export check): $IDC_ASSETS_DIR, else `default` when given,
    else the checkout's assets/ when it exists, else assets/ of the working directory."""
    if default is not None and not os.environ.get(ASSETS_ENV):
        return Path(default).absolute()
    candidates = _candidates(ASSETS_ENV, "assets")
    return next((root for root in candidates if root.is_dir()), candidates[-1])


def default_model_path(root: str | Path | None = None) -> Path:
    """The folder named in `<root>/DEFAULT` (root: models_root()); ModelError saying where it looked and the two ways
    to name a model when there is none. Cheap: a command decides this before it imports TensorFlow."""
    roots = [Path(root)] if root is not None else _candidates(MODELS_ENV, "models")
    marker = next((r / DEFAULT_FILE for r in roots if (r / DEFAULT_FILE).is_file()), None)
    if marker is None:
        looked = " or ".join(repr(str(r / DEFAULT_FILE)) for r in roots)
        raise ModelError(
            f"no default model: no {looked}; pass --model DIR (a model folder), or set {MODELS_ENV} to a folder "
            f"whose {DEFAULT_FILE} file names one (an installed wheel ships no models: README, 'Getting a model')"
        )
    try:
        name = marker.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{str(marker)!r} cannot be read as text ({exc})") from exc
    if not name:
        raise ModelError(f"{str(marker)!r} is empty: write the name of a folder inside {str(marker.parent)!r}")
    folder = marker.parent / name
    if not folder.is_dir():
        raise ModelError(f"{str(marker)!r} names {name!r}, but {str(folder)!r} does not exist")
    return folder
