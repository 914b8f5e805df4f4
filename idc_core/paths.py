"""Where idc_core looks for files outside the package, so that an installed package runs from any folder.

Nothing here depends on where the package itself lies: each place is an environment variable, else a folder of
the working directory (the checkout, when the commands or the app are run from it).
"""

from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "IDC_MODELS_DIR"
ASSETS_ENV = "IDC_ASSETS_DIR"


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).absolute() if value else default.absolute()


def models_root(default: str | Path = "models") -> Path:
    """The model folders' root: $IDC_MODELS_DIR, else `default` (models/ of the working directory)."""
    return _from_env(MODELS_ENV, Path(default))


def assets_root(default: str | Path = "assets") -> Path:
    """The sample data (patches, slide, patient zip: the export check): $IDC_ASSETS_DIR, else assets/ here."""
    return _from_env(ASSETS_ENV, Path(default))
