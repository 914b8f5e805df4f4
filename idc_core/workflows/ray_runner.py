"""Score slides on a Ray cluster: one actor per worker slot loads the model once and scores whole slides.

Ray's actor-pool pattern for batch inference: the model is loaded in each actor's constructor (never per
slide), slides are handed to free actors as they finish, and each actor writes its slide's outputs itself
(idc_core.workflows.slide_analysis.analyse_slide_file: atomic, so a killed worker leaves nothing half-written).
Outputs must be on a file system every node sees. The driver collects the slides.csv rows and, for the tile bar, polls a
small counter actor that the scorers report their tiles to (Ray's pattern of a progress actor).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from idc_core import Progress
from idc_core.errors import IDCError
from idc_core.workflows.slide_analysis import SlideOptions

POLL_SECONDS = 0.5


class TileCounter:
    """Ray actor body: tiles (done, total) of each slide, as its scorer reports them after each batch."""

    def __init__(self) -> None:
        self.slides: dict[str, tuple[int, int]] = {}

    def report(self, slide: str, done: int, total: int) -> None:
        self.slides[slide] = (done, total)

    def finish(self, slide: str) -> None:
        """The slide is over: one that failed part-way counts the tiles it scored, not the rest."""
        done = self.slides.get(slide, (0, 0))[0]
        self.slides[slide] = (done, done)

    def totals(self) -> tuple[int, int]:
        """(tiles done, tiles known) over every slide started so far."""
        return sum(d for d, _ in self.slides.values()), sum(t for _, t in self.slides.values())


class SlideScorer:
    """Ray actor body: holds one loaded model and scores slides with it."""

    def __init__(self, model_dir: str, runtime: str = "auto") -> None:
        from idc_core.model.folder import load_model_dir

        self.loaded = load_model_dir(model_dir, runtime=runtime)  # LiteRT (no TensorFlow) when it has an export

    def score(self, slide: str, checksum: str, out_root: str, model_id: dict[str, Any],
              options: SlideOptions, counter: Any = None) -> dict[str, Any]:
        """The slide's slides.csv row; its tiles are reported to `counter` (a TileCounter actor) if given."""
        import ray

        from idc_core.workflows.slide_analysis import analyse_slide_file

        def report(done: int, total: int) -> None:
            counter.report.remote(slide, done, total)  # fire and forget: the scoring does not wait for it

        row = analyse_slide_file(slide, out_root, self.loaded, options=options, model_id=model_id,
                                 checksum=checksum, progress=report if counter is not None else None)
        if counter is not None:
            # An actor runs the calls of one caller in order: once this returns, all of this slide's reports are in.
            ray.get(counter.finish.remote(slide))
        return row


def connect(address: str) -> Any:
    """ray.init for 'local' (a new local instance, no dashboard), 'auto' (the running cluster) or ray://HOST:PORT."""
    try:
        import ray
    except ImportError as exc:
        raise IDCError("--ray needs the ray package: pip install -r requirements.txt") from exc
    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}  # the workers import the installed idc_core
    try:
        if address == "local":
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=env, log_to_driver=False,
                     ignore_reinit_error=True)
        else:
            ray.init(address=address, runtime_env=env, log_to_driver=False, ignore_reinit_error=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise IDCError(f"cannot connect to Ray at {address!r}: {' '.join(str(exc).split())}") from exc
    return ray


def score_on_ray(address: str, todo: Sequence[tuple[Path, str]], out_root: Path, model_dir: Path,
                 model_id: dict[str, Any], options: SlideOptions, on_row: Callable[[dict[str, Any]], None],
                 tile_progress: Progress | None = None, *, runtime: str = "auto") -> None:
    """Score `todo` (slide, checksum) on Ray; on_row(row) as each slide finishes, in finishing order. Each actor
    loads the model folder once, scored as `runtime` says (model.folder.RUNTIMES).

    tile_progress(done, total): the tiles of every slide started so far, polled every POLL_SECONDS and after
    each slide; after the last slide, done == total == the tiles scored.
    """
    if not todo:
        return
    ray = connect(address)
    try:
        from ray.util import ActorPool

        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        slots = max(1, min(len(todo), gpus or int(resources.get("CPU", 1))))
        # An actor needs a CPU to be scheduled unless told otherwise, and the scorers hold them all.
        counter = ray.remote(num_cpus=0)(TileCounter).remote() if tile_progress else None
        actor = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1)(SlideScorer)
        pool = ActorPool([actor.remote(str(Path(model_dir).resolve()), runtime) for _ in range(slots)])
        out = str(Path(out_root).resolve())

        def submit(scorer: Any, item: tuple[Path, str]) -> Any:
            return scorer.score.remote(str(item[0].resolve()), item[1], out, model_id, options, counter)

        for item in todo:
            pool.submit(submit, item)
        while pool.has_next():
            try:
                row = pool.get_next_unordered(timeout=POLL_SECONDS)
            except TimeoutError:  # no slide finished meanwhile: only the tiles moved on
                row = None
            if counter is not None and tile_progress is not None:
                tile_progress(*ray.get(counter.totals.remote()))
            if row is not None:
                row["slide"] = str(next(s for s, _ in todo if str(s.resolve()) == row["slide"]))
                on_row(row)
    finally:
        if address == "local":
            ray.shutdown()
