"""Wiring that could go wrong unnoticed (issue 27), on cases built so that the wrong wire shows.

* The WSOL map builder: GT-known Loc uses the map of the *label*, Top-1 Loc additionally needs
  a correct top-1 prediction (paper-spec §2.1 step 2, §2.3) -- on an image whose predicted
  class differs from its label, and whose two class maps point at different objects.
* The prior: the PC-softmax prior is the *training* split's class frequencies (paper-spec §1.2),
  on a case where the training and evaluation splits have different class counts: in
  ``build.open_data`` and in the WSOL evaluator's classification metrics.

No training: the model is a fixed linear head over the image itself, so every number is a
closed form, the same on every machine.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from infocam_jax.evaluators import cam_methods, wsol

S = 16  # image side
R0 = (2, 2, 7, 7)  # inclusive (x0, y0, x1, y1): the class-0 object
R1 = (9, 9, 14, 14)  # the class-1 object


class _LinearHead(nn.Module):
  """features = the image (C = 3 channels); logits = GAP(features) @ W + b (the project's head)."""
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    logits = nn.Dense(self.num_classes, name="fc")(jnp.mean(x, axis=(1, 2)))
    return logits, x


def _scene(box_class: int) -> tuple[np.ndarray, np.ndarray]:
  """Channel 0 lights the class-0 object R0, channel 1 the class-1 object R1 (both present);
  the GT box is the object of class `box_class`."""
  image = np.zeros((S, S, 3), np.float32)
  for c, (x0, y0, x1, y1) in enumerate((R0, R1)):
    image[y0:y1 + 1, x0:x1 + 1, c] = 1.0
  return image, np.asarray([R0 if box_class == 0 else R1], np.float32)


class _Pipeline:
  """One ordered evaluation pass of fixed batches (the interface `wsol.evaluate_split` reads)."""

  def __init__(self, labels, box_classes=None):
    scenes = [_scene(y) for y in (labels if box_classes is None else box_classes)]
    n = len(labels)
    self.num_examples = n
    self.steps_per_epoch = 1
    self.batch = {
        "image": np.stack([s[0] for s in scenes]), "label": np.asarray(labels, np.int32),
        "bbox": np.stack([s[1] for s in scenes]), "bbox_mask": np.ones((n, 1), bool),
        "mask": np.ones(n, bool), "index": np.arange(n, dtype=np.int64),
        "bbox_normalized": np.zeros((n, 1, 4), np.float32),
        "orig_size": np.full((n, 2), S, np.int32)}

  def iterate(self, start_step=0):
    del start_step
    yield dict(self.batch)


def _variables(bias):
  # Class k's weight picks channel k (channel 2 is empty: class 2 is never the object):
  # CAM_k = channel k; infoCAM_0 = ch0 - (ch1 + ch2) / 2; infoCAM-min_0 = ch0 - ch2 when class 2
  # scores lowest.
  kernel = np.eye(3, dtype=np.float32)
  return {"params": {"fc": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias, jnp.float32)}}}


METHODS = ("cam", "infocam", "infocam_min", "cam_region", "grad_cam")


def _evaluate(labels, bias, *, loss="softmax", prior=(1 / 3, 1 / 3, 1 / 3), box_classes=None):
  # The fixed threshold 0.6 (not the paper's 0.2): infoCAM has no ReLU, so its background sits
  # at ~0.5 after min-max between the two objects; which map is used is what is tested here.
  metrics = wsol.box_metrics(("clean",), image_size=S, threshold_step=0.05, loc_threshold=0.6)
  predict = cam_methods.make_predict_fn(_LinearHead(), METHODS, region_size=3)
  return wsol.evaluate_split(predict, _variables(bias), _Pipeline(labels, box_classes),
                             split="test", methods=METHODS, evaluators=metrics,
                             gt_transforms={"clean": "exact"}, resize_size=S, image_size=S,
                             loss=loss, class_prior=np.asarray(prior), num_classes=3,
                             progress=False)


def test_gt_known_loc_uses_the_labels_map_and_top1_loc_the_predictions_correctness():
  """Rules (paper-spec §2.1 step 2: the class used is the ground-truth label; §2.3: GT-known Loc
  = IoU >= 0.5 with the GT-class map regardless of the prediction; Top-1 Loc = that and a
  correct top-1 class).

  Both images hold both objects with equal evidence; the bias makes the network predict class
  1 for both. Image 0 (label 0, object R0) is misclassified: its label's map finds R0 (a hit
  for GT-known Loc), the predicted class's map would find R1 (a miss), and Top-1 Loc must not
  count it. Image 1 (label 1) is correct and a hit for both."""
  ev = _evaluate([0, 1], bias=[0.0, 1.0, -5.0])
  assert ev.classification["accuracy"] == pytest.approx(50.0), "the case: one correct image"
  for method in METHODS:
    r = ev.results["clean"][method]
    assert r.gt_known_loc == pytest.approx(100.0), (
        f"{method}: GT-known Loc {r.gt_known_loc} != 100: the rule (paper-spec §2.1 step 2, "
        "§2.3) is the map of the ground-truth label, not of the predicted class")
    assert r.top1_loc == pytest.approx(50.0), (
        f"{method}: Top-1 Loc {r.top1_loc} != 50: the rule (paper-spec §2.3) counts a hit only "
        "with a correct top-1 prediction")
    assert r.top1_cls == pytest.approx(50.0)
  # Control: the predicted class's map (class 1) misses image 0's box R0, so the case
  # separates the label's map from the prediction's.
  control = _evaluate([1], bias=[0.0, 1.0, -5.0], box_classes=[0])
  for method in METHODS:
    assert control.results["clean"][method].gt_known_loc == pytest.approx(0.0), method


def test_correct_predictions_give_equal_top1_and_gt_known_loc():
  """With every prediction correct, Top-1 Loc = GT-known Loc (paper-spec §2.1 step 2)."""
  ev = _evaluate([1, 1], bias=[0.0, 1.0, -5.0])  # both predicted 1, both labelled 1
  for method in METHODS:
    r = ev.results["clean"][method]
    assert r.top1_loc == pytest.approx(r.gt_known_loc) == pytest.approx(100.0), method


def test_wsol_evaluator_reads_pc_softmax_metrics_with_the_training_prior():
  """Rule (paper-spec §1.2, §1.3): the PC-softmax PMI is log s~_y = z_y - log sum_k p_k e^{z_k}
  with p the *training* class frequencies, here (0.7, 0.2, 0.1), although the evaluated images are
  labelled 0 and 1 equally."""
  prior = np.array([0.7, 0.2, 0.1])
  bias = np.array([0.3, -0.4, 0.2])
  ev = _evaluate([0, 1, 1, 0], bias=bias, loss="pc_softmax", prior=prior)
  image, _ = _scene(0)
  z = image.mean((0, 1)) + bias  # the same features for every image
  labels = np.array([0, 1, 1, 0])
  want = np.mean(z[labels] - np.log(np.sum(prior * np.exp(z))))
  got = ev.classification["mi"]
  assert got == pytest.approx(want, abs=1e-5), (
      f"PC-softmax MI {got} != {want}: the rule (paper-spec §1.2) is the training prior "
      f"{prior.tolist()}, not the evaluated split's frequencies or a uniform prior")
  uniform = np.mean(z[labels] - np.log(np.mean(np.exp(z))))
  assert abs(want - uniform) > 0.05, "the case must separate the training prior from uniform"


class _CountsSource:
  """A stand-in for `data.Source`: only what `build.open_data` reads."""

  def __init__(self, labels, num_classes=3):
    self.labels = np.asarray(labels, np.int64)
    self.num_classes = num_classes
    self.class_names = tuple(f"c{k}" for k in range(num_classes))
    self.class_counts = np.bincount(self.labels, minlength=num_classes)

  def __len__(self):
    return len(self.labels)


def test_open_data_takes_the_prior_from_the_training_split(monkeypatch):
  """Rule (paper-spec §1.2: p_k = n_k / N, the training-set class proportions): with training
  counts 6/3/1 and evaluation splits of other counts (balanced, and skewed the other way), the
  prior is (0.6, 0.3, 0.1), whatever the order the splits are opened in after the first."""
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  from infocam_jax.train import build  # pylint: disable=g-import-not-at-top
  splits = {"train": [0] * 6 + [1] * 3 + [2], "validation": [0, 1, 2] * 4,
            "test": [0] + [1] * 2 + [2] * 9}
  monkeypatch.setattr(data, "load_source", lambda name, split, data_dir=None: _CountsSource(
      splits[split]))
  config = ml_collections.ConfigDict({"seed": 0, "data": {
      "name": "cluttered_digits", "data_dir": "", "image_size": 8, "resize_size": 8,
      "train_split": "train", "eval_split": "validation", "test_split": "test"}})
  for order in (["train", "validation", "test"], ["train", "test", "validation"]):
    d = build.open_data(config, order)
    np.testing.assert_allclose(d.prior, [0.6, 0.3, 0.1], err_msg=(
        f"prior rule (paper-spec §1.2: training class frequencies), splits opened as {order}"))
    assert d.class_counts.tolist() == [6, 3, 1]
    assert set(d.sources) == set(order)

