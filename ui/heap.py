"""The app process's long-lived objects kept out of the full garbage collections Streamlit runs after every script
run (runner.postScriptGC, and Keras' clear_session, which Streamlit calls once Keras is imported).

With TensorFlow and a model loaded, a full collection walks some 440,000 objects: about 0.33 s each time, two per
rerun, for every click of every visitor (measured; see the README "How long the tests take"). Modules and the
objects they create are loaded once per process and live as long as it does, so each time new modules have been
imported the heap is collected once and frozen (gc.freeze): frozen objects are skipped by the collector, never
changed, and still freed by reference counting when no longer used; objects made later are collected as before.
"""

from __future__ import annotations

import gc
import sys
import threading

_lock = threading.Lock()
_modules_frozen = 0  # len(sys.modules) at the last freeze


def freeze_new_imports() -> bool:
    """Collect and freeze the heap when modules were imported since the last time (a library loaded by this run);
    True when it did. Cheap otherwise: called at the end of every script run."""
    global _modules_frozen
    with _lock:
        loaded = len(sys.modules)
        if loaded <= _modules_frozen:
            return False
        gc.collect()
        gc.freeze()
        _modules_frozen = loaded
        return True
