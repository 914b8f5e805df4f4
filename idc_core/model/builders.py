"""Model builders by name: every model takes raw RGB 0-255 and outputs P(IDC).

All preprocessing lives inside the model (Rescaling or the registered
`CaffePreprocess` layer; no Lambda), so a saved model loads with safe_mode=True
and callers never scale inputs. Transfer models are built FLAT: the
keras.applications base is created on `input_tensor=<preprocessed input>`, so its
layers sit directly in the model (tf-keras-vis cannot see into nested models).
"""

from __future__ import annotations

from pathlib import Path

from idc_core import PATCH_SIZE
from idc_core.config import ARCHITECTURES, HEADS, TRANSFER_ARCHS
from idc_core.errors import WeightsError
from idc_core.native_logs import import_tensorflow

import_tensorflow()  # before Keras: without TensorFlow's lines about a GPU that is not there

import keras  # noqa: E402
from keras import layers  # noqa: E402

OUTPUT_NAME = "idc_probability"
DEFAULT_BLOCK_DROPOUT = 0.25
DEFAULT_HEAD_DROPOUT = 0.5
HEAD_PREFIX = "head_"

# keras.applications builds each base from 32x32 up with include_top=False, so
# 50x50 needs no Resizing layer (the final feature map is 2x2 for all three).
_APPLICATIONS = {
    "resnet50": keras.applications.ResNet50,
    "mobilenetv2": keras.applications.MobileNetV2,
    "efficientnetb0": keras.applications.EfficientNetB0,
}
# The "notop" ImageNet files keras.applications downloads (MobileNetV2 uses the
# 224 file for any input size that is not 96/128/160/192/224).
IMAGENET_FILES = {
    "resnet50": "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "mobilenetv2": "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    "efficientnetb0": "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
}
# Layer-name prefixes of each base's blocks, top block first (for fine-tuning).
TOP_BLOCKS: dict[str, tuple[tuple[str, ...], ...]] = {
    "resnet50": (("conv5_",), ("conv4_",), ("conv3_",), ("conv2_",), ("conv1_", "pool1_")),
    "mobilenetv2": (("block_16_", "Conv_1", "out_relu"),)
    + tuple((f"block_{i}_",) for i in range(15, 0, -1))
    + (("expanded_conv_", "Conv1", "bn_Conv1"),),
    "efficientnetb0": (("block7", "top_"),)
    + tuple((f"block{i}",) for i in range(6, 0, -1))
    + (("stem_",),),
}
@keras.saving.register_keras_serializable(package="idc_core")
class CaffePreprocess(layers.Layer):
    """ResNet50 'caffe' preprocessing: RGB -> BGR, then subtract the ImageNet BGR mean."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs):
        bgr = keras.ops.flip(inputs, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="idc_core")
class ProbabilityCalibration(layers.Layer):
    """P(IDC) -> sigmoid(scale * logit(P) + shift): the calibration fitted on validation patients (calibration.py).

    Monotone for scale > 0, so rankings (ROC-AUC) and Grad-CAM (which reads the logit before it) are unchanged.
    """

    def __init__(self, method: str, scale: float, shift: float, epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(**kwargs)
        if not scale > 0:
            raise ValueError(f"calibration scale must be > 0 (monotone), got {scale}")
        self.method, self.scale, self.shift, self.epsilon = method, float(scale), float(shift), float(epsilon)

    def call(self, inputs):
        p = keras.ops.clip(inputs, self.epsilon, 1.0 - self.epsilon)
        return keras.ops.sigmoid(self.scale * (keras.ops.log(p) - keras.ops.log1p(-p)) + self.shift)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "method": self.method, "scale": self.scale, "shift": self.shift,
                "epsilon": self.epsilon}


CALIBRATION_NAME = "calibrated_idc_probability"


def uncalibrated(model: keras.Model) -> keras.Model:
    """`model` without its calibration layer (the same model when it has none); layers are shared, not copied."""
    last = model.layers[-1]
    if not isinstance(last, ProbabilityCalibration):
        return model
    return keras.Model(model.inputs, last.input, name=model.name)


def with_calibration(model: keras.Model, method: str, scale: float, shift: float) -> keras.Model:
    """`model` (any calibration it had removed first) followed by a ProbabilityCalibration layer; same name."""
    base = uncalibrated(model)
    calibrated = ProbabilityCalibration(method, scale, shift, name=CALIBRATION_NAME)(base.outputs[0])
    return keras.Model(base.inputs, calibrated, name=base.name)


_NOT_FEATURES = (
    layers.InputLayer,
    layers.Dropout,
    layers.ZeroPadding2D,
    layers.Rescaling,
    layers.Normalization,
    CaffePreprocess,
    ProbabilityCalibration,
)


def _filters(base: int, width: float) -> int:
    return max(1, round(base * width))


def _cnn(inputs: keras.KerasTensor, width: float, block_dropout: float, head: str = "flatten",
         convs_per_block: int = 1, dense_units: int = 128, sync_bn: bool = False,
         head_dropout: float = DEFAULT_HEAD_DROPOUT) -> keras.KerasTensor:
    """Three blocks of conv-BN-leaky ReLU (x convs_per_block), max-pool, dropout; then the head.

    head "flatten" is the seed projects' flatten + dense; "gap" pools each feature map globally
    first (far fewer head weights, so the convolutions must carry the features).
    """
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, filters in enumerate((32, 64, 128), start=1):
        for j in range(1, convs_per_block + 1):
            suffix = "" if convs_per_block == 1 else str(j)
            x = layers.Conv2D(_filters(filters, width), 3, padding="same", use_bias=False,
                              name=f"block{i}_conv{suffix}")(x)
            x = layers.BatchNormalization(synchronized=sync_bn, name=f"block{i}_bn{suffix}")(x)
            x = layers.LeakyReLU(negative_slope=0.1, name=f"block{i}_act{suffix}")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Dropout(block_dropout, name=f"block{i}_dropout")(x)
    if head == "gap":
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    else:
        x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    return layers.Dropout(head_dropout, name="head_dropout")(x)


def _cancernet(inputs: keras.KerasTensor, width: float, block_dropout: float, sync_bn: bool = False,
               head_dropout: float = DEFAULT_HEAD_DROPOUT) -> keras.KerasTensor:
    """CancerNet (PyImageSearch): SeparableConv stages of 1, 2 and 3 convolutions."""
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, (filters, depth) in enumerate(((32, 1), (64, 2), (128, 3)), start=1):
        for j in range(1, depth + 1):
            x = layers.SeparableConv2D(_filters(filters, width), 3, padding="same", name=f"block{i}_sepconv{j}")(x)
            x = layers.ReLU(name=f"block{i}_relu{j}")(x)
            x = layers.BatchNormalization(synchronized=sync_bn, name=f"block{i}_bn{j}")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Dropout(block_dropout, name=f"block{i}_dropout")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(256, activation="relu", name="head_dense")(x)
    x = layers.BatchNormalization(synchronized=sync_bn, name="head_bn")(x)
    return layers.Dropout(head_dropout, name="head_dropout")(x)


def _preprocess(arch: str, inputs: keras.KerasTensor) -> keras.KerasTensor:
    if arch == "resnet50":
        return CaffePreprocess(name="preprocess_caffe")(inputs)
    if arch == "mobilenetv2":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_rescale")(inputs)
    return inputs  # EfficientNetB0 has its own Rescaling + Normalization layers (0-255 input).


def _imagenet_help(arch: str) -> str:
    url = IMAGENET_FILES[arch]
    return (
        f"download {url.rsplit('/', 1)[1]} from {url} on a machine with internet, "
        f"then pass --weights PATH_TO_THAT_FILE (or put it in ~/.keras/models/), "
        f"or pass --weights none to train from random weights"
    )


def _transfer_base(
    arch: str, inputs: keras.KerasTensor, input_shape: tuple[int, int, int], weights: str | None
) -> keras.KerasTensor:
    x = _preprocess(arch, inputs)
    application = _APPLICATIONS[arch]
    if weights == "imagenet":
        try:
            base = application(
                include_top=False, weights="imagenet", input_tensor=x, input_shape=input_shape
            )
        except Exception as exc:  # keras.utils.get_file raises a bare Exception offline
            raise WeightsError(
                f"ImageNet weights for {arch} could not be downloaded ({exc}); "
                + _imagenet_help(arch)
            ) from exc
        return base.output
    base = application(include_top=False, weights=None, input_tensor=x, input_shape=input_shape)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file {str(path)!r} for {arch} not found; " + _imagenet_help(arch))
        expected = (
            f"it must hold the include_top=False (notop) weights of keras.applications "
            f"{application.__name__} (.h5 or .weights.h5)"
        )
        first = next(w for w in base.weights if w.trainable)
        before = first.numpy()
        try:
            base.load_weights(str(path))
        except Exception as exc:  # wrong architecture, corrupt or unsupported file
            reason = str(exc).strip().splitlines()[0][:300]
            raise WeightsError(
                f"weights file {str(path)!r} could not be loaded into the {arch} base "
                f"({type(exc).__name__}: {reason}); {expected}"
            ) from exc
        if (first.numpy() == before).all():
            raise WeightsError(
                f"weights file {str(path)!r} loaded no weights into the {arch} base; {expected}"
            )
    return base.output


def build_model(
    arch: str,
    *,
    input_shape: tuple[int, int, int] = (PATCH_SIZE, PATCH_SIZE, 3),
    weights: str | None = None,
    seed: int | None = None,
    width: float = 1.0,
    block_dropout: float = DEFAULT_BLOCK_DROPOUT,
    head_dropout: float = DEFAULT_HEAD_DROPOUT,
    head: str = "flatten",
    convs_per_block: int = 1,
    dense_units: int = 128,
    synchronized_bn: bool = False,
) -> keras.Model:
    """Build `arch` as a flat functional model: raw RGB 0-255 in, Dense(1, sigmoid) out.

    weights: None (random), "imagenet" (downloaded by keras; WeightsError offline) or
    the path of a local notop weights file for the transfer base. `seed` seeds Keras'
    global random generators (keras.utils.set_random_seed) before building.
    width (filters x width), block_dropout (after each conv block) and head_dropout (after the dense
    head layer) shape cnn and cancernet;
    head ("flatten" or "gap"), convs_per_block and dense_units shape cnn only. synchronized_bn (cnn,
    cancernet) makes BatchNormalization use the statistics of the whole global batch under tf.distribute.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    if weights is not None and arch not in TRANSFER_ARCHS:
        raise ValueError(f"weights apply to {TRANSFER_ARCHS} only, got weights={weights!r} for {arch!r}")
    if (width, block_dropout, head_dropout) != (1.0, DEFAULT_BLOCK_DROPOUT, DEFAULT_HEAD_DROPOUT) \
            and arch in TRANSFER_ARCHS:
        raise ValueError(f"width, block_dropout and head_dropout apply to cnn and cancernet only, not {arch!r}")
    if (head, convs_per_block, dense_units) != ("flatten", 1, 128) and arch != "cnn":
        raise ValueError(f"head, convs_per_block and dense_units apply to cnn only, not {arch!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if isinstance(convs_per_block, bool) or convs_per_block not in (1, 2, 3):
        raise ValueError(f"convs_per_block must be 1, 2 or 3, got {convs_per_block!r}")
    if isinstance(dense_units, bool) or not isinstance(dense_units, int) or not 1 <= dense_units <= 4096:
        raise ValueError(f"dense_units must be an integer in 1..4096, got {dense_units!r}")
    if not 0.0 < width <= 8.0:
        raise ValueError(f"width must be in (0, 8], got {width}")
    if not 0.0 <= block_dropout < 1.0:
        raise ValueError(f"block_dropout must be in [0, 1), got {block_dropout}")
    if not 0.0 <= head_dropout < 1.0:
        raise ValueError(f"head_dropout must be in [0, 1), got {head_dropout}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=input_shape, dtype="float32", name="rgb_0_255")
    if arch == "cnn":
        x = _cnn(inputs, width, block_dropout, head, convs_per_block, dense_units, synchronized_bn, head_dropout)
    elif arch == "cancernet":
        x = _cancernet(inputs, width, block_dropout, synchronized_bn, head_dropout)
    else:
        x = _transfer_base(arch, inputs, input_shape, weights)
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
        x = layers.Dropout(0.3, name="head_dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=arch)


def freeze_base(model: keras.Model, arch: str, trainable_top_blocks: int = 0) -> None:
    """Freeze a transfer model's base except its top `trainable_top_blocks` blocks.

    The head (layers named head_* and the output) stays trainable; BatchNormalization
    layers stay frozen (inference mode) even in unfrozen blocks. Recompile afterwards.
    cnn/cancernet have no pre-trained base: ValueError.
    """
    if arch not in TRANSFER_ARCHS:
        raise ValueError(f"freeze_base applies to {TRANSFER_ARCHS} only, got arch={arch!r}")
    blocks = TOP_BLOCKS[arch]
    if not 0 <= trainable_top_blocks <= len(blocks):
        raise ValueError(
            f"trainable_top_blocks must be in 0..{len(blocks)} for {arch}, got {trainable_top_blocks}"
        )
    prefixes = tuple(p for block in blocks[:trainable_top_blocks] for p in block)
    for layer in model.layers:
        if layer.name.startswith(HEAD_PREFIX) or layer.name == OUTPUT_NAME:
            layer.trainable = True
        elif isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
        else:
            layer.trainable = bool(prefixes) and layer.name.startswith(prefixes)


def conv_layer_names(model: keras.Model) -> list[str]:
    """Names of the layers whose 4D output (N, H, W, C) is a feature map usable for Grad-CAM.

    Inputs, preprocessing, dropout and padding layers are left out (they add nothing).
    """
    names = []
    for layer in model.layers:
        if isinstance(layer, _NOT_FEATURES):
            continue
        shape = layer.output.shape
        if len(shape) == 4 and shape[1] is not None and shape[1] > 1:
            names.append(layer.name)
    return names


def last_conv_layer(model: keras.Model) -> str:
    """The deepest feature-map layer that is not a pooling layer (the usual Grad-CAM target)."""
    names = [
        n
        for n in conv_layer_names(model)
        if not isinstance(model.get_layer(n), (layers.MaxPooling2D, layers.AveragePooling2D))
    ]
    if not names:
        raise ValueError(f"model {model.name!r} has no convolutional feature-map layer")
    return names[-1]
