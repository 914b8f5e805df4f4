"""Slides without a model: reading, scale, tiling, tissue, stain, results, truth, overlays. Imports: data, stats."""
