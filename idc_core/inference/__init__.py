"""Inference: arrays, items and batches to P(IDC), uncertainty, Grad-CAM. Imports: model and the layers below."""
