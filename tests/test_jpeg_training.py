"""Training that sees JPEG: the re-encoding, the JPEG copies drawn into training batches, and starting from a
shipped model's network."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

from idc_core.config import TrainConfig
from idc_core.data.image_io import jpeg_roundtrip
from idc_core.data.pipeline import JPEG_COPIES, jpeg_bank, make_dataset
from idc_core.errors import IDCError


def _patches(n: int = 64) -> np.ndarray:
    """Smooth random colour fields (H&E-like low frequencies), so JPEG changes them a little, not beyond recognition."""
    rng = np.random.default_rng(0)
    small = rng.integers(60, 230, size=(n, 5, 5, 3)).astype(np.uint8)
    return np.repeat(np.repeat(small, 10, axis=1), 10, axis=2)


def test_jpeg_roundtrip_is_lossy_deterministic_and_closer_at_higher_quality():
    x = _patches(8)
    q70, q95 = jpeg_roundtrip(x, 70), jpeg_roundtrip(x, 95)
    assert q70.shape == x.shape and q70.dtype == np.uint8
    assert not np.array_equal(q70, x) and np.array_equal(q70, jpeg_roundtrip(x, 70))
    error = lambda y: np.abs(y.astype(int) - x).mean()  # noqa: E731
    assert 0 < error(q95) < error(q70) < 12
    per_image = jpeg_roundtrip(x, np.array([95] * 4 + [70] * 4))
    assert np.array_equal(per_image[:4], q95[:4]) and np.array_equal(per_image[4:], q70[4:])
    with pytest.raises(ValueError, match="JPEG quality must be in 1..100"):
        jpeg_roundtrip(x, 0)


def test_training_batches_draw_jpeg_copies_at_the_share_asked_and_evaluation_never():
    x = _patches(64)
    index = np.arange(len(x), dtype=np.float32)  # the "label" of a patch is its index: which patch each row is
    bank = jpeg_bank(x, (50, 95), seed=3)
    assert bank.shape == (1 + JPEG_COPIES, *x.shape) and np.array_equal(bank[0], x)
    for share, expected in ((0.0, 0.0), (1.0, 1.0), (0.5, 0.5)):
        ds, steps = make_dataset(x, index, batch_size=32, training=True, augment=False, jpeg_augment=share, seed=3)
        reencoded = total = 0
        for images, rows in ds.take(steps * 8):  # 8 epochs
            for image, row in zip(images.numpy().astype(np.uint8), rows.numpy().astype(int)):
                same = np.array_equal(image, x[row])
                assert same or any(np.array_equal(image, copy[row]) for copy in bank[1:])  # one of its copies
                reencoded += not same
                total += 1
        assert reencoded / total == pytest.approx(expected, abs=0.08), share
    ds, _ = make_dataset(x, index, batch_size=64, training=False, jpeg_augment=1.0)
    images, _ = next(iter(ds))
    assert np.array_equal(images.numpy(), x.astype(np.float32))  # evaluation sees the patches as they are


def test_the_config_checks_the_jpeg_options():
    with pytest.raises(ValueError, match="jpeg_augment must be in"):
        TrainConfig(jpeg_augment=1.5)
    with pytest.raises(ValueError, match="jpeg_quality must be two qualities"):
        TrainConfig(jpeg_quality=(90, 60))


def test_training_can_start_from_a_shipped_network_of_the_same_build_and_not_another():
    from idc_core.model.builders import build_model, uncalibrated
    from idc_core.model.folder import load_model_dir
    from idc_core.workflows.train import start_from

    folder = REPO / "models" / "cnn-2conv"
    model = build_model("cnn", head="gap", convs_per_block=2, seed=0)
    start_from(model, folder)
    source = uncalibrated(load_model_dir(folder).model).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), source))
    with pytest.raises(IDCError, match="its network is not built like this one .* give the same --arch, --head"):
        start_from(build_model("cnn", seed=0), folder)  # flatten head, one convolution per block
