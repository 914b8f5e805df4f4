"""Where the slide page's slide comes from: uploads written to a per-session temporary folder, and a server folder.

OpenSlide opens paths, not bytes, so an upload is written once to a temporary folder that belongs to the
user's session and is removed with it. `IDC_SLIDES_DIR` lets a lab serve its own slides without uploading
gigabytes: only regular files inside that folder are listed and opened (no typed paths, no links out).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import streamlit as st

from idc_core.wsi.reader import SLIDE_SUFFIXES

SLIDES_DIR_ENV = "IDC_SLIDES_DIR"
_TMP_KEY = "slide_tmpdir"


def upload_path(name: str, data: bytes) -> Path:
    """The upload as a file in this session's temporary folder (written once per content)."""
    tmp = st.session_state.get(_TMP_KEY)
    if tmp is None:  # removed when the session (and so this object) is gone, or at exit
        tmp = st.session_state[_TMP_KEY] = tempfile.TemporaryDirectory(prefix="idc-slide-")
    digest = hashlib.sha1(data).hexdigest()[:12]
    path = Path(tmp.name) / digest / Path(name).name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def slides_dir() -> Path | None:
    """$IDC_SLIDES_DIR as a resolved folder, or None when unset or not a folder."""
    value = os.environ.get(SLIDES_DIR_ENV)
    if not value:
        return None
    root = Path(value).resolve()
    return root if root.is_dir() else None


def server_slides(root: Path) -> list[str]:
    """Slide files under root, as paths relative to it: regular files only, none that leads outside root."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in SLIDE_SUFFIXES or path.name.startswith("."):
            continue
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(root):
            continue
        found.append(path.relative_to(root).as_posix())
    return found


def server_slide_path(root: Path, relative: str) -> Path:
    """The chosen server slide, checked again to lie inside root (ValueError otherwise)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or relative not in server_slides(root):
        raise ValueError(f"{relative!r} is not a slide in {SLIDES_DIR_ENV}")
    return path
