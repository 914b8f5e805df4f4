"""Tests of idc_core.model.builders: builders, preprocessing inside the model, weights, freezing."""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format  # noqa: I001  (writes the legacy .h5 layout of ImageNet files)
from keras.src.utils import file_utils

from idc_core.errors import WeightsError
from idc_core.model.builders import (
    ARCHITECTURES,
    OUTPUT_NAME,
    TRANSFER_ARCHS,
    CaffePreprocess,
    build_model,
    conv_layer_names,
    freeze_base,
    last_conv_layer,
)

LAST_CONV = {
    "cnn": "block3_act",
    "cancernet": "block3_bn3",
    "resnet50": "conv5_block3_out",
    "mobilenetv2": "out_relu",
    "efficientnetb0": "top_activation",
}


@pytest.fixture(scope="module")
def models() -> dict[str, keras.Model]:
    return {arch: build_model(arch, seed=0) for arch in ARCHITECTURES}


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, 50, 50, 3)).astype("float32")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_maps_raw_rgb_to_one_probability(models, rgb, arch) -> None:
    model = models[arch]
    assert model.name == arch
    assert tuple(model.inputs[0].shape) == (None, 50, 50, 3)
    output_layer = model.layers[-1]
    assert output_layer.name == OUTPUT_NAME
    assert output_layer.activation is keras.activations.sigmoid
    probs = model(rgb).numpy()
    assert probs.shape == (2, 1)
    assert np.all(np.isfinite(probs)) and np.all((probs >= 0) & (probs <= 1))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_models_are_flat_and_have_no_lambda_layers(models, arch) -> None:
    for layer in models[arch].layers:
        assert not isinstance(layer, (keras.Model, keras.layers.Lambda)), layer.name


@pytest.mark.parametrize("arch", ["cancernet", "resnet50", "efficientnetb0"])
def test_saved_model_loads_with_safe_mode_and_gives_same_output(models, rgb, tmp_path, arch) -> None:
    path = tmp_path / "model.keras"
    models[arch].save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(loaded(rgb).numpy(), models[arch](rgb).numpy(), atol=1e-6)


def test_caffe_preprocess_flips_rgb_to_bgr_and_subtracts_the_imagenet_mean() -> None:
    rgb = np.array([[[[10.0, 20.0, 30.0]]]], dtype="float32")
    out = CaffePreprocess()(rgb).numpy()
    np.testing.assert_allclose(out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


def test_unknown_architecture_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="arch must be one of .* got 'vgg16'"):
        build_model("vgg16")


def test_weights_for_a_scratch_architecture_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="weights apply to .* for 'cnn'"):
        build_model("cnn", weights="imagenet")


@pytest.mark.parametrize("arch", ["cnn", "cancernet"])
def test_width_scales_the_filters_and_block_dropout_sets_the_rate(arch) -> None:
    plain, wide = build_model(arch), build_model(arch, width=1.5, block_dropout=0.1)
    convs = [c for c in plain.layers if isinstance(c, (keras.layers.Conv2D, keras.layers.SeparableConv2D))]
    wide_convs = [wide.get_layer(c.name) for c in convs]
    assert [w.filters for w in wide_convs] == [round(1.5 * c.filters) for c in convs]
    assert {d.rate for d in wide.layers if d.name.startswith("block") and d.name.endswith("_dropout")} == {0.1}
    assert {d.rate for d in plain.layers if d.name.startswith("block") and d.name.endswith("_dropout")} == {0.25}
    assert wide.get_layer("head_dropout").rate == plain.get_layer("head_dropout").rate == 0.5
    assert build_model(arch, head_dropout=0.0).get_layer("head_dropout").rate == 0.0


def test_width_and_block_dropout_are_checked() -> None:
    with pytest.raises(ValueError, match="cnn and cancernet only, not 'resnet50'"):
        build_model("resnet50", width=2.0)
    with pytest.raises(ValueError, match="width must be in"):
        build_model("cnn", width=0.0)
    with pytest.raises(ValueError, match="block_dropout must be in"):
        build_model("cnn", block_dropout=1.0)
    with pytest.raises(ValueError, match="head_dropout must be in"):
        build_model("cnn", head_dropout=-0.1)
    with pytest.raises(ValueError, match="cnn and cancernet only, not 'mobilenetv2'"):
        build_model("mobilenetv2", head_dropout=0.0)


def test_same_seed_builds_the_same_weights() -> None:
    first, second = build_model("cnn", seed=7), build_model("cnn", seed=7)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_imagenet_without_network_raises_weights_error_saying_what_to_download(monkeypatch) -> None:
    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(WeightsError) as info:
        build_model("resnet50", weights="imagenet")
    message = str(info.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" in message
    assert "--weights PATH" in message and "--weights none" in message


@pytest.fixture(scope="module")
def mobilenet_base() -> keras.Model:
    return keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(50, 50, 3))


def _write_legacy_h5(model: keras.Model, path) -> None:
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.mark.parametrize("filename", ["base.weights.h5", "base_notop.h5"])
def test_local_weights_file_is_loaded_into_the_base(mobilenet_base, tmp_path, filename) -> None:
    path = tmp_path / filename
    if filename.endswith(".weights.h5"):
        mobilenet_base.save_weights(path)
    else:
        _write_legacy_h5(mobilenet_base, path)
    model = build_model("mobilenetv2", weights=str(path), seed=1)
    checked = 0
    for layer in (layer for layer in mobilenet_base.layers if layer.weights):
        for saved, loaded in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(saved, loaded)
            checked += 1
    assert checked > 200


def test_missing_weights_file_raises_weights_error_naming_it(tmp_path) -> None:
    missing = tmp_path / "nope.h5"
    with pytest.raises(WeightsError, match=f"weights file '{missing}' for mobilenetv2 not found"):
        build_model("mobilenetv2", weights=str(missing))


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weights_of_another_architecture_raise_weights_error(mobilenet_base, tmp_path) -> None:
    path = tmp_path / "mobilenet.weights.h5"
    mobilenet_base.save_weights(path)
    with pytest.raises(WeightsError, match="could not be loaded into the efficientnetb0 base"):
        build_model("efficientnetb0", weights=str(path))


def _trainable(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers if layer.trainable and layer.weights}


@pytest.mark.parametrize("arch", TRANSFER_ARCHS)
def test_freeze_base_with_no_top_blocks_trains_only_the_head(models, arch) -> None:
    freeze_base(models[arch], arch, 0)
    trainable = _trainable(models[arch])
    assert OUTPUT_NAME in trainable
    assert all(name == OUTPUT_NAME or name.startswith("head_") for name in trainable)


@pytest.mark.parametrize(
    ("arch", "blocks", "inside", "outside"),
    [
        ("resnet50", 1, "conv5_block1_1_conv", "conv4_block6_3_conv"),
        ("resnet50", 2, "conv4_block6_3_conv", "conv3_block4_3_conv"),
        ("mobilenetv2", 1, "Conv_1", "block_15_project"),
        ("mobilenetv2", 2, "block_15_project", "block_14_project"),
        ("efficientnetb0", 1, "top_conv", "block6d_project_conv"),
        ("efficientnetb0", 2, "block6d_project_conv", "block5c_project_conv"),
    ],
)
def test_freeze_base_unfreezes_the_top_blocks_but_keeps_batchnorm_frozen(
    models, arch, blocks, inside, outside
) -> None:
    model = models[arch]
    freeze_base(model, arch, blocks)
    assert model.get_layer(inside).trainable
    assert not model.get_layer(outside).trainable
    batchnorms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorms and not any(layer.trainable for layer in batchnorms)
    freeze_base(model, arch, 0)


def test_freeze_base_rejects_scratch_architectures_and_too_many_blocks(models) -> None:
    with pytest.raises(ValueError, match="freeze_base applies to .* got arch='cnn'"):
        freeze_base(models["cnn"], "cnn")
    with pytest.raises(ValueError, match="trainable_top_blocks must be in 0..5 for resnet50, got 6"):
        freeze_base(models["resnet50"], "resnet50", 6)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_last_conv_layer_is_the_deepest_feature_map(models, arch) -> None:
    model = models[arch]
    names = conv_layer_names(model)
    assert last_conv_layer(model) == LAST_CONV[arch]
    assert LAST_CONV[arch] in names
    for name in names:
        assert len(model.get_layer(name).output.shape) == 4
    assert "rgb_0_255" not in names and not any("dropout" in n for n in names)


def test_gap_head_pools_globally_and_convs_per_block_stacks_convolutions() -> None:
    model = build_model("cnn", head="gap", convs_per_block=2, dense_units=64)
    assert isinstance(model.get_layer("head_pool"), keras.layers.GlobalAveragePooling2D)
    assert model.get_layer("head_dense").units == 64
    convs = [c.name for c in model.layers if isinstance(c, keras.layers.Conv2D)]
    assert convs == [f"block{i}_conv{j}" for i in (1, 2, 3) for j in (1, 2)]
    # the GAP head has far fewer weights than flatten + dense over the 6x6x128 map
    assert model.get_layer("head_dense").count_params() == 128 * 64 + 64
    assert last_conv_layer(model) == "block3_act2"


def test_head_options_are_checked() -> None:
    with pytest.raises(ValueError, match="cnn only, not 'cancernet'"):
        build_model("cancernet", head="gap")
    with pytest.raises(ValueError, match="head must be one of"):
        build_model("cnn", head="mean")
    with pytest.raises(ValueError, match="convs_per_block must be 1, 2 or 3"):
        build_model("cnn", convs_per_block=0)
