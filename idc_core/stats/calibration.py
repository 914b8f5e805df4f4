"""Calibration of P(IDC): fitting a monotone map on validation patients, and measuring how well scores match rates.

A score is calibrated when, of the patches it scores near p, a share p is IDC. The shipped models are trained
with class weights, so their raw scores are not: this module fits, on the logit z = log(p / (1 - p)),
- temperature scaling: p' = sigmoid(z / T)            (one parameter; keeps 0.5 where it is)
- Platt scaling:       p' = sigmoid(a * z + b)        (two; also moves the 0.5 point, which class weights shift)
(metrics.calibration_report measures the result).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from idc_core.config import CALIBRATION_METHODS
from idc_core.stats.metrics import Labels, Probs, checked_scores

# Scores are float32: 1 - 1e-7 is the largest one below 1 that still has a distinct logit (~16.1).
EPSILON = 1e-7


@dataclass(frozen=True)
class Calibration:
    """p' = sigmoid(scale * logit(p) + shift); temperature scaling has shift 0 and scale 1 / T."""

    method: str
    scale: float
    shift: float

    def apply(self, prob: Probs) -> np.ndarray:
        """The calibrated probabilities (float64) of raw ones."""
        return _sigmoid(self.scale * logit(prob) + self.shift)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def logit(prob: Probs) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [EPSILON, 1 - EPSILON] (a float32 score may be exactly 0 or 1)."""
    p = np.clip(np.asarray(prob, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def fit_calibration(y_true: Labels, prob: Probs, method: str) -> Calibration:
    """Fit `method` by maximum likelihood on these labels and raw scores (both classes needed)."""
    from scipy.optimize import minimize, minimize_scalar  # here: scoring needs none of scipy/scikit-learn
    from sklearn.metrics import log_loss

    y, p = checked_scores(y_true, prob)
    if len(np.unique(y)) < 2:
        raise ValueError("fitting a calibration needs both classes")
    z = logit(p)
    if method == "temperature":
        def nll(log_t: float) -> float:
            return float(log_loss(y, np.clip(_sigmoid(z / np.exp(log_t)), EPSILON, 1 - EPSILON), labels=[0, 1]))

        best = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
        return Calibration("temperature", float(np.exp(-best.x)), 0.0)
    if method == "platt":
        def nll_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
            scale, shift = np.exp(params[0]), params[1]
            q = np.clip(_sigmoid(scale * z + shift), EPSILON, 1 - EPSILON)
            nll = -np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))
            residual = q - y
            return float(nll), np.array([scale * np.mean(residual * z), np.mean(residual)])

        # scale = exp(u) > 0: the map stays increasing (a score that ranks patches backwards is flattened
        # towards the base rate, never turned around)
        best = minimize(nll_and_gradient, x0=np.array([0.0, 0.0]), jac=True, method="L-BFGS-B",
                        bounds=[(-12.0, 5.0), (-20.0, 20.0)])
        return Calibration("platt", float(np.exp(best.x[0])), float(best.x[1]))
    raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
