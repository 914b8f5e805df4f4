"""The tf.data input pipeline: decoded-patch cache, shuffling, balancing, augmentation."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from idc_core import PATCH_SIZE
from idc_core.config import AUGMENT_MODES
from idc_core.data.dataset import PatchRecord, PatchSource, load_patches
from idc_core.data.image_io import jpeg_roundtrip
from idc_core.native_logs import import_tensorflow

import_tensorflow()  # without its lines about a GPU that is not there

import tensorflow as tf  # noqa: E402

AUTOTUNE = tf.data.AUTOTUNE

# Ruifrok & Johnston's haematoxylin, eosin and DAB optical-density vectors (rows; as skimage's
# rgb_from_hed), and their inverse: colour deconvolution of RGB optical density into stains.
RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64
)
RGB_FROM_HED = RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
HED_SCALE = (0.95, 1.05)
HED_SHIFT = (-0.05, 0.05)
JPEG_COPIES = 2
"""JPEG augmentation: each training patch gets this many re-encoded copies, made once at random qualities."""


def cache_path(source: PatchSource, records: Sequence[PatchRecord], cache_dir: str | Path) -> Path:
    """Where the decoded patches of these records are cached: keyed on the source and the exact list of files,
    so a different dataset or subset never reuses another's cache."""
    key = hashlib.sha1(f"{source.kind}:{Path(source.root).resolve()}:{PATCH_SIZE}".encode())
    for record in records:
        key.update(record.path.encode() + b"\n")
    return Path(cache_dir) / f"patches-{key.hexdigest()[:16]}.npy"


def write_cache(path: Path, patches: np.ndarray) -> None:
    """Save patches as a cache file atomically (a crash never leaves half a cache under the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, patches, allow_pickle=False)
    tmp.replace(path)


def cached_patches(
    source: PatchSource,
    records: Sequence[PatchRecord],
    cache_dir: str | Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Decode the records' patches once and keep them as a .npy file (see cache_path) for later runs."""
    if cache_dir is None:
        return load_patches(source, records, progress=progress)
    path = cache_path(source, records, cache_dir)
    if path.exists():
        try:
            patches = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError, EOFError):  # a damaged cache is rebuilt, never trusted
            patches = None
        if (patches is not None and patches.dtype == np.uint8
                and patches.shape == (len(records), PATCH_SIZE, PATCH_SIZE, 3)):
            return np.asarray(patches)
    patches = load_patches(source, records, progress=progress)
    write_cache(path, patches)
    return patches


def dihedral_batch(images: tf.Tensor) -> tf.Tensor:
    """One of the 8 flips/90-degree rotations per patch (label-preserving for tissue); float32 in/out."""
    x = tf.cast(images, tf.float32)
    n = tf.shape(x)[0]

    def coin() -> tf.Tensor:
        return tf.reshape(tf.random.uniform([n]) < 0.5, [-1, 1, 1, 1])

    x = tf.where(coin(), tf.transpose(x, [0, 2, 1, 3]), x)
    x = tf.where(coin(), tf.reverse(x, axis=[2]), x)
    return tf.where(coin(), tf.reverse(x, axis=[1]), x)


def hed_augment_batch(images: tf.Tensor) -> tf.Tensor:
    """Stain augmentation (Tellez et al. 2019): per patch, each stain's optical density x U(0.95, 1.05)
    + U(-0.05, 0.05).

    RGB (0-255) -> optical density OD = -ln((I + 1) / 256) -> haematoxylin/eosin/DAB by colour
    deconvolution -> scale and shift each stain -> back to RGB. Values 0-255 in and out.
    """
    x = tf.cast(images, tf.float32)
    n = tf.shape(x)[0]
    od = -tf.math.log((x + 1.0) / 256.0)
    stains = tf.einsum("bhwc,cs->bhws", od, tf.constant(HED_FROM_RGB, tf.float32))
    scale = tf.random.uniform([n, 1, 1, 3], *HED_SCALE)
    shift = tf.random.uniform([n, 1, 1, 3], *HED_SHIFT)
    od = tf.einsum("bhws,sc->bhwc", stains * scale + shift, tf.constant(RGB_FROM_HED, tf.float32))
    return tf.clip_by_value(256.0 * tf.exp(-od) - 1.0, 0.0, 255.0)


def augment_batch(images: tf.Tensor, mode: str = "jitter") -> tf.Tensor:
    """Augment a float32 batch (values 0-255) as `mode` says (see AUGMENT_MODES)."""
    if mode == "dihedral":
        return dihedral_batch(images)
    if mode == "hed":
        return hed_augment_batch(dihedral_batch(images))
    if mode != "jitter":
        raise ValueError(f"augment mode must be one of {AUGMENT_MODES}, got {mode!r}")
    return jitter_batch(images)


def jitter_batch(images: tf.Tensor) -> tf.Tensor:
    """Random per-patch dihedral symmetry, small zoom, and H&E colour jitter.

    Input and output: float32 batches with values 0-255. The 8 flips/90-degree
    rotations are label-preserving for tissue; half the patches are zoomed by at most
    10%; per-channel intensity, hue, saturation, contrast and brightness jitter
    imitate the stain and scanner variation between patients.
    Randomness follows the global seed (``keras.utils.set_random_seed``).
    """
    x = dihedral_batch(images)
    n = tf.shape(x)[0]

    def uniform(low: float = 0.0, high: float = 1.0) -> tf.Tensor:
        return tf.random.uniform([n], low, high)

    scale = tf.where(uniform() < 0.5, uniform(0.9, 1.0), 1.0)  # zoom half of the patches
    y0 = uniform() * (1.0 - scale)
    x0 = uniform() * (1.0 - scale)
    boxes = tf.stack([y0, x0, y0 + scale, x0 + scale], axis=1)
    x = tf.image.crop_and_resize(x, boxes, tf.range(n), [PATCH_SIZE, PATCH_SIZE])

    # Stain variation: each channel's intensity, then hue and saturation, per patch.
    x = x * tf.random.uniform([n, 1, 1, 3], 0.92, 1.08)
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 255.0) / 255.0)
    hue = tf.math.floormod(hsv[..., 0] + tf.reshape(uniform(-0.05, 0.05), [-1, 1, 1]), 1.0)
    sat = tf.clip_by_value(hsv[..., 1] * tf.reshape(uniform(0.8, 1.2), [-1, 1, 1]), 0.0, 1.0)
    x = tf.image.hsv_to_rgb(tf.stack([hue, sat, hsv[..., 2]], axis=-1)) * 255.0

    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.reshape(uniform(0.8, 1.2), [-1, 1, 1, 1])
    brightness = tf.reshape(uniform(-25.0, 25.0), [-1, 1, 1, 1])
    return tf.clip_by_value((x - mean) * contrast + mean + brightness, 0.0, 255.0)


def make_dataset(
    patches: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    training: bool,
    augment: bool = False,
    augment_mode: str = "jitter",
    oversample: bool = False,
    seed: int = 42,
    drop_remainder: bool = False,
    jpeg_augment: float = 0.0,
    jpeg_quality: tuple[int, int] = (50, 95),
    start_epoch: int = 0,
    targets: np.ndarray | None = None,
    sample_weights: np.ndarray | None = None,
) -> tuple[tf.data.Dataset, int]:
    """A batched, prefetched dataset of (float32 patches 0-255, float32 labels) and its steps per epoch.

    An evaluation set is one pass in order. A training set is ENDLESS: epoch after epoch of `steps`
    batches, each epoch in its own random order (``oversample``: half the patches of each class
    instead of the natural mix), and every new iterator replays the same sequence of epochs:
    the order is a function of (seed, epoch) alone, not of how many iterators were opened before (Keras
    opens one more under tf.distribute, to build the model; see tests/test_distribute.py). Take
    `steps` batches per epoch (``model.fit(steps_per_epoch=steps)``).
    Augmentation (`augment_mode`, see AUGMENT_MODES) is applied to training batches only. With `jpeg_augment` p,
    each training patch drawn is, with probability p, one of its JPEG_COPIES copies re-encoded as JPEG at a
    quality drawn uniformly from `jpeg_quality` (made once, before training: JPEG inside the graph is slow),
    before the other augmentations.
    A training set starts at epoch `start_epoch` of that sequence (a resumed training). Its batches yield
    `targets` (default: the labels; soft targets of distillation, see distillation_targets) and, when
    `sample_weights` is given, (patches, targets, weights).
    drop_remainder keeps every batch full (tf.distribute splits batches evenly across replicas).
    """
    if augment_mode not in AUGMENT_MODES:
        raise ValueError(f"augment_mode must be one of {AUGMENT_MODES}, got {augment_mode!r}")
    if len(patches) != len(labels):
        raise ValueError(f"{len(patches)} patches for {len(labels)} labels")
    labels = np.asarray(labels, dtype=np.float32)
    steps = len(labels) // batch_size if drop_remainder else math.ceil(len(labels) / batch_size)
    if steps == 0:
        raise ValueError(f"{len(labels)} patches make no full batch of {batch_size}")
    if training:
        bank = jpeg_bank(patches, jpeg_quality, seed) if jpeg_augment > 0 else patches[None]
        ds = _training_batches(bank, labels, batch_size, drop_remainder, seed,
                               steps * batch_size if oversample else None, jpeg_augment, start_epoch,
                               labels if targets is None else np.asarray(targets, np.float32), sample_weights)
    else:
        ds = tf.data.Dataset.from_tensor_slices((patches, labels)).batch(batch_size, drop_remainder=drop_remainder)
    transform = (lambda x: augment_batch(x, augment_mode)) if training and augment else (
        lambda x: tf.cast(x, tf.float32))
    ds = ds.map(lambda x, *rest: (transform(x), *rest), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE), steps


def jpeg_bank(patches: np.ndarray, quality: tuple[int, int], seed: int) -> np.ndarray:
    """(1 + JPEG_COPIES, N, 50, 50, 3): the patches, then copies re-encoded at qualities drawn from `quality`."""
    rng = np.random.default_rng(seed)
    copies = [jpeg_roundtrip(patches, rng.integers(quality[0], quality[1] + 1, len(patches)))
              for _ in range(JPEG_COPIES)]
    return np.stack([patches, *copies])


def _training_batches(bank: np.ndarray, labels: np.ndarray, batch_size: int, drop_remainder: bool, seed: int,
                      oversample_to: int | None, jpeg_augment: float, start_epoch: int, targets: np.ndarray,
                      sample_weights: np.ndarray | None) -> tf.data.Dataset:
    """Endless batches of (patches, targets[, sample_weights]) from epoch `start_epoch` on. Epoch e holds every
    patch once, in an order drawn by stateless random ops keyed by (seed, e); with `oversample_to`, that many
    patches instead, half of either class (each class cycled through in its own order). `bank` holds the patches
    (bank[0]) and their JPEG copies (bank[1:]); a drawn patch is one of its copies with probability
    `jpeg_augment`, by stateless ops keyed by (seed, batch)."""
    members = [np.flatnonzero(labels == cls) for cls in (0.0, 1.0)]
    if oversample_to is not None and not all(len(m) for m in members):
        raise ValueError(f"oversample needs both classes; class {[len(m) for m in members].index(0)} has no patches")

    def permutation(n: int, epoch: tf.Tensor, stream: int) -> tf.Tensor:
        key = tf.stack([tf.constant(seed, tf.int64), 3 * epoch + stream])
        return tf.argsort(tf.random.stateless_uniform([n], seed=key))

    def order(epoch: tf.Tensor) -> tf.Tensor:
        if oversample_to is None:
            return permutation(len(labels), epoch, 0)
        positive = permutation(oversample_to, epoch, 0) < oversample_to // 2  # a random half
        drawn = []
        for cls, idx in enumerate(members):
            cycle = tf.gather(idx, permutation(len(idx), epoch, cls + 1))
            rank = tf.cumsum(tf.cast(positive if cls else ~positive, tf.int32)) - 1
            drawn.append(tf.gather(cycle, rank % len(idx)))
        return tf.where(positive, drawn[1], drawn[0])

    copies = len(bank) - 1
    images = tf.constant(bank if copies else bank[0])
    columns = [tf.constant(targets)] + ([] if sample_weights is None else [tf.constant(sample_weights, tf.float32)])
    ds = tf.data.Dataset.counter(start=start_epoch).flat_map(
        lambda epoch: tf.data.Dataset.from_tensor_slices(order(epoch)).batch(batch_size, drop_remainder=drop_remainder))

    def gather(step: tf.Tensor, idx: tf.Tensor) -> tuple[tf.Tensor, ...]:
        rest = tuple(tf.gather(column, idx) for column in columns)
        if not copies:
            return (tf.gather(images, idx), *rest)
        draws = tf.random.stateless_uniform([2, tf.size(idx)], seed=tf.stack([tf.constant(seed, tf.int64), -1 - step]))
        copy = 1 + tf.minimum(tf.cast(draws[1] * copies, tf.int64), copies - 1)
        variant = tf.where(draws[0] < jpeg_augment, copy, tf.zeros_like(copy))
        return (tf.gather_nd(images, tf.stack([variant, tf.cast(idx, tf.int64)], axis=1)), *rest)

    per_epoch = len(labels) if oversample_to is None else oversample_to
    per_epoch = per_epoch // batch_size if drop_remainder else math.ceil(per_epoch / batch_size)
    return ds.enumerate(start=start_epoch * per_epoch).map(gather, num_parallel_calls=AUTOTUNE)


def distillation_targets(labels: np.ndarray, teacher: np.ndarray, weights: dict[int, float] | None,
                         teacher_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets and per-patch weights that learn the labels and a teacher's P(IDC) at once (distillation).

    Cross-entropy is linear in its target, so w_y BCE(y, p) + a BCE(t, p) = (w_y + a) BCE((w_y y + a t) / (w_y + a), p):
    the label (weighted by its class weight w_y) and the teacher's probability t on the plain patch (weight a)
    become one blended target and one weight. Whatever copy the student sees (a JPEG one, augmented), its
    output is pulled towards the teacher's on the plain patch.
    """
    labels = np.asarray(labels, np.float64)
    if teacher.shape != labels.shape or not np.isfinite(teacher).all() or (teacher < 0).any() or (teacher > 1).any():
        raise ValueError(f"teacher probabilities must be one value in [0, 1] per label, got shape {teacher.shape}")
    w = np.ones_like(labels) if weights is None else np.where(labels == 1, weights[1], weights[0])
    total = w + teacher_weight
    return ((w * labels + teacher_weight * teacher) / total).astype(np.float32), total.astype(np.float32)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights n / (2 n_c), so both classes weigh the same in the loss."""
    labels = np.asarray(labels).astype(int)
    counts = np.bincount(labels, minlength=2)
    if (counts == 0).any():
        raise ValueError(f"class weights need both classes, got counts {counts.tolist()}")
    return {c: float(len(labels) / (2 * counts[c])) for c in (0, 1)}
