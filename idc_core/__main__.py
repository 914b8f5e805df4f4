"""`idc COMMAND ...` (after `pip install -e .`) or `python -m idc_core COMMAND ...`: one home for the commands.

Each command is a module of idc_core.cli; TensorFlow is imported only when a command runs.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS = {
    "train": ("idc_core.cli.train", "train a model on data in the dataset layout"),
    "evaluate": ("idc_core.cli.evaluate", "held-out metrics of a model on labelled data"),
    "predict": ("idc_core.cli.predict", "P(IDC) of patches, images, folders and zips (CSV)"),
    "slide": ("idc_core.cli.slide", "whole slides at the model's scale: tiles, QuPath GeoJSON, heatmap"),
    "export": ("idc_core.cli.export", "a TFLite export that scores without TensorFlow, if it agrees with the model"),
    "calibrate": ("idc_core.cli.calibrate", "calibrate P(IDC) and fix the uncertainty cut on validation patients"),
    "context": ("idc_core.cli.context", "fit and choose the slide-context step (neighbouring tiles) on validation"),
    "familiarity": ("idc_core.cli.familiarity", "fit the check that a slide looks like the training data"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["-V"]):
        from idc_core import __version__

        print(f"idc {__version__}")
        return 0
    if not args or args[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        run = "idc" if os.path.basename(sys.argv[0]) in ("idc", "idc.exe") else "python -m idc_core"
        asked = not args or args[0] in ("-h", "--help")
        print(f"usage: {run} COMMAND [ARGS...]  ({run} COMMAND --help for each; {run} --version)\n\n"
              + "\n".join(lines), file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
