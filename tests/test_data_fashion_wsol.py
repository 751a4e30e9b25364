"""`fashion_wsol`: articles on bundled photographs; builder from small IDX files the test writes."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from infocam_jax import data
from infocam_jax.data import cluttered
from infocam_jax.data import fashion_wsol as fw
from infocam_jax.data import idx
from infocam_jax.data import splits
from infocam_jax.data import textures

try:
  from test_data_idx import DEBIAN_DIR, write_idx  # tests/ on sys.path
except ImportError:
  from tests.test_data_idx import DEBIAN_DIR, write_idx


def fake_articles(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Articles like Fashion-MNIST's: zero background, a solid irregular blob of values 30..255.

  Labels cycle through the 10 classes, so every class has n // 10 articles.
  """
  rng = np.random.default_rng(seed)
  images = np.zeros((n, 28, 28), np.uint8)
  yy, xx = np.mgrid[:28, :28]
  for i in range(n):
    cy, cx = rng.uniform(9, 19, 2)
    ry, rx = rng.uniform(4, 13, 2)
    blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    images[i][blob] = rng.integers(30, 256, blob.sum())
  return images, (np.arange(n) % 10).astype(np.uint8)


def write_fashion(directory, n_train: int = 120, n_test: int = 40) -> dict:
  os.makedirs(directory, exist_ok=True)
  out = {"train": fake_articles(n_train, 0), "test": fake_articles(n_test, 1)}
  for split, (images, labels) in out.items():
    write_idx(os.path.join(directory, idx.FILES[(split, "images")] + ".gz"), images)
    write_idx(os.path.join(directory, idx.FILES[(split, "labels")]), labels)
  return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp("fashion_wsol")
  arrays = write_fashion(root / "manual" / "fashion_mnist")
  tfds_dir = root / "tfds"
  data.load_source("fashion_wsol/small", "train", tfds_dir, manual_dir=root / "manual")
  return tfds_dir, arrays


def test_split_sizes_features_and_article_pools(prepared):
  tfds_dir, arrays = prepared
  sizes = {}
  for split in ("train", "validation", "test"):
    source = data.load_source("fashion_wsol/small", split, tfds_dir)
    sizes[split] = len(source)
    assert source.num_classes == 10 and source.class_names[1] == "Trouser"
    assert (source.class_counts == {"train": 8, "validation": 4, "test": 4}[split]).all()
    ex = source[3]
    assert ex["image"].shape == (48, 48, 3) and ex["image"].dtype == np.uint8
    assert ex["bbox"].shape == (1, 4)
  assert sizes == {"train": 80, "validation": 40, "test": 40}
  ids = {}
  for split in ("train", "validation", "test"):
    ds = tfds.data_source("fashion_wsol/small", split=split, data_dir=tfds_dir)
    file_labels = arrays["test" if split == "test" else "train"][1]
    rows = [int(ds[i]["item_id"]) for i in range(len(ds))]
    assert all(file_labels[r] == ds[i]["label"] for i, r in enumerate(rows))  # label = article's
    assert all(0 <= int(ds[i]["texture_id"]) < len(textures.TEXTURE_FILES) for i in range(len(ds)))
    ids[split] = set(rows)
  assert not ids["train"] & ids["validation"]  # disjoint pools of the training file
  pools = cluttered.instance_split(arrays["train"][1], fw.POOL_FRACTIONS, fw.POOL_SEED)
  assert ids["train"] <= set(pools[0].tolist()) and ids["validation"] <= set(pools[1].tolist())


def test_builder_is_deterministic(prepared):
  """Example k is a function of (seed, split, k): regenerate three and compare bit for bit."""
  tfds_dir, _ = prepared
  builder = tfds.builder("fashion_wsol/small", data_dir=tfds_dir)
  ds = builder.as_data_source(split="test")
  keys = splits.tfds_original_order(len(ds), "test")
  directory = builder.info.metadata["source_dir"]
  generated = dict(builder._generate_examples(  # pylint: disable=protected-access
      "test", fw.item_pools(directory)["test"], textures.load_textures()))
  for pos in (0, 21, 39):
    stored, fresh = ds[pos], generated[int(keys[pos])]
    fresh_image = np.asarray(Image.open(io.BytesIO(fresh["image"])))
    np.testing.assert_array_equal(stored["image"], fresh_image)
    assert stored["label"] == fresh["label"] and stored["item_id"] == fresh["item_id"]
    np.testing.assert_allclose(stored["bbox"], list(fresh["bbox"]), atol=1e-6)


def test_box_is_tight_around_the_articles_own_pixels():
  """Render with the article and a blank one (same generator): the difference is the article."""
  items, _ = fake_articles(40, 3)
  photos = textures.load_textures()
  spec = fw.FashionSceneSpec(image_size=64)
  for seed in range(25):
    scene, _ = fw.render_item_scene(np.random.default_rng(seed), items[seed], items, photos, spec)
    blank, _ = fw.render_item_scene(np.random.default_rng(seed), np.zeros((28, 28), np.uint8),
                                    items, photos, spec)
    diff = np.abs(scene.image.astype(int) - blank.image.astype(int)).max(-1)
    x0, y0, x1, y1 = scene.box
    ys, xs = np.nonzero(diff > 0)
    strong = np.nonzero(diff >= 0.8 * diff.max())
    assert strong[1].min() >= x0 and strong[1].max() <= x1
    assert strong[0].min() >= y0 and strong[0].max() <= y1
    # Any trace of the article lies within 2 px of the box (the resampled soft edge).
    assert 0 <= x0 - xs.min() <= 2 and 0 <= xs.max() - x1 <= 2
    assert 0 <= y0 - ys.min() <= 2 and 0 <= ys.max() - y1 <= 2
    np.testing.assert_allclose(scene.bbox, [y0 / 64, x0 / 64, (y1 + 1) / 64, (x1 + 1) / 64])


def test_box_at_an_integer_scale_is_the_scaled_nonzero_box():
  """Patch 56x56 = 2x the 28x28 article: the box is twice its nonzero box, fragments or not."""
  items, _ = fake_articles(30, 4)
  photos = textures.load_textures()
  spec = fw.FashionSceneSpec(image_size=80, item_height=(0.7, 0.7), aspect_jitter=0.0)
  for seed in range(10):
    item = items[seed]
    rows, cols = np.flatnonzero((item > 0).any(1)), np.flatnonzero((item > 0).any(0))
    scene, _ = fw.render_item_scene(np.random.default_rng(seed), item, items, photos, spec)
    x0, y0, x1, y1 = scene.box
    width, height = cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
    assert (x1 - x0 + 1, y1 - y0 + 1) == (2 * width, 2 * height)
    assert 0 <= x0 and x1 < 80 and 0 <= y0 and y1 < 80


def test_scenes_defeat_centred_and_full_image_boxes():
  items, _ = fake_articles(200, 5)
  photos = textures.load_textures()
  spec = fw.FashionSceneSpec()
  boxes = [fw.render_item_scene(np.random.default_rng([7, i]), items[i], items, photos, spec)[0].box
           for i in range(200)]
  scores = cluttered.fixed_box_scores(np.array(boxes), spec.image_size)
  assert scores["full"] == 0.0 and scores["centred_best"] < 0.25


def test_textures_are_bundled_files_read_without_network_or_import():
  directory = textures.texture_dir()
  assert os.sep + os.path.join("skimage", "data") in directory
  for name in textures.TEXTURE_FILES:
    assert os.path.isfile(os.path.join(directory, name)), name
  code = (
      "import socket, sys\n"
      "from infocam_jax.data import textures\n"
      "def no_net(*a, **k): raise RuntimeError('network access')\n"
      "socket.socket = no_net; socket.create_connection = no_net\n"
      "photos = textures.load_textures()\n"
      "assert len(photos) == len(textures.TEXTURE_FILES)\n"
      "assert all(p.ndim == 3 and p.shape[2] == 3 and min(p.shape[:2]) >= 300 for p in photos)\n"
      "assert 'skimage' not in sys.modules and 'pooch' not in sys.modules\n"
      "print('ok')\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "ok"


def test_missing_articles_error_names_the_package(tmp_path, monkeypatch):
  monkeypatch.setattr(idx, "SYSTEM_DIRS", {})
  with pytest.raises(data.DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
    data.load_source("fashion_wsol/small", "train", tmp_path / "tfds",
                     manual_dir=tmp_path / "nothing")


def test_spec_validation():
  with pytest.raises(ValueError, match="image_size"):
    fw.FashionSceneSpec(image_size=8)
  with pytest.raises(ValueError, match="item_height"):
    fw.FashionSceneSpec(item_height=(0.6, 0.3))
  with pytest.raises(ValueError, match="fragment_side"):
    fw.FashionSceneSpec(fragment_side=(1, 40))


@pytest.mark.skipif(not os.path.isdir(DEBIAN_DIR),
                    reason=f"{DEBIAN_DIR} missing: apt-get install dataset-fashion-mnist")
def test_real_articles_defeat_image_independent_boxes():
  pools = fw.item_pools(DEBIAN_DIR)
  items, labels, _ = pools["test"]
  assert len(pools["train"][0]) == 50_000 and len(pools["validation"][0]) == 10_000
  photos = textures.load_textures()
  spec = fw.FashionSceneSpec()
  boxes = [fw.render_item_scene(np.random.default_rng([9, i]), items[i], items, photos, spec)[0].box
           for i in range(300)]
  scores = cluttered.fixed_box_scores(np.array(boxes), spec.image_size)
  # Measured (300 test articles, seed [9, i]): full 0.0, centred_mean 0.097, centred_best 0.143.
  assert scores["full"] == 0.0 and scores["centred_best"] < 0.2
