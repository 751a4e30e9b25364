"""CUB, MNIST and Tiny-ImageNet through the real loading code under `tfds.testing.mock_data` (no TF)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from infocam_jax import data
from infocam_jax.data import splits


def _check_batch(batch, b, size, channels=3):
  assert batch["image"].shape == (b, size, size, channels) and batch["image"].dtype == np.float32
  assert np.isfinite(batch["image"]).all()
  assert batch["label"].dtype == np.int32 and batch["mask"].all()
  boxes, valid = batch["bbox"], batch["bbox_mask"]
  assert (boxes[valid][:, :2] >= 0).all() and (boxes[valid][:, 2:] <= size - 1).all()


def test_cub_splits_and_pipeline_under_mock_data():
  with tfds.testing.mock_data(num_examples=150):
    test = data.load_source("caltech_birds2011", "test")
    val_half = data.load_source("caltech_birds2011", "wsol_val")
    test_half = data.load_source("caltech_birds2011", "wsol_test")
    assert test.num_classes == 200 and len(test) == 150
    # The halves partition the test split and follow the rule on its metadata.
    labels = np.array([test[i]["label"] for i in range(len(test))])
    names = np.array([test._ds[i]["image/filename"] for i in range(len(test))])  # pylint: disable=protected-access
    first, second = splits.alternating_halves(labels, names)
    assert sorted(val_half.indices.tolist()) == first.tolist()
    assert sorted(test_half.indices.tolist()) == second.tolist()
    assert (np.diff(test_half.labels) >= 0).all()  # presented class by class
    assert test_half.class_counts.sum() == len(test_half)
    imb = data.load_source("caltech_birds2011", "imbalanced_train")
    assert len(imb) <= 150 and imb.num_classes == 200
    train = data.load_source("caltech_birds2011", "train")
    pipe = data.make_pipeline(train, batch_size=8, train=True, image_size=224, resize_size=256,
                              seed=0, num_threads=0)
    _check_batch(pipe.get_batch(3), 8, 224)
    ev = data.make_pipeline(test_half, batch_size=8, train=False, image_size=224,
                            resize_size=256, num_threads=0)
    last = ev.get_batch(ev.steps_per_epoch - 1)
    assert last["mask"].sum() == len(test_half) - 8 * (ev.steps_per_epoch - 1)
  assert "tensorflow" not in sys.modules


def test_mnist_splits_and_pipeline_under_mock_data():
  with tfds.testing.mock_data(num_examples=400):
    train = data.load_source("mnist", "imbalanced_train")
    # 400 mock examples have original indices 0..399 < 40,000 and no class reaches its cap.
    assert len(train) == 400 and train.class_counts.sum() == 400
    assert len(data.load_source("mnist", "validation")) == 0
    test = data.load_source("mnist", "test")
    assert test[0]["image"].shape == (28, 28, 1)
    pipe = data.make_pipeline(train, batch_size=16, train=True, image_size=28, seed=0,
                              flip=False, channels=1, mean=(0.1307,), std=(0.3081,),
                              num_threads=0)
    batch = pipe.get_batch(0)
    _check_batch(batch, 16, 28, channels=1)
    assert not batch["bbox_mask"].any()
    # MNIST derived splits are ordered by the original index recovered from tfds' hash order.
    order = splits.tfds_original_order(400, "train")
    np.testing.assert_array_equal(order[train.indices], np.arange(400))


def test_tiny_imagenet_splits_and_pipeline_under_mock_data():
  with tfds.testing.mock_data(num_examples=60):
    val = data.load_source("tiny_imagenet", "validation")
    halves = [data.load_source("tiny_imagenet", s) for s in ("wsol_val", "wsol_test")]
    assert sum(len(h) for h in halves) == 60
    assert not set(halves[0].indices.tolist()) & set(halves[1].indices.tolist())
    assert val.num_classes == 200
    train = data.load_source("tiny_imagenet", "train")
    pipe = data.make_pipeline(train, batch_size=12, train=True, image_size=64, seed=1,
                              num_threads=0)
    _check_batch(pipe.get_batch(2), 12, 64)


def test_missing_dataset_errors_say_what_where_and_how(tmp_path):
  with pytest.raises(data.DatasetUnavailableError) as err:
    data.load_source("caltech_birds2011", "wsol_test", tmp_path)
  msg = str(err.value)
  assert "not prepared" in msg and str(tmp_path) in msg
  assert "tfds build caltech_birds2011" in msg and "--file_format=array_record" in msg
  assert "pip install -e '.[prepare]'" in msg  # TensorFlow is not installed here
  with pytest.raises(data.DatasetUnavailableError, match="mnist"):
    data.load_source("mnist", "train", tmp_path)
  with pytest.raises(data.DatasetUnavailableError) as err:
    data.load_source("tiny_imagenet", "train", tmp_path)
  assert str(tmp_path / "downloads" / "manual" / "tiny-imagenet-200.zip") in str(err.value)
  with pytest.raises(data.DatasetUnavailableError, match="No tfds builder"):
    data.load_source("no_such_dataset_xyz", "train", tmp_path)
  with pytest.raises(ValueError, match="available: train, test, wsol_val"):
    data.load_source("caltech_birds2011", "wsol_tst", tmp_path)
  assert "wsol_test" in data.describe()
