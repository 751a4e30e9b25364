"""Classification evaluation: predictions, accuracies and the MI readings of a classifier.

All accuracies are in percent, losses and MI estimates in nats. Prediction is
``argmax z`` for every objective (PC-softmax changes training only,
paper-spec §1.2). The metric names and units are those of every classification
evaluation of the project: the training engine's validation
(``train.steps.finalize_eval``, logged as ``val/<name>``), the WSOL evaluator
and the PC-softmax experiment: ``accuracy``, ``mean_per_class_accuracy``
(percent), ``loss``, ``mi`` and, for softmax with a non-uniform training
prior, ``mi_prior_corrected`` (nats; the readings of
``train.steps.per_example_pmi``).

Example::

  logits, labels = predict(model, variables, pipeline)          # [N, K] float32, [N]
  m = classification_metrics(logits, labels, objective="pc_softmax", prior=p,
                             class_counts_train=counts)
  m["accuracy"], m["mean_per_class_accuracy"], m["mi"]["estimate"]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


__all__ = ["READINGS", "classification_metrics", "forward_fn", "minority_majority", "predict",
           "weighted_mean"]

_FORWARD: dict[tuple[type, str], Callable] = {}
#: What each MI reading of ``train.steps.per_example_pmi`` is, by (objective, name).
READINGS = {
    ("pc_softmax", "mi"): "mean log s~_y (PC-softmax)",
    ("softmax", "mi"): ("log K + log softmax_y (the paper's softmax reading; biased when the "
                        "training data are imbalanced)"),
    ("softmax", "mi_prior_corrected"): "log softmax_y - log p_y (prior-corrected)",
}


def forward_fn(model: Any) -> Callable:
  """A jitted ``(variables, images) -> float32 logits``, one per model definition.

  Cached by the module's class and ``repr`` (its full definition), so the runs of an
  experiment that share an architecture share one compiled function (two classes that
  print alike, e.g. both named ``Net``, do not).

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> model = Net()
  >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  >>> forward_fn(model)(variables, jnp.zeros((2, 8, 8, 3))).shape  # logits only
  (2, 3)
  >>> forward_fn(Net()) is forward_fn(model)  # one compiled function per definition
  True
  """
  key = (type(model), repr(model))
  fn = _FORWARD.get(key)
  if fn is None:
    fn = jax.jit(lambda v, x: model.apply(v, x, train=False)[0].astype(jnp.float32))
    _FORWARD[key] = fn
  return fn


def predict(model: Any, variables: Mapping[str, Any], pipeline: Any
            ) -> tuple[np.ndarray, np.ndarray]:
  """``(logits [N, K] float32, labels [N] int64)`` over one ordered pass (padding dropped).

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> from infocam_jax.data.arrays import ArrayPipeline, synthetic_source
  >>> pipe = ArrayPipeline(synthetic_source(6, num_classes=3, image_size=8), batch_size=4,
  ...                      train=False)  # 2 batches, the second padded
  >>> model = Net()
  >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  >>> logits, labels = predict(model, variables, pipe)
  >>> logits.shape, logits.dtype, labels.shape  # the padding is dropped
  ((6, 3), dtype('float32'), (6,))
  """
  fn = forward_fn(model)
  logits, labels = [], []
  for batch in pipeline.iterate(0):  # one ordered pass, prefetched by grain threads
    z = np.asarray(fn(variables, batch["image"]))
    keep = batch["mask"]
    logits.append(z[keep])
    labels.append(batch["label"][keep])
  return np.concatenate(logits), np.concatenate(labels).astype(np.int64)


def weighted_mean(values: np.ndarray, labels: np.ndarray, weights: np.ndarray
                  ) -> tuple[float, float]:
  """Mean of ``values`` with class ``c`` weighted by ``weights[c]``, and its standard error.

  ``sum_c w_c mean_c / sum_c w_c`` over the classes present (stratified
  estimator), standard error ``sqrt(sum_c w_c^2 var_c / n_c) / sum_c w_c``
  (per-class variances with ddof=1; classes with a single example contribute
  no variance term). With ``weights`` the training prior and ``values`` the
  per-example PMI (nats) this is the MI estimate under the training
  distribution, whatever the test split's class proportions.

  >>> float(weighted_mean(np.array([1., 3., 10.]), np.array([0, 0, 1]), np.array([.5, .5]))[0])
  6.0
  """
  values = np.asarray(values, np.float64)
  est, var, wsum = 0.0, 0.0, 0.0
  for c, w in enumerate(np.asarray(weights, np.float64)):
    v = values[labels == c]
    if v.size == 0:
      continue
    wsum += w
    est += w * v.mean()
    if v.size > 1:
      var += w * w * v.var(ddof=1) / v.size
  if wsum <= 0:
    raise ValueError("weighted_mean: no class with positive weight is present.")
  return est / wsum, math.sqrt(var) / wsum


def minority_majority(class_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Class indices with fewer / at least as many training examples as the median class.

  >>> [a.tolist() for a in minority_majority(np.array([50, 500, 50, 500]))]
  [[0, 2], [1, 3]]
  """
  counts = np.asarray(class_counts)
  med = float(np.median(counts))
  minority = np.flatnonzero(counts < med)
  majority = np.flatnonzero(counts >= med)
  if minority.size == 0:  # balanced: every class is "majority"
    return minority, np.arange(counts.size)
  return minority, majority


def classification_metrics(logits: np.ndarray, labels: np.ndarray, *, objective: str,
                           prior: np.ndarray, class_counts_train: np.ndarray) -> dict[str, Any]:
  """Accuracies (percent), per-class accuracies, the objective's NLL and the MI readings.

  Args:
    logits: float [N, K]. labels: int [N] in [0, K).
    objective: ``"softmax"`` or ``"pc_softmax"`` (how the network was trained).
    prior: [K] training class frequencies.
    class_counts_train: [K] training counts (minority = below the median class).

  Returns a dict with ``count``, ``accuracy``, ``mean_per_class_accuracy``,
  ``minority_class_accuracy``, ``majority_class_accuracy`` (None when no class
  of the group is present), ``per_class_accuracy`` [K] (None for absent
  classes), ``test_class_counts``, ``confusion`` [K, K], ``loss`` (nats) and
  ``mi`` (PC-softmax: mean ``log s~_y``; softmax: ``log K + log softmax_y``)
  plus, for softmax with a non-uniform ``prior``, ``mi_prior_corrected``
  (``log softmax_y - log p_y``), the readings of ``train.steps.per_example_pmi``;
  each MI entry is ``{estimate, stderr, reading, test_mean, test_mean_stderr}``.

  >>> logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]))
  >>> labels = np.array([0, 1, 1, 2])
  >>> m = classification_metrics(logits, labels, objective="softmax",
  ...                            prior=np.array([0.5, 0.3, 0.2]), class_counts_train=np.array([50, 30, 20]))
  >>> m["accuracy"], m["per_class_accuracy"]  # percent
  (75.0, [100.0, 50.0, 100.0])
  >>> round(float(m["mi"]["estimate"]), 3)  # nats, weighted to the training prior
  0.604
  """
  if objective not in ("softmax", "pc_softmax"):
    raise ValueError(f"objective must be 'softmax' or 'pc_softmax', got {objective!r}")
  k = prior.shape[0]
  pred = np.argmax(logits, axis=-1)  # both objectives: argmax z (paper-spec §1.2)
  correct = (pred == labels)
  test_counts = np.bincount(labels, minlength=k)
  class_correct = np.bincount(labels, weights=correct.astype(np.float64), minlength=k)
  present = test_counts > 0
  per_class = np.where(present, 100.0 * class_correct / np.maximum(test_counts, 1), np.nan)
  minority, majority = minority_majority(class_counts_train)
  group = lambda idx: (float(np.nanmean(per_class[idx]))
                       if np.any(present[idx]) else None)
  confusion = np.zeros((k, k), np.int64)
  np.add.at(confusion, (labels, pred), 1)
  from infocam_jax.train import steps  # pylint: disable=g-import-not-at-top
  z = jnp.asarray(logits)
  y = jnp.asarray(labels, jnp.int32)
  pmis = steps.per_example_pmi(z, y, loss=objective, prior=np.asarray(prior, np.float32))
  nll = -pmis["mi"] if objective == "pc_softmax" else \
      -jax.nn.log_softmax(z)[jnp.arange(z.shape[0]), y]
  readings = {name: (READINGS[objective, name], v) for name, v in pmis.items()}
  out = {
      "count": int(labels.size),
      "accuracy": 100.0 * float(correct.mean()),
      "mean_per_class_accuracy": float(np.mean(per_class[present])),
      "minority_class_accuracy": group(minority),
      "majority_class_accuracy": group(majority),
      "per_class_accuracy": [None if not present[c] else float(per_class[c]) for c in range(k)],
      "test_class_counts": test_counts.tolist(),
      "confusion": confusion.tolist(),
      "loss": float(np.mean(np.asarray(nll, np.float64))),
  }
  for name, (reading, values) in readings.items():
    v = np.asarray(values, np.float64)
    est, se = weighted_mean(v, labels, prior)
    out[name] = {"estimate": est, "stderr": se, "reading": reading,
                 "test_mean": float(v.mean()),
                 "test_mean_stderr": float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1
                 else 0.0}
  return out
