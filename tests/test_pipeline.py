"""The tf.data pipeline: shapes, dtypes, balancing, augmentation and the decode cache."""

import numpy as np
import pytest

from idc_core.data.dataset import PatchSource, scan_dataset
from idc_core.data.pipeline import (
    HED_FROM_RGB,
    RGB_FROM_HED,
    augment_batch,
    cached_patches,
    class_weights,
    hed_augment_batch,
    make_dataset,
)


def _toy(n0: int = 30, n1: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n0 + n1, 50, 50, 3), dtype=np.uint8)
    y = np.array([0] * n0 + [1] * n1)
    return x, y


def test_batches_have_model_input_shape_and_dtype():
    x, y = _toy()
    ds, steps = make_dataset(x, y, batch_size=16, training=False)
    batches = list(ds)
    assert steps == 3 and len(batches) == 3
    images, labels = batches[0]
    assert images.shape == (16, 50, 50, 3) and images.dtype.name == "float32"
    assert labels.dtype.name == "float32"
    assert np.array_equal(np.concatenate([b[1].numpy() for b in batches]), y)


def test_evaluation_batches_are_not_augmented():
    x, y = _toy()
    ds, _ = make_dataset(x, y, batch_size=40, training=False, augment=True)
    images, _ = next(iter(ds))
    assert np.array_equal(images.numpy(), x.astype(np.float32))


def test_oversampling_draws_both_classes_about_equally():
    x, y = _toy(n0=300, n1=20)
    ds, steps = make_dataset(x, y, batch_size=32, training=True, oversample=True)
    drawn = np.concatenate([b[1].numpy() for b in ds.take(steps)])
    assert len(drawn) == steps * 32
    assert 0.35 < drawn.mean() < 0.65  # natural mix would be 20/320 = 0.06


def test_training_order_is_shuffled_but_complete():
    x, y = _toy()
    ds, steps = make_dataset(x, y, batch_size=8, training=True)
    drawn = np.concatenate([b[1].numpy() for b in ds.take(steps)])
    assert sorted(drawn.tolist()) == sorted(y.tolist())


def test_training_epochs_differ_and_every_iterator_replays_them():
    # Keras opens an extra iterator under tf.distribute: the order must not depend on how many were opened.
    x = np.arange(40 * 50 * 50 * 3).reshape(40, 50, 50, 3).astype(np.uint8)
    ds, steps = make_dataset(x, np.arange(40) % 2, batch_size=8, training=True, seed=3)

    def epochs(n: int) -> list[list[float]]:
        firsts = [b[0].numpy()[:, 0, 0, 0].tolist() for b in ds.take(n * steps)]
        return [sum(firsts[e * steps:(e + 1) * steps], []) for e in range(n)]

    first, again = epochs(3), epochs(3)
    assert first == again
    assert first[0] != first[1] and sorted(first[0]) == sorted(first[1])


def test_augmentation_keeps_shape_range_and_changes_pixels():
    x, _ = _toy()
    out = augment_batch(x.astype(np.float32)).numpy()
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, x)


def test_augmentation_keeps_tissue_colour_plausible():
    # a uniform pink patch stays close to pink: jitter is small
    pink = np.full((4, 50, 50, 3), (200, 100, 180), np.float32)
    out = augment_batch(pink).numpy()
    assert np.abs(out.mean(axis=(1, 2)) - pink.mean(axis=(1, 2))).max() < 60


def test_class_weights_balance_the_classes():
    w = class_weights(np.array([0, 0, 0, 1]))
    assert w[0] * 3 == pytest.approx(w[1] * 1)
    with pytest.raises(ValueError, match="both classes"):
        class_weights(np.array([0, 0]))


def test_decode_cache_is_reused(small_data, tmp_path):
    scan = scan_dataset(small_data)
    with PatchSource.open(small_data) as source:
        first = cached_patches(source, scan.records, tmp_path)
        files = list(tmp_path.glob("patches-*.npy"))
        assert len(files) == 1
        np.save(files[0], np.zeros_like(first))  # a second run must read the cache, not decode
        second = cached_patches(source, scan.records, tmp_path)
    assert first.shape == (len(scan.records), 50, 50, 3) and first.dtype == np.uint8
    assert not second.any()


def test_dihedral_mode_only_flips_and_rotates():
    x, _ = _toy(4, 0)
    out = augment_batch(x.astype(np.float32), "dihedral").numpy()
    views = lambda p: [np.rot90(q, k) for q in (p, p[:, ::-1]) for k in range(4)]  # noqa: E731
    for original, augmented in zip(x, out):
        assert any(np.array_equal(augmented, v) for v in views(original.astype(np.float32)))


def test_hed_round_trip_is_exact_and_augmentation_moves_stains_a_little():
    x, _ = _toy(4, 0)
    od = -np.log((x.astype(np.float64) + 1) / 256)
    back = 256 * np.exp(-(od @ HED_FROM_RGB @ RGB_FROM_HED)) - 1
    np.testing.assert_allclose(back, x, atol=1e-6)
    pink = np.full((64, 50, 50, 3), (200, 100, 180), np.float32)
    out = hed_augment_batch(pink).numpy()
    assert out.shape == pink.shape and out.min() >= 0 and out.max() <= 255
    shift = np.abs(out - pink).mean(axis=(1, 2, 3))
    assert shift.max() < 25  # scale 0.95-1.05 and shift +-0.05 in optical density: small changes
    assert np.std(out.mean(axis=(1, 2))) > 0.5  # but different per patch


def test_unknown_augment_mode_is_refused():
    x, y = _toy()
    with pytest.raises(ValueError, match="augment_mode must be one of"):
        make_dataset(x, y, batch_size=8, training=True, augment=True, augment_mode="strong")
