"""The paper's split rules against independent implementations and their stated counts."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from infocam_jax.data import SPLITS
from infocam_jax.data import splits as S


def _reference_alternating(labels, keys):
  """Loop version of the official utils_sep.py rule: per class, i % 2 == 0 -> val."""
  first, second = [], []
  for c in sorted(set(labels)):
    members = sorted((k, i) for i, (l, k) in enumerate(zip(labels, keys)) if l == c)
    for rank, (_, i) in enumerate(members):
      (first if rank % 2 == 0 else second).append(i)
  return sorted(first), sorted(second)


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 10**6)), min_size=0, max_size=80,
                unique_by=lambda t: t[1]))
def test_alternating_halves_matches_reference(pairs):
  labels = np.array([p[0] for p in pairs], np.int64)
  keys = np.array([p[1] for p in pairs], np.int64)
  first, second = S.alternating_halves(labels, keys)
  ref_first, ref_second = _reference_alternating(labels.tolist(), keys.tolist())
  assert first.tolist() == ref_first and second.tolist() == ref_second
  assert not set(first) & set(second) and len(first) + len(second) == len(labels)


@given(st.lists(st.integers(0, 5), max_size=60), st.lists(st.integers(0, 8), min_size=6,
                                                          max_size=6))
def test_first_k_per_class_matches_reference(labels, caps):
  labels = np.array(labels, np.int64)
  keys = np.arange(len(labels))[::-1]  # reverse stored order
  chosen = S.first_k_per_class(labels, np.array(caps), order_key=keys)
  expected = []
  for c in range(6):
    members = [i for i in np.argsort(keys, kind="stable") if labels[i] == c]
    expected += members[:caps[c]]
  assert chosen.tolist() == sorted(expected)


def _meta_from_counts(counts, prefix):
  """Constructed metadata: class c has counts[c] examples, stored in a scrambled order."""
  labels = np.repeat(np.arange(len(counts)), counts)
  names = np.array([f"{c + 1:03d}.class/{prefix}_{j:04d}.jpg" for c, n in enumerate(counts)
                    for j in range(n)])
  perm = np.random.default_rng(0).permutation(len(labels))
  return {"label": labels[perm], "image/filename": names[perm]}


def _cub_like_counts():
  """Per-class CUB counts consistent with every count the paper-spec states.

  Train: 5,994 = 194 x 30 + 6 x 29, with 3 of the 29s in even-numbered classes
  (odd label index), so the imbalanced train set has 100 x 10 + 100 x 30 - 3 =
  3,997. Test: 5,794 with 38 classes of odd size (2,916 / 2,878 halves) and one
  even-numbered class of 11 images (1,996 = 100 x 5 + 99 x 15 + 11). These are
  constructed, not the real per-class counts (which need the data).
  """
  train = np.full(200, 30)
  train[[1, 3, 5]] = 29  # even-numbered classes 002, 004, 006
  train[[0, 2, 4]] = 29  # odd-numbered classes 001, 003, 005
  test = np.full(200, 30)
  test[:37] = 29  # 37 odd-sized classes ...
  test[39] = 11  # ... and class 040 (label index 39): odd and fewer than 15
  deficit = int(test.sum()) - 5794
  test[40:40 + deficit // 2] -= 2  # fix the total, keeping every parity
  return train, test


def test_cub_rules_give_the_stated_counts():
  train_counts, test_counts = _cub_like_counts()
  assert train_counts.sum() == 5994 and test_counts.sum() == 5794
  assert (test_counts % 2 == 1).sum() == 38
  train, test = _meta_from_counts(train_counts, "tr"), _meta_from_counts(test_counts, "te")
  rules = SPLITS["caltech_birds2011"]
  val, wsol_test = rules["wsol_val"].select(test), rules["wsol_test"].select(test)
  assert (len(val), len(wsol_test)) == (2916, 2878) == (rules["wsol_val"].size,
                                                        rules["wsol_test"].size)
  assert not set(val) & set(wsol_test) and len(set(val) | set(wsol_test)) == 5794
  imb_train = rules["imbalanced_train"].select(train)
  imb_test = rules["imbalanced_test"].select(test)
  assert len(imb_train) == 3997 == rules["imbalanced_train"].size
  assert len(imb_test) == 1996 == rules["imbalanced_test"].size
  per_class = np.bincount(train["label"][imb_train], minlength=200)
  assert (per_class[0::2] == 10).all()  # odd-numbered classes 001, 003, ...
  # The "first" images are the first in file-name (images.txt) order.
  for c in (0, 7):
    names = sorted(n for n, l in zip(train["image/filename"], train["label"]) if l == c)
    cap = 10 if c % 2 == 0 else 30
    chosen = sorted(train["image/filename"][i] for i in imb_train if train["label"][i] == c)
    assert chosen == names[:cap]
  # Derived splits are presented class by class in file order.
  assert (np.diff(test["label"][wsol_test]) >= 0).all()


def test_tiny_and_mnist_rules_give_the_stated_counts():
  labels = np.repeat(np.arange(200), 50)
  ids = np.array([f"val_{i}.JPEG" for i in range(10_000)])
  perm = np.random.default_rng(1).permutation(10_000)
  meta = {"label": labels[perm], "id": ids[perm]}
  rules = SPLITS["tiny_imagenet"]
  val, test = rules["wsol_val"].select(meta), rules["wsol_test"].select(meta)
  assert len(val) == len(test) == 5000
  assert (np.bincount(meta["label"][test], minlength=200) == 25).all()
  # val_<n> numeric order, not lexicographic: within a class, ranks alternate by n.
  c0 = sorted((int(meta["id"][i][4:-5]), i) for i in range(10_000) if meta["label"][i] == 0)
  assert sorted(i for _, i in c0[0::2]) == sorted(i for i in val if meta["label"][i] == 0)

  # MNIST: 60,000 training examples, ~6,000 per digit spread evenly over the indices.
  original = np.random.default_rng(2).permutation(60_000)
  mnist = {"label": original % 10, "original_index": original}
  rules = SPLITS["mnist"]
  train = rules["imbalanced_train"].select(mnist)
  test = rules["imbalanced_test"].select(mnist)
  held = rules["validation"].select(mnist)
  assert len(train) == 16_500 == rules["imbalanced_train"].size
  assert np.bincount(mnist["label"][train]).tolist() == [300, 3000] * 5
  assert len(test) == 6_500  # 5 x 300 + 5 x 1,000 on this construction
  assert (mnist["original_index"][train] < 40_000).all()
  assert ((mnist["original_index"][test] >= 40_000) & (mnist["original_index"][test] < 50_000)).all()
  assert len(held) == 10_000 and (mnist["original_index"][held] >= 50_000).all()
  # "First" = smallest original indices of each digit.
  evens = mnist["original_index"][train][mnist["label"][train] == 0]
  assert np.array_equal(np.sort(evens), np.arange(0, 3000, 10))


def test_natural_sort_key():
  assert S.natural_sort_key([b"val_10.JPEG", "val_2.JPEG", "n0123_7.JPEG"]).tolist() == [10, 2, 7]


class InfocamTestKeyed(tfds.core.GeneratorBasedBuilder):
  """Examples carry their generator key, to check tfds' stored order."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(4, 4, 3), encoding_format="png"),
        "label": tfds.features.ClassLabel(num_classes=3),
        "key": np.int64,
    }))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(97)}

  def _generate_examples(self, n):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="PNG")
    for i in range(n):
      yield i, {"image": buf.getvalue(), "label": i % 3, "key": i}


@pytest.mark.parametrize("num_shards", [1, 3])
def test_tfds_original_order_recovers_generator_keys(tmp_path, num_shards):
  builder = InfocamTestKeyed(data_dir=tmp_path)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(num_shards=num_shards))
  ds = builder.as_data_source(split="train")
  stored = np.array([ds[i]["key"] for i in range(len(ds))])
  assert not np.array_equal(stored, np.arange(97))  # tfds did shuffle
  np.testing.assert_array_equal(S.tfds_original_order(97, "train"), stored)
