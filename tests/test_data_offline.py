"""The offline datasets: generator, tfds builders (prepared without TF), real-file pipeline."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from infocam_jax import data
from infocam_jax.data import cluttered
from infocam_jax.data import offline
from infocam_jax.data import splits


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("tfds")
  for name in ("cluttered_digits/small", "imbalanced_digits/small"):
    data.load_source(name, "train", path)  # prepares on first use
  return path


def test_prepared_counts_and_features(data_dir):
  sizes = {s: len(data.load_source("cluttered_digits/small", s, data_dir))
           for s in ("train", "validation", "test")}
  assert sizes == {"train": 240, "validation": 80, "test": 80}
  train = data.load_source("cluttered_digits/small", "train", data_dir)
  assert train.num_classes == 10 and train.class_names == tuple("0123456789")
  assert (train.class_counts == 24).all()
  ex = train[5]
  assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
  assert ex["bbox"].shape == (1, 4)
  imb = data.load_source("imbalanced_digits/small", "train", data_dir)
  assert imb.class_counts.tolist() == [4, 40] * 5
  assert data.load_source("imbalanced_digits/small", "test", data_dir).class_counts.tolist() == [8] * 10


def test_digit_instances_of_the_splits_are_disjoint(data_dir):
  ids = {}
  for split in ("train", "validation", "test"):
    ds = tfds.data_source("cluttered_digits/small", split=split, data_dir=data_dir)
    ids[split] = {int(ds[i]["digit_id"]) for i in range(len(ds))}
    _, labels = cluttered.load_digits()
    assert all(labels[d] == ds[i]["label"] for i, d in enumerate(
        int(ds[j]["digit_id"]) for j in range(len(ds))))
  assert not ids["train"] & ids["test"] and not ids["train"] & ids["validation"]
  assert not ids["validation"] & ids["test"]
  pools = cluttered.instance_split(cluttered.load_digits()[1], offline.INSTANCE_FRACTIONS,
                                   offline.INSTANCE_SEED)
  assert sum(len(p) for p in pools) == 1797 and len(set(np.concatenate(pools))) == 1797


def test_stored_examples_are_regenerated_bit_exactly_from_the_seed(data_dir):
  """Example k of a split is a function of (config seed, split, k): re-render and compare."""
  builder = tfds.builder("cluttered_digits/small", data_dir=data_dir)
  ds = builder.as_data_source(split="validation")
  keys = splits.tfds_original_order(len(ds), "validation")  # generator key of each record
  generated = dict(builder._generate_examples("validation"))  # pylint: disable=protected-access
  for pos in (0, 17, 79):
    stored = ds[pos]
    fresh = generated[int(keys[pos])]
    np.testing.assert_array_equal(stored["image"], np.asarray(Image.open(io.BytesIO(fresh["image"]))))
    assert stored["label"] == fresh["label"] and stored["digit_id"] == fresh["digit_id"]
    np.testing.assert_allclose(stored["bbox"], list(fresh["bbox"]), atol=1e-6)


def test_box_is_the_tight_box_of_the_digit_ink():
  images, labels = cluttered.load_digits()
  spec = cluttered.SceneSpec(image_size=48, num_fragments=(0, 0), num_strokes=(0, 0),
                             noise_std=(0.0, 0.0))
  for seed in range(30):
    digit = images[seed * 37 % 1797]
    scene = cluttered.render_scene(np.random.default_rng(seed), digit, images[:10], spec)
    blank = cluttered.render_scene(np.random.default_rng(seed), np.zeros((8, 8)), images[:10], spec)
    diff = np.abs(scene.image.astype(int) - blank.image.astype(int)).max(-1)
    x0, y0, x1, y1 = scene.box
    ys, xs = np.nonzero(diff > 1)  # any ink
    strong = np.nonzero(diff >= 0.8 * diff.max())
    # strong ink inside the box, box inside any ink, at most 2 px of soft edge.
    assert strong[1].min() >= x0 and strong[1].max() <= x1
    assert strong[0].min() >= y0 and strong[0].max() <= y1
    assert 0 <= x0 - xs.min() <= 2 and 0 <= xs.max() - x1 <= 2
    assert 0 <= y0 - ys.min() <= 2 and 0 <= ys.max() - y1 <= 2
    np.testing.assert_allclose(scene.bbox, [y0 / 48, x0 / 48, (y1 + 1) / 48, (x1 + 1) / 48])


def test_scenes_defeat_image_independent_boxes():
  """A centred box (even the best one for this data) and the full image must score badly."""
  images, labels = cluttered.load_digits()
  spec = cluttered.SceneSpec()
  boxes = [cluttered.render_scene(np.random.default_rng([9, i]), images[i], images, spec).box
           for i in range(300)]
  scores = cluttered.fixed_box_scores(np.array(boxes), spec.image_size)
  assert scores["full"] == 0.0
  assert scores["centred_best"] < 0.2 and scores["centred_mean"] <= scores["centred_best"]


def test_fixed_box_scores_closed_form():
  boxes = np.array([[0, 0, 63, 63], [16, 16, 47, 47], [0, 0, 9, 9]])
  scores = cluttered.fixed_box_scores(boxes, 64)
  assert scores["full"] == pytest.approx(1 / 3)
  assert scores["centred_best"] == pytest.approx(2 / 3)  # a ~45 px centred box hits both big ones
  # The library's IoU rule: disjoint 10x10 boxes 0, half-overlapping ones 50/150 (not >= 0.5).
  rates = cluttered.hit_rates(np.array([[0, 0, 9, 9]]),
                              np.array([[10, 10, 19, 19], [5, 0, 14, 9], [0, 0, 9, 9]]), 0.33)
  np.testing.assert_array_equal(rates, [0.0, 1.0, 1.0])
  assert cluttered.hit_rates(np.array([[0, 0, 9, 9]]), np.array([[5, 0, 14, 9]]), 0.34)[0] == 0.0


def test_spec_validation():
  with pytest.raises(ValueError, match="image_size"):
    cluttered.SceneSpec(image_size=8)
  with pytest.raises(ValueError, match="digit_height"):
    dataclasses.replace(cluttered.SceneSpec(), digit_height=(0.6, 0.3))
  with pytest.raises(ValueError, match="fractions"):
    cluttered.instance_split(np.zeros(4, int), (0.5, 0.6), 0)


def test_real_files_through_pipeline_threads_and_workers(data_dir):
  source = data.load_source("cluttered_digits/small", "train", data_dir)
  pipe = data.make_pipeline(source, batch_size=16, train=True, image_size=32, resize_size=36,
                            seed=2, num_threads=2)
  expected = [pipe.get_batch(s) for s in (13, 14, 15)]
  threaded = list(pipe.iterate(start_step=13, num_steps=3))
  for a, b in zip(threaded, expected):
    assert all(np.array_equal(a[k], b[k]) for k in a)
  assert expected[0]["bbox_mask"].all()
  assert expected[0]["image"].dtype == np.float32 and abs(expected[0]["image"].mean()) < 2
  workers = data.make_pipeline(source, batch_size=16, train=True, image_size=32, resize_size=36,
                               seed=2, num_workers=1)
  got = list(workers.iterate(start_step=13, num_steps=3))
  for a, b in zip(got, expected):
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_import_registers_builders_without_tensorflow():
  code = ("import sys, infocam_jax.data, tensorflow_datasets as tfds; "
          "[tfds.builder_cls(n) for n in ('cluttered_digits', 'imbalanced_digits', 'tiny_imagenet')]; "
          "assert 'tensorflow' not in sys.modules; print('ok')")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip().endswith("ok")


def test_salient_component_baseline_finds_an_isolated_blob():
  from infocam_jax.data import prepare  # pylint: disable=g-import-not-at-top
  image = np.full((48, 48, 3), 40, np.uint8)
  image[10:20, 30:37] = 220
  image[40:42, 2:4] = 200  # a smaller blob
  np.testing.assert_array_equal(prepare.salient_component_box(image), [30, 10, 36, 19])


def test_prepare_cli_reports_baselines(data_dir, capsys):
  from infocam_jax.data import prepare  # pylint: disable=g-import-not-at-top
  assert prepare.main(["cluttered_digits/small", "--data_dir", str(data_dir), "--stats"]) == 0
  out = capsys.readouterr().out
  assert '"centred_best"' in out and '"salient_component"' in out
  assert prepare.main(["caltech_birds2011", "--data_dir", str(data_dir / "none")]) == 1
  assert "tfds build caltech_birds2011" in capsys.readouterr().err


def test_generating_an_offline_dataset_says_so_and_where(tmp_path, capfd):
  """No 'Downloading ... Unknown size' for data made here: what is generated, where, how to move it."""
  data.load_source("imbalanced_digits/small", "test", tmp_path)
  out = capfd.readouterr().out
  assert "Downloading" not in out and "Unknown size" not in out, out
  assert "Generating dataset imbalanced_digits offline" in out and str(tmp_path) in out, out
  assert "TFDS_DATA_DIR" in out, out
  data.load_source("imbalanced_digits/small", "train", tmp_path)  # prepared: silent
  assert "Generating" not in capfd.readouterr().out
