"""The app's heap freeze (ui/heap.py): once after each run that imported modules, not after the others."""

from __future__ import annotations

import gc
import sys
import types

from ui.heap import freeze_new_imports


def test_the_heap_is_frozen_once_after_new_imports_and_not_after_runs_that_import_nothing():
    freeze_new_imports()  # whatever this process has imported so far
    try:
        assert not freeze_new_imports()  # nothing imported since: no collection, no freeze
        frozen = gc.get_freeze_count()
        sys.modules["_idc_heap_probe"] = types.ModuleType("_idc_heap_probe")  # a module imported by a run
        assert freeze_new_imports()
        assert gc.get_freeze_count() > frozen  # the new module (and what else was made since) frozen too
        assert not freeze_new_imports()
    finally:
        sys.modules.pop("_idc_heap_probe", None)
        gc.unfreeze()
