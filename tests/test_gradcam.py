"""Tests of idc_core.inference.gradcam: heatmaps for every architecture, without touching the model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from idc_core.inference.gradcam import METHODS, _logit_view, compute_heatmaps
from idc_core.model.builders import ARCHITECTURES, build_model

LARGE = ("resnet50", "efficientnetb0")  # slow on CPU: one patch only


@pytest.fixture(scope="module")
def models() -> dict[str, keras.Model]:
    return {arch: build_model(arch, seed=0) for arch in ARCHITECTURES}


def _patches(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 50, 50, 3), dtype=np.uint8)


def _assert_heatmaps(maps: np.ndarray, n: int) -> None:
    assert maps.shape == (n, 50, 50) and maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_gradient_heatmaps_work_on_every_architecture(models, arch, method) -> None:
    n = 1 if arch in LARGE else 2
    maps = compute_heatmaps(models[arch], _patches(n), method=method)
    _assert_heatmaps(maps, n)
    assert maps.max() == pytest.approx(1.0)  # each map is scaled to its own maximum


def test_scorecam_works_with_few_channels_and_prints_nothing(models, capsys) -> None:
    _assert_heatmaps(compute_heatmaps(models["cnn"], _patches(2), method="scorecam", scorecam_max_n=8), 2)
    assert capsys.readouterr().out == ""


def test_an_explicit_layer_is_used(models) -> None:
    _assert_heatmaps(compute_heatmaps(models["cnn"], _patches(1), layer="block1_act"), 1)


@pytest.mark.parametrize("method", METHODS)
def test_the_model_is_not_modified(models, method) -> None:
    model = models["cnn"]
    x = _patches(3).astype("float32")
    weights = [w.copy() for w in model.get_weights()]
    before = model(x).numpy()
    activations = keras.Model(model.input, model.get_layer("block2_act").output)(x).numpy()
    layer_names = [layer.name for layer in model.layers]

    compute_heatmaps(model, _patches(2), method=method, scorecam_max_n=4)

    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model(x).numpy(), before)
    probe = keras.Model(model.input, model.get_layer("block2_act").output)
    np.testing.assert_array_equal(probe(x).numpy(), activations)
    assert [layer.name for layer in model.layers] == layer_names
    assert model.get_layer("idc_probability").activation is keras.activations.sigmoid
    assert len(model.outputs) == 1


def test_logit_view_gives_the_logit_and_its_two_class_softmax_the_probability(models) -> None:
    model = models["cancernet"]
    x = _patches(3).astype("float32")
    p = model(x).numpy()[:, 0]
    logit = _logit_view(model, two_class=False)([x]).numpy()[:, 0]
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), p, atol=1e-6)
    two = _logit_view(model, two_class=True)([x])
    np.testing.assert_allclose(keras.ops.softmax(two).numpy()[:, 1], p, atol=1e-6)


def test_empty_input_gives_no_heatmaps(models) -> None:
    assert compute_heatmaps(models["cnn"], np.zeros((0, 50, 50, 3), np.uint8)).shape == (0, 50, 50)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "lime"}, "method must be one of"),
        ({"layer": "idc_probability"}, "layer must be one of conv_layer_names"),
    ],
)
def test_bad_arguments_are_value_errors(models, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        compute_heatmaps(models["cnn"], _patches(1), **kwargs)


def test_wrong_patch_shape_is_a_value_error(models) -> None:
    with pytest.raises(ValueError, match=r"got \(1, 32, 32, 3\)"):
        compute_heatmaps(models["cnn"], np.zeros((1, 32, 32, 3), np.uint8))
