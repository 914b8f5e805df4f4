"""Whole-slide analysis at the model's scale, for one slide or a folder of thousands.

The work is done by idc_core.wsi (one slide), idc_core.cohort (a folder, resumable) and idc_core.ray_runner
(on a Ray cluster); the command line over them (`python -m idc_core.slide`) is idc_core.cli.slide.
"""

if __name__ == "__main__":  # the command itself is idc_core.cli.slide
    from idc_core.cli.slide import main

    raise SystemExit(main())
