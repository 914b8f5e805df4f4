"""The per-tile results of one slide (numpy only: the pages, the slide outputs and the truth comparison use it
without TensorFlow).

Coordinates. At the library's surface a point is (x, y) and a box is (x, y, width, height): x to the right, y
down, in pixels, as QuPath and OpenSlide use them. A SlideResult's own pixels are those of the analysed image
(the slide at the model's scale); level-0 pixels of the slide are those times `factor`, the level-0 pixels per
analysed pixel (wsi.reader.SlideInfo.level0_per_model_pixel). Array code (tiling, tissue,
overlay, predict_slide) works in (row, col) = (y, x): `SlideResult.coords` is that internal (N, 2) array of
tile top-left corners. Callers outside array code use the accessors below (tile_box, tile_centre, tile_at,
tile_starting_at, boxes, centres, level0_box, level0_boxes) rather than indexing `coords` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SlideResult:
    """Per-tile results of one slide; probs is NaN for tiles that are not tissue.

    coords: (N, 2) int top-left (y, x) = (row, col) of each size x size tile, in analysed-image pixels (array
    order: use the (x, y) accessors outside array code). Tiles are `stride` apart and may overlap.
    """

    coords: np.ndarray
    tissue: np.ndarray
    probs: np.ndarray
    image_shape: tuple[int, int]
    size: int
    stride: int
    tissue_threshold: float
    threshold: float
    uncertainty: np.ndarray | None = None  # per tile, NaN off tissue; None when not measured
    uncertain_above: float | None = None  # the model's cut: a tile above it is flagged uncertain
    probs_tile: np.ndarray | None = None  # each tile's own P(IDC) when probs is context-aware (wsi.context)
    artefact: np.ndarray | None = None  # per tile, the artefact kind (wsi.qc) of a tile set aside, "" for the rest;
    # a tile set aside is not tissue here (not scored, not counted, no neighbour of the context step). None: no QC

    @property
    def artefacts(self) -> np.ndarray:
        """bool (N,): the tiles set aside under an artefact (none when QC did not run)."""
        return np.zeros(len(self.coords), dtype=bool) if self.artefact is None else self.artefact != ""

    @property
    def listed(self) -> np.ndarray:
        """bool (N,): the tiles tiles.csv lists, tissue tiles and those set aside under an artefact."""
        return self.tissue | self.artefacts

    @property
    def n_artefact(self) -> int:
        return int(self.artefacts.sum())

    def artefact_counts(self) -> dict[str, int]:
        """Tiles set aside per artefact kind (sorted by kind; empty when none or QC did not run)."""
        if self.artefact is None:
            return {}
        kinds, counts = np.unique(self.artefact[self.artefact != ""], return_counts=True)
        return {str(kind): int(count) for kind, count in zip(kinds.tolist(), counts.tolist())}

    @property
    def artefact_share(self) -> float | None:
        """Tiles set aside / (tissue tiles + tiles set aside): None when QC did not run, 0.0 with no tissue."""
        if self.artefact is None:
            return None
        listed = self.n_tissue + self.n_artefact
        return self.n_artefact / listed if listed else 0.0

    @property
    def n_tissue(self) -> int:
        return int(self.tissue.sum())

    @property
    def n_idc(self) -> int:
        return int((self.probs[self.tissue] >= self.threshold).sum())

    @property
    def idc_fraction(self) -> float:
        """IDC tiles / tissue tiles (0.0 when there is no tissue: check n_tissue first)."""
        return self.n_idc / self.n_tissue if self.n_tissue else 0.0

    @property
    def uncertain(self) -> np.ndarray | None:
        """Tissue tiles whose uncertainty is above the model's cut (None when uncertainty was not measured)."""
        if self.uncertainty is None or self.uncertain_above is None:
            return None
        return self.tissue & (np.nan_to_num(self.uncertainty, nan=-np.inf) > self.uncertain_above)

    @property
    def uncertain_fraction(self) -> float | None:
        """Uncertain tiles / tissue tiles (None when not measured or no tissue)."""
        flags = self.uncertain
        return float(flags.sum() / self.n_tissue) if flags is not None and self.n_tissue else None

    def tile_box(self, i: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) of tile i in analysed-image pixels: its top-left corner and size."""
        y, x = (int(v) for v in self.coords[i])
        return x, y, self.size, self.size

    def tile_centre(self, i: int) -> tuple[int, int]:
        """(x, y) of the centre pixel of tile i in analysed-image pixels (top-left + size // 2)."""
        x, y, width, height = self.tile_box(i)
        return x + width // 2, y + height // 2

    def tile_at(self, x: float, y: float, among: np.ndarray | None = None) -> int | None:
        """Index (into coords) of the tissue tile (or of the tiles `among`, a bool (N,) mask) containing the point
        (x, y) of the analysed image, or None.

        A tile holds the pixels x0 <= x < x0 + size, y0 <= y < y0 + size. Where tiles overlap (stride < size),
        the one whose centre is nearest the point wins (the first in coords order on a tie).
        """
        ys, xs = self.coords[:, 0], self.coords[:, 1]
        chosen = self.tissue if among is None else among
        inside = chosen & (xs <= x) & (x < xs + self.size) & (ys <= y) & (y < ys + self.size)
        candidates = np.flatnonzero(inside)
        if not len(candidates):
            return None
        centres = self.coords[candidates, ::-1] + self.size / 2  # (x, y) of each candidate's centre
        return int(candidates[np.argmin(((centres - [x, y]) ** 2).sum(1))])

    def tile_starting_at(self, x: int, y: int) -> int | None:
        """Index (into coords) of the tile whose top-left corner is (x, y), or None."""
        found = np.flatnonzero((self.coords[:, 1] == x) & (self.coords[:, 0] == y))
        return int(found[0]) if len(found) else None

    def boxes(self, factor: float = 1.0) -> np.ndarray:
        """(N, 4) float64 x, y, width, height of every tile, times `factor` (level-0 pixels per analysed pixel
        for level-0 boxes; 1.0: analysed-image pixels)."""
        coords = self.coords.astype(np.float64)
        side = np.full(len(coords), self.size * factor)
        return np.stack([coords[:, 1] * factor, coords[:, 0] * factor, side, side], axis=1)

    def centres(self, factor: float = 1.0) -> np.ndarray:
        """(N, 2) float64 x, y of every tile's geometric centre (top-left + size / 2), times `factor`."""
        return ((self.coords[:, ::-1].astype(np.float64) + self.size / 2) * factor)

    def level0_boxes(self, factor: float, bounds: tuple[int, int] | None = None) -> np.ndarray:
        """(N, 4) int64 x, y, width, height of every tile in level-0 pixels of the slide; `factor`: level-0 pixels
        per analysed pixel. Each edge is rounded to the nearest pixel (x0 = round(x * f), x1 = round((x + size) * f)),
        so tiles that touch at the model's scale touch in level 0 too, never overlapping; with `bounds` (the slide's
        level-0 width, height) the boxes are clipped to the slide (a tile past its edge covers white padding)."""
        return _level0(self.coords, self.size, factor, bounds)

    def level0_box(self, i: int, factor: float, bounds: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """(x, y, width, height) of tile i in level-0 pixels of the slide (see level0_boxes)."""
        x, y, width, height = _level0(self.coords[i : i + 1], self.size, factor, bounds)[0].tolist()
        return x, y, width, height

    def to_rows(self) -> list[dict]:
        """One dict per tile: y, x, tissue, prob_idc and label (None for background tiles), the uncertainty when
        it was measured, and the tile's own P(IDC) (prob_idc_tile) when prob_idc is context-aware."""
        rows = []
        spread = self.uncertainty.tolist() if self.uncertainty is not None else [None] * len(self.coords)
        for (y, x), is_tissue, prob, u in zip(self.coords.tolist(), self.tissue.tolist(), self.probs.tolist(), spread):
            row = {
                "y": y,
                "x": x,
                "tissue": is_tissue,
                "prob_idc": prob if is_tissue else None,
                "label": int(prob >= self.threshold) if is_tissue else None,
            }
            if self.uncertainty is not None:
                row["uncertainty"] = u if is_tissue else None
            rows.append(row)
        if self.probs_tile is not None:
            for row, own, is_tissue in zip(rows, self.probs_tile.tolist(), self.tissue.tolist()):
                row["prob_idc_tile"] = own if is_tissue else None
        return rows


def _level0(coords: np.ndarray, size: int, factor: float, bounds: tuple[int, int] | None) -> np.ndarray:
    """SlideResult.level0_boxes of (N, 2) (row, col) tile corners."""
    start = coords[:, ::-1].astype(np.float64)  # (x, y)
    first, last = np.rint(start * factor), np.rint((start + size) * factor)
    if bounds is not None:
        first, last = np.minimum(first, bounds), np.minimum(last, bounds)
    return np.concatenate([first, last - first], axis=1).astype(np.int64).reshape(-1, 4)
