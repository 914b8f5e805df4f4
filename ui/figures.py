"""Plotly figure builders (no Streamlit calls): confusion matrix, curves, history, slide and thumbnails."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from idc_core import CLASS_NAMES
from idc_core.data.image_io import encode_png
from idc_core.wsi.overlay import OUTCOME_COLORS

IDC_RGB = OUTCOME_COLORS["TP"]  # vermillion
NO_IDC_RGB = (0, 114, 178)  # blue (Okabe-Ito), not an outcome colour: "false alarm" has its own
MARK = ((0, 0, 0, 5), (255, 255, 255, 2))  # the selected tile or patch: a white line on a black one, any background
MAX_SELECTABLE_SVG = 4000  # above this many tiles the click layer uses WebGL
DISPLAY_WIDTH = 1460  # st.image's widest content: it shrinks larger images to this width
MAX_DISPLAY_PX = 2400  # longest side of the slide image sent to the browser


def _rgb(colour: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*colour)


def _png_source(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode()


def display_jpeg(image: np.ndarray, max_width: int = DISPLAY_WIDTH) -> bytes:
    """An RGB image as st.image would send it (JPEG, quality 90, at most max_width px wide), encoded once.

    st.image passes these bytes through as they are; given an array it encodes (and shrinks) it on every run.
    """
    height, width = image.shape[:2]
    if width > max_width:
        image = cv2.resize(image, (max_width, max(1, round(height * max_width / width))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} {image.dtype} image as JPEG")
    return data.tobytes()


def confusion_figure(matrix: Sequence[Sequence[int]], title: str = "Confusion matrix") -> go.Figure:
    """2x2 heatmap: rows = true class, columns = predicted class, counts and row percentages."""
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    text = [[f"{int(cm[i, j]):,}<br>{100 * share[i, j]:.1f}%" for j in range(2)] for i in range(2)]
    fig = go.Figure(
        go.Heatmap(
            z=share, x=[f"pred. {c}" for c in CLASS_NAMES], y=[f"true {c}" for c in CLASS_NAMES],
            text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1, showscale=False,
            hovertemplate="%{y}, %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=330, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def roc_figure(curve: dict[str, list[float]], auc: float | None, point: tuple[float, float]) -> go.Figure:
    """ROC curve with the chance line and the operating point (fpr, tpr) marked."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="chance")
    fig.add_scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=f"ROC (AUC {auc:.3f})" if auc else "ROC",
                    customdata=curve["thresholds"], hovertemplate="FPR %{x:.3f}, TPR %{y:.3f}, t=%{customdata:.3f}")
    fig.add_scatter(x=[point[0]], y=[point[1]], mode="markers", name="threshold",
                    marker=dict(size=12, color=_rgb(IDC_RGB), symbol="x"))
    fig.update_layout(title="ROC curve", xaxis_title="false positive rate", yaxis_title="true positive rate (recall)",
                      height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(x=0.45, y=0.05))
    return fig


def pr_figure(curve: dict[str, list[float]], ap: float | None, point: tuple[float, float],
              prevalence: float) -> go.Figure:
    """Precision-recall curve with the prevalence baseline and the operating point (recall, precision)."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[prevalence, prevalence], mode="lines", line=dict(dash="dot", color="grey"),
                    name=f"prevalence {prevalence:.2f}")
    fig.add_scatter(x=curve["recall"], y=curve["precision"], mode="lines", name=f"PR (AP {ap:.3f})" if ap else "PR",
                    customdata=curve["thresholds"],
                    hovertemplate="recall %{x:.3f}, precision %{y:.3f}, t=%{customdata:.3f}")
    fig.add_scatter(x=[point[0]], y=[point[1]], mode="markers", name="threshold",
                    marker=dict(size=12, color=_rgb(IDC_RGB), symbol="x"))
    fig.update_layout(title="Precision-recall curve", xaxis_title="recall", yaxis_title="precision",
                      height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(x=0.02, y=0.05),
                      yaxis_range=[0, 1.02])
    return fig


def reliability_figure(after: dict[str, Any], before: dict[str, Any] | None = None) -> go.Figure:
    """Reliability diagram: IDC rate against mean P(IDC) per score bin (marker size ~ patches), with the diagonal
    of perfect calibration; `before` (the raw score's report) drawn dashed for comparison."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="perfectly calibrated")
    for report, name, dash in ((before, "raw score", "dash"), (after, "P(IDC)", "solid")):
        if report is None:
            continue
        r = report["reliability"]
        sizes = np.sqrt(np.asarray(r["patches"], dtype=float))
        fig.add_scatter(x=r["mean_score"], y=r["idc_rate"], mode="lines+markers", line=dict(dash=dash),
                        marker=dict(size=6 + 18 * sizes / max(sizes.max(), 1.0)), customdata=r["patches"],
                        name=f"{name} (ECE {report['ece']:.3f})",
                        hovertemplate="mean score %{x:.3f}, IDC rate %{y:.3f}, %{customdata} patches<extra></extra>")
    fig.update_layout(title="Reliability: of the patches scored near p, how many are IDC?", xaxis_title="mean P(IDC)",
                      yaxis_title="share that is IDC", height=380, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(x=0.02, y=0.98), xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1]))
    return fig


def referral_figure(curves: dict[str, dict[str, list]], threshold: float) -> go.Figure:
    """Balanced accuracy of the patches kept against the share referred, one line per uncertainty measure."""
    fig = go.Figure()
    for name, curve in curves.items():
        fig.add_scatter(x=[100 * s for s in curve["referred"]], y=curve["balanced_accuracy"], mode="lines+markers",
                        name=name, customdata=curve["kept"],
                        hovertemplate="refer %{x:.0f}%: balanced accuracy %{y:.3f} on %{customdata} patches kept"
                                      "<extra></extra>")
    fig.update_layout(title=f"Referral curve at threshold {threshold:.3f}", xaxis_title="patches referred (%)",
                      yaxis_title="balanced accuracy of the rest", height=380, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(x=0.02, y=0.02))
    return fig


def history_figure(history: dict[str, list[float]]) -> go.Figure:
    """Training curves per epoch: one panel per metric (train and validation)."""
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names)
    for col, name in enumerate(names, start=1):
        for key, dash in ((name, "solid"), (f"val_{name}", "dash")):
            if key in history:
                values = history[key]
                fig.add_scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name=key,
                                line=dict(dash=dash), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def outline_box(fig: go.Figure, box: Sequence[float] | None) -> go.Figure:
    """fig with the (x, y, width, height) box outlined in data coordinates, replacing any earlier outline (None:
    no outline): the slide's inspected tile, whether chosen automatically, clicked or typed, and the selected
    thumbnail are marked alike."""
    fig.layout.shapes = [] if box is None else [
        dict(type="rect", x0=box[0], y0=box[1], x1=box[0] + box[2], y1=box[1] + box[3], layer="above",
             line=dict(color=f"rgb({r},{g},{b})", width=width), name="selected") for r, g, b, width in MARK]
    return fig


def slide_figure(overlay: np.ndarray, boxes: np.ndarray, probs: np.ndarray, cmap: str = "jet") -> go.Figure:
    """The slide with its heatmap, zoomable, a P(IDC) colour bar, and one invisible clickable point per tissue tile.

    boxes (x, y, width, height; SlideResult.boxes) and probs are the tissue tiles only (their order is the point
    index of a selection); a point's customdata is its tile's top-left x, y and P(IDC).
    """
    height, width = overlay.shape[:2]
    scale = max(1.0, max(height, width) / MAX_DISPLAY_PX)  # big slides are sent downscaled
    shown = overlay if scale == 1.0 else cv2.resize(
        overlay, (round(width / scale), round(height / scale)), interpolation=cv2.INTER_AREA)
    fig = go.Figure(go.Image(source=_png_source(shown), dx=width / shown.shape[1], dy=height / shown.shape[0],
                             hoverinfo="skip"))
    scatter = go.Scattergl if len(boxes) > MAX_SELECTABLE_SVG else go.Scatter
    fig.add_trace(scatter(
        x=boxes[:, 0] + boxes[:, 2] / 2, y=boxes[:, 1] + boxes[:, 3] / 2, mode="markers",
        marker=dict(size=8, color=probs, colorscale=cmap.capitalize(), cmin=0.0, cmax=1.0, opacity=0.0,
                    showscale=True, colorbar=dict(title="P(IDC)", thickness=14, len=0.8)),
        customdata=np.stack([boxes[:, 0], boxes[:, 1], probs], 1),
        hovertemplate="tile x=%{customdata[0]}, y=%{customdata[1]}<br>P(IDC) %{customdata[2]:.3f}<extra></extra>",
        selected=dict(marker=dict(opacity=0.0)), unselected=dict(marker=dict(opacity=0.0)),  # see outline_box
        name="tiles", showlegend=False,
    ))
    fig.update_xaxes(showgrid=False, range=[0, width], constrain="domain", title="x (px)")
    fig.update_yaxes(showgrid=False, range=[height, 0], scaleanchor="x", constrain="domain", title="y (px)")
    fig.update_layout(height=min(760, max(380, int(700 * height / max(width, 1)))), margin=dict(l=10, r=10, t=10, b=10),
                      dragmode="zoom", clickmode="event+select")
    return fig


def thumbnails_figure(patches: np.ndarray, probs: Sequence[float], threshold: float,
                      names: Sequence[str], columns: int = 12, selected: int | None = None) -> go.Figure:
    """A grid of patch thumbnails with a border in the predicted class colour; click one to select it. The
    selected one (an index into patches) is outlined, its pixels untouched."""
    n = len(patches)
    rows = max(1, -(-n // columns))
    cell, border = 58, 4
    canvas = np.full((rows * cell, columns * cell, 3), 255, dtype=np.uint8)
    for i, (patch, prob) in enumerate(zip(patches, probs)):
        r, c = divmod(i, columns)
        y, x = r * cell, c * cell
        canvas[y:y + cell - 2, x:x + cell - 2] = IDC_RGB if prob >= threshold else NO_IDC_RGB
        canvas[y + border:y + border + 50, x + border:x + border + 50] = patch
    fig = go.Figure(go.Image(source=_png_source(canvas), hoverinfo="skip"))
    idx = np.arange(n)
    fig.add_scatter(
        x=(idx % columns) * cell + cell / 2 - 1, y=(idx // columns) * cell + cell / 2 - 1, mode="markers",
        # a click anywhere on a thumbnail selects it: the square covers the cell (the figure draws about
        # (height - 20) / (rows * cell) = 1.2 screen px per cell unit, see the layout height below)
        marker=dict(size=round(0.95 * cell * 1.2), color="rgba(0,0,0,0)", symbol="square"),
        customdata=[[name, float(p)] for name, p in zip(names, probs)],
        hovertemplate="%{customdata[0]}<br>P(IDC) %{customdata[1]:.3f}<extra></extra>",
        selected=dict(marker=dict(color="rgba(0,0,0,0)")), showlegend=False,  # the outline marks the selection
    )
    if selected is not None:
        r, c = divmod(selected, columns)
        outline_box(fig, (c * cell - 1, r * cell - 1, cell, cell))
    fig.update_xaxes(visible=False, range=[0, columns * cell])
    fig.update_yaxes(visible=False, range=[rows * cell, 0], scaleanchor="x")
    fig.update_layout(height=max(140, min(900, rows * 70 + 20)), margin=dict(l=0, r=0, t=0, b=0),
                      dragmode=False, clickmode="event+select")
    return fig


REPORT_LABELS = {"precision": "Precision", "recall": "Recall", "f1-score": "F1", "support": "Patches"}


def report_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """sklearn's classification report dict as table rows with human labels; the overall accuracy is not a row
    (it has no precision, recall or support: show it beside the table, see report_accuracy)."""
    return [{"Class": label,
             **{REPORT_LABELS[k]: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}}
            for label, values in report.items() if isinstance(values, dict)]


def report_accuracy(report: dict[str, Any]) -> float | None:
    """The overall accuracy of sklearn's classification report dict, or None."""
    value = report.get("accuracy")
    return float(value) if isinstance(value, (int, float)) else None
