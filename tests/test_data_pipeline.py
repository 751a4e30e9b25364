"""Pipeline semantics: determinism in (seed, step), exact resume, sharding, eval padding."""

from __future__ import annotations

import numpy as np
import pytest

from infocam_jax.data import make_pipeline


def _items(n, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    h, w = rng.integers(20, 40, 2)
    y0, x0 = rng.uniform(0, 0.5, 2)
    out.append({"image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "label": i % 5,
                "bbox": np.array([[y0, x0, y0 + 0.4, x0 + 0.3]], np.float32)})
  return out


ITEMS = _items(23)
KW = dict(image_size=12, resize_size=16, num_threads=0)


def _equal(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_batches_are_a_function_of_seed_and_step():
  p1 = make_pipeline(ITEMS, batch_size=4, train=True, seed=3, **KW)
  p2 = make_pipeline(ITEMS, batch_size=4, train=True, seed=3, **KW)
  for step in (0, 4, 5, 17, 1000):  # 5 steps per epoch: mid-epoch and later epochs
    assert _equal(p1.get_batch(step), p2.get_batch(step))
  p3 = make_pipeline(ITEMS, batch_size=4, train=True, seed=4, **KW)
  assert not np.array_equal(p1.get_batch(0)["index"], p3.get_batch(0)["index"])
  # The same example in another epoch gets fresh augmentation draws but the same label.
  assert p1.steps_per_epoch == 5


def test_iterate_resumes_mid_epoch_exactly():
  pipe = make_pipeline(ITEMS, batch_size=4, train=True, seed=0, image_size=12, resize_size=16,
                       num_threads=2)
  expected = [pipe.get_batch(s) for s in range(7, 13)]
  got = list(pipe.iterate(start_step=7, num_steps=6))
  assert len(got) == 6 and all(_equal(a, b) for a, b in zip(got, expected))


def test_each_training_epoch_is_a_permutation():
  pipe = make_pipeline(ITEMS, batch_size=4, train=True, seed=1, **KW)
  epochs = []
  for epoch in range(3):
    idx = np.concatenate([pipe.indices(epoch * 5 + k)[1] for k in range(5)])
    assert len(set(idx.tolist())) == 20 and idx.min() >= 0 and idx.max() < 23
    epochs.append(idx)
  assert not np.array_equal(epochs[0], epochs[1])
  batch = pipe.get_batch(0)
  assert batch["mask"].all() and (batch["label"] == batch["index"] % 5).all()


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("num_shards", [2, 4])
def test_shards_are_disjoint_complete_and_process_count_invariant(train, num_shards):
  whole = make_pipeline(ITEMS, batch_size=8, train=train, seed=5, **KW)
  shards = [make_pipeline(ITEMS, batch_size=8, train=train, seed=5, shard_index=k,
                          num_shards=num_shards, **KW) for k in range(num_shards)]
  assert all(p.steps_per_epoch == whole.steps_per_epoch for p in shards)
  seen = []
  for step in range(whole.steps_per_epoch):
    full = whole.get_batch(step)
    parts = [p.get_batch(step) for p in shards]
    # Concatenating the processes' rows gives exactly the single-process batch,
    # pixels and augmentation included.
    for key in full:
      np.testing.assert_array_equal(np.concatenate([b[key] for b in parts]), full[key])
    for b in parts:
      seen += b["index"][b["mask"]].tolist()
  assert len(seen) == len(set(seen))
  if not train:  # one evaluation pass covers every example exactly once
    assert sorted(seen) == list(range(23))


def test_eval_pass_is_ordered_and_padded():
  pipe = make_pipeline(ITEMS, batch_size=10, train=False, seed=0, **KW)
  assert pipe.steps_per_epoch == 3
  batches = list(pipe.iterate())
  assert len(batches) == 3
  last = batches[-1]
  assert last["mask"].tolist() == [True] * 3 + [False] * 7
  assert last["index"].tolist() == [20, 21, 22] + [-1] * 7
  assert not last["bbox_mask"][3:].any() and (last["image"][3:] == 0).all()
  assert np.concatenate([b["index"] for b in batches])[:23].tolist() == list(range(23))
  # Eval crops are centred and never flipped: a second pass is identical.
  assert all(_equal(a, b) for a, b in zip(batches, pipe.iterate()))


def test_boxes_padding_and_truncation():
  items = [{"image": np.zeros((8, 8, 3), np.uint8), "label": 0,
            "bbox": np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0, 1, 1]], np.float32)},
           {"image": np.zeros((8, 8, 1), np.uint8), "label": 1, "bbox": np.zeros((0, 4))}]
  batch = make_pipeline(items, batch_size=2, train=False, image_size=8, max_boxes=2,
                        num_threads=0).get_batch(0)
  assert batch["bbox"].shape == (2, 2, 4)
  assert batch["bbox_mask"].tolist() == [[True, True], [False, False]]
  np.testing.assert_allclose(batch["bbox"][0], [[0, 0, 3, 3], [4, 4, 7, 7]])
  np.testing.assert_allclose(batch["bbox_normalized"][0, 1], [0.5, 0.5, 1, 1])
  assert batch["orig_size"].tolist() == [[8, 8], [8, 8]]
  assert batch["image"].shape == (2, 8, 8, 3)  # gray replicated to 3 channels


def test_element_spec_matches_batches():
  pipe = make_pipeline(ITEMS, batch_size=6, train=True, num_shards=2, shard_index=1, seed=0,
                       max_boxes=3, **KW)
  batch = pipe.get_batch(2)
  for key, (shape, dtype) in pipe.element_spec.items():
    assert batch[key].shape == shape and batch[key].dtype == dtype, key
  assert batch["image"].shape == (3, 12, 12, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=6, num_shards=4), "divisible"),
    (dict(batch_size=4, shard_index=2, num_shards=2), "shard_index"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=4, resize_size=8), "resize_size"),
    (dict(batch_size=4, channels=2), "channels"),
    (dict(batch_size=4, image_dtype="float16"), "image_dtype"),
    (dict(batch_size=40), "full global batch"),
])
def test_bad_arguments_are_named(kwargs, match):
  args = dict(train=True, image_size=12, num_threads=0) | kwargs
  with pytest.raises(ValueError, match=match):
    make_pipeline(ITEMS, **args)
  with pytest.raises(ValueError, match="step"):
    make_pipeline(ITEMS, batch_size=4, train=True, image_size=12).get_batch(-1)
