"""In-memory pipelines iterate as the grain pipeline does: evaluation is one ordered pass."""

from __future__ import annotations

import itertools

import numpy as np

from infocam_jax.data import arrays


def test_eval_iterate_is_one_pass_and_train_iterate_is_endless():
  src = arrays.synthetic_source(50, num_classes=3, image_size=16, seed=0)
  ev = arrays.ArrayPipeline(src, batch_size=16, train=False)
  batches = list(ev.iterate(0))  # ends (it looped forever before: evaluators hung)
  assert len(batches) == ev.steps_per_epoch == 4 and ev.num_examples == 50
  for i, b in enumerate(batches):
    np.testing.assert_array_equal(b["label"], ev.get_batch(i)["label"])
  assert sum(int(b["mask"].sum()) for b in batches) == 50
  index = np.concatenate([b["index"] for b in batches])  # source positions, -1 on padding
  np.testing.assert_array_equal(index, np.r_[np.arange(50), np.full(14, -1)])
  assert len(list(ev.iterate(2))) == 2  # to the end of the epoch holding the start
  tr = arrays.ArrayPipeline(src, batch_size=16, train=True)
  assert len(list(itertools.islice(tr.iterate(0), 3 * tr.steps_per_epoch))) == 9
