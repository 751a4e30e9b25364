"""Pure train and eval steps (loss, gradients, update, BatchNorm, metrics).

The functions returned here are *not* jitted: ``parallel`` wraps them in
``jax.jit`` over a device mesh (default) or ``jax.pmap`` (``axis_name`` set).

Losses (per example, nats):
* ``"softmax"``: ``-log softmax_y(z)``.
* ``"pc_softmax"``: ``-log s~_y(z)`` with ``s~_y = e^{z_y} / sum_k p_k e^{z_k}``
  and ``p`` the training class frequencies
  (``estimators.pc_softmax_cross_entropy_with_integer_labels``).

Metrics, all means over the *global* batch, with the names and units of every
classification evaluation (``evaluators.classification``: accuracies in
percent, loss and MI readings in nats):
* ``loss``: the training objective (mean per-example loss).
* ``accuracy``: top-1 of ``argmax z`` in percent (PC-softmax predicts with
  ``argmax z`` too); eval: also ``mean_per_class_accuracy`` (percent).
* ``mi``: the MI estimate of the paper. Softmax: ``log K - CE`` (the mean of
  ``estimators.pmi(z, y)``); PC-softmax: the mean PC-softmax PMI
  ``mean(log s~_y)`` (``estimators.pmi(z, y, prior, objective="pc_softmax")``).
* ``mi_prior_corrected`` (softmax with a known non-uniform prior only): the
  prior-corrected estimate ``mean(log softmax_y - log p_y)``.
* ``grad_norm``, ``param_norm``, ``learning_rate`` (train only).

Eval steps return *sums* (with padded examples masked out by ``batch['mask']``)
so that they can be accumulated over batches and devices and divided once by
``finalize_eval``; per-class counts give the mean per-class accuracy.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from infocam_jax import estimators
from infocam_jax.train import optim
from infocam_jax.train.state import TrainState, step_key

LOSSES = ("softmax", "pc_softmax")
Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


def _prior_array(loss: str, class_prior: Any, num_classes: int) -> np.ndarray | None:
  if class_prior is None:
    if loss == "pc_softmax":
      raise ValueError("`class_prior` is required for loss='pc_softmax' (training class "
                       "frequencies, e.g. estimators.prior_from_counts(source.class_counts)).")
    return None
  prior = np.asarray(class_prior, np.float64)
  if prior.shape != (num_classes,):
    raise ValueError(f"`class_prior` must have shape ({num_classes},), got {prior.shape}.")
  if np.any(prior < 0) or abs(prior.sum() - 1.0) > 1e-5:
    raise ValueError(f"`class_prior` must be a probability vector, got sum {prior.sum()}.")
  return prior.astype(np.float32)


def per_example_loss(logits: jax.Array, labels: jax.Array, *, loss: str,
                     prior: np.ndarray | None) -> jax.Array:
  """Per-example training loss in nats (float32)."""
  logits = logits.astype(jnp.float32)
  if loss == "softmax":
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  if loss == "pc_softmax":
    if prior is None:
      raise ValueError("loss='pc_softmax' needs the training class `prior`.")
    return estimators.pc_softmax_cross_entropy_with_integer_labels(logits, labels, prior)
  raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")


def per_example_pmi(logits: jax.Array, labels: jax.Array, *, loss: str,
                    prior: np.ndarray | None) -> dict[str, jax.Array]:
  """Per-example PMI readings in nats: ``{'mi': ..., ['mi_prior_corrected': ...]}``.

  The one rule of the MI readings of a classifier (training, the evaluators):
  ``mi`` is ``log s~_y`` for PC-softmax and ``log K + log softmax_y`` for
  softmax; softmax with a non-uniform ``prior`` adds ``mi_prior_corrected``
  (``log softmax_y - log p_y``).
  """
  logits = logits.astype(jnp.float32)
  if loss == "pc_softmax":
    return {"mi": estimators.pmi(logits, labels, prior, objective="pc_softmax")}
  out = {"mi": estimators.pmi(logits, labels)}
  if prior is not None and not np.allclose(prior, 1.0 / prior.shape[0]):
    out["mi_prior_corrected"] = estimators.pmi(logits, labels, prior, objective="softmax")
  return out


def _mean(x: jax.Array, axis_name: str | None) -> jax.Array:
  m = jnp.mean(x)
  return jax.lax.pmean(m, axis_name) if axis_name else m


def make_train_step(model: Any, tx: optax.GradientTransformation, *, num_classes: int,
                    loss: str = "softmax", class_prior: Any = None,
                    learning_rate_fn: Callable[[jax.Array], jax.Array] | None = None,
                    axis_name: str | None = None) -> Callable[[TrainState, Batch],
                                                              tuple[TrainState, Metrics]]:
  """Returns the pure ``train_step(state, batch) -> (state, metrics)``.

  Args:
    model: Linen module (project model contract); for the pmap variant it must
      be built with ``bn_axis_name=axis_name``.
    tx: optimiser.
    num_classes: K.
    loss: ``"softmax"`` or ``"pc_softmax"``.
    class_prior: [K] training class frequencies (required for PC-softmax;
      with softmax it adds the ``mi_prior_corrected`` metric).
    learning_rate_fn: schedule of the update count, reported as a metric.
    axis_name: ``None`` for the jit/mesh step (reductions over the global batch
      are automatic); the pmap axis name for the pmap step (gradients, metrics
      and BatchNorm statistics are averaged over it).

  ``batch`` holds ``image`` float [B,H,W,C] and ``label`` int [B]. All examples
  of a training batch count (no padding mask in training).

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> batch = {"image": jnp.ones((4, 8, 8, 3)), "label": jnp.array([0, 1, 2, 0])}
  >>> from infocam_jax.train import init_train_state, sgd_torch
  >>> tx = sgd_torch(0.1)
  >>> state = init_train_state(Net(), tx, jax.random.PRNGKey(0), (8, 8, 3))
  >>> train_step = jax.jit(make_train_step(Net(), tx, num_classes=3))
  >>> state, metrics = train_step(state, batch)
  >>> int(state.step), sorted(metrics)  # means over the batch; loss and mi in nats
  (1, ['accuracy', 'grad_norm', 'loss', 'mi', 'param_norm'])
  """
  if loss not in LOSSES:
    raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")
  prior = _prior_array(loss, class_prior, num_classes)

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    images, labels = batch["image"], batch["label"]
    rngs = {"adl": step_key(state)}

    def loss_fn(params):
      variables = {"params": params}
      mutable = []
      if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
        mutable = ["batch_stats"]
      (logits, _), new_vars = model.apply(variables, images, train=True, rngs=rngs,
                                          mutable=mutable)
      losses = per_example_loss(logits, labels, loss=loss, prior=prior)
      return jnp.mean(losses), (logits, new_vars)

    (loss_value, (logits, new_vars)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    if axis_name:
      # pmap: each device holds the gradient of its own shard's mean loss.
      grads = jax.lax.pmean(grads, axis_name)
      loss_value = jax.lax.pmean(loss_value, axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(
        step=state.step + 1, params=params, opt_state=opt_state,
        batch_stats=new_vars.get("batch_stats", state.batch_stats))

    logits = logits.astype(jnp.float32)
    metrics = {
        "loss": loss_value,
        "accuracy": 100.0 * _mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32),
                                  axis_name),
        "grad_norm": optim.global_norm(grads),
        "param_norm": optim.global_norm(params),
    }
    for name, values in per_example_pmi(logits, labels, loss=loss, prior=prior).items():
      metrics[name] = _mean(values, axis_name)
    if learning_rate_fn is not None:
      metrics["learning_rate"] = jnp.asarray(learning_rate_fn(state.step), jnp.float32)
    return new_state, metrics

  return train_step


def eval_sums(logits: jax.Array, labels: jax.Array, valid: jax.Array, *, num_classes: int,
              loss: str, prior: np.ndarray | None) -> Metrics:
  """The evaluation sums of one batch of logits (see `make_eval_step`); pure, jit-friendly.

  ``valid``: bool [B], False for padding rows, which may hold anything (even NaN
  logits or labels out of range): they are selected away, never multiplied, so
  they cannot leak into the sums. ``prior``: float32 [K] or None (as
  ``per_example_loss``).
  """
  logits = jnp.where(valid[:, None], logits.astype(jnp.float32), 0.0)
  safe_labels = jnp.where(valid, labels, 0)
  masked = lambda x: jnp.sum(jnp.where(valid, x, 0.0))
  correct = jnp.where(valid, jnp.argmax(logits, -1) == safe_labels, False).astype(jnp.float32)
  onehot = jax.nn.one_hot(safe_labels, num_classes, dtype=jnp.float32) * valid[:, None]
  sums = {
      "count": jnp.sum(valid.astype(jnp.float32)),
      "loss": masked(per_example_loss(logits, safe_labels, loss=loss, prior=prior)),
      "correct": jnp.sum(correct),
      "class_correct": jnp.sum(onehot * correct[:, None], axis=0),
      "class_count": jnp.sum(onehot, axis=0),
  }
  for name, values in per_example_pmi(logits, safe_labels, loss=loss, prior=prior).items():
    sums[name] = masked(values)
  return sums


def make_eval_step(model: Any, *, num_classes: int, loss: str = "softmax",
                   class_prior: Any = None, axis_name: str | None = None
                   ) -> Callable[[TrainState, Batch], Metrics]:
  """Returns the pure ``eval_step(state, batch) -> sums``.

  ``batch`` holds ``image``, ``label`` and optionally ``mask`` (bool [B], False
  for padding). The sums (float32) are ``count``, ``loss``, ``correct``, ``mi``
  [, ``mi_prior_corrected``], ``class_correct`` [K] and ``class_count`` [K]; accumulate
  them with ``accumulate`` and turn them into means with ``finalize_eval``.

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> batch = {"image": jnp.ones((4, 8, 8, 3)), "label": jnp.array([0, 1, 2, 0])}
  >>> from infocam_jax.train import init_train_state
  >>> state = init_train_state(Net(), optax.sgd(0.1), jax.random.PRNGKey(0), (8, 8, 3))
  >>> eval_step = jax.jit(make_eval_step(Net(), num_classes=3))
  >>> sums = eval_step(state, {**batch, "mask": jnp.array([True, True, True, False])})
  >>> float(sums["count"]), sums["class_count"].tolist()  # the padded example is not counted
  (3.0, [1.0, 1.0, 1.0])
  """
  if loss not in LOSSES:
    raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")
  prior = _prior_array(loss, class_prior, num_classes)

  def eval_step(state: TrainState, batch: Batch) -> Metrics:
    images, labels = batch["image"], batch["label"]
    mask = batch.get("mask")
    weight = (jnp.ones(labels.shape, jnp.float32) if mask is None
              else mask.astype(jnp.float32))
    logits, _ = model.apply(state.variables, images, train=False)
    sums = eval_sums(logits, labels, weight > 0, num_classes=num_classes, loss=loss, prior=prior)
    if axis_name:
      sums = jax.lax.psum(sums, axis_name)
    return sums

  return eval_step


def accumulate(total: Metrics | None, sums: Metrics) -> Metrics:
  """Adds eval sums (on device; no host sync)."""
  return sums if total is None else jax.tree.map(jnp.add, total, sums)


def finalize_eval(sums: Mapping[str, Any]) -> dict[str, float]:
  """Means from accumulated eval sums (host floats).

  Returns ``accuracy`` and ``mean_per_class_accuracy`` (mean over classes
  present in the split) in percent, ``loss`` and ``mi`` [``mi_prior_corrected``]
  (nats) and ``count``: the names and units of
  ``evaluators.classification.classification_metrics``.

  >>> sums = {"count": 4.0, "correct": 3.0, "loss": 2.0, "mi": 1.2,
  ...         "class_correct": np.array([2.0, 1.0]), "class_count": np.array([2.0, 2.0])}
  >>> finalize_eval(sums)
  {'count': 4.0, 'accuracy': 75.0, 'loss': 0.5, 'mi': 0.3, 'mean_per_class_accuracy': 75.0}
  """
  s = jax.device_get(sums)
  n = float(s["count"])
  if n <= 0:
    raise ValueError("finalize_eval: no (unmasked) examples were evaluated.")
  out = {"count": n, "accuracy": 100.0 * (float(s["correct"]) / n),
         "loss": float(s["loss"]) / n, "mi": float(s["mi"]) / n}
  if "mi_prior_corrected" in s:
    out["mi_prior_corrected"] = float(s["mi_prior_corrected"]) / n
  cc, cn = np.asarray(s["class_correct"], np.float64), np.asarray(s["class_count"], np.float64)
  present = cn > 0
  out["mean_per_class_accuracy"] = 100.0 * float(np.mean(cc[present] / cn[present]))
  return out
