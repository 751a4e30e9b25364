"""The synthetic Gaussian MI study's data and classifiers (``experiments.synthetic_mi``).

``make_data`` draws every setting's train / validation / test splits of one
dimension from ``GaussianMixture.paper`` (paired settings, exact per-class
counts, padded to shared shapes); ``train_model`` trains the MLP with Adam
(warm-up + cosine) on softmax or PC-softmax and keeps the parameters with the
best validation NLL; ``study_functions(cfg)[2]`` evaluates a model: the true
PMI, every PMI reading (nats, mean with standard error) and the accuracies.
Same ``Config`` and key, same numbers (bitwise on one CPU).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from infocam_jax.estimators import (mean_with_stderr, pc_softmax_cross_entropy_with_integer_labels,
                                    pmi, prior_from_counts)
from infocam_jax.gaussian import PAPER_IMBALANCED_WEIGHTS, GaussianMixture
from infocam_jax.models.mlp import MLP
from infocam_jax.train.optim import warmup_cosine_decay

NUM_CLASSES = 5


@dataclasses.dataclass(frozen=True)
class Config:
  """Every knob of the study (recorded in each JSON row)."""
  dims: tuple[int, ...] = (1, 2, 5, 10)
  settings: tuple[str, ...] = ("balanced", "imbalanced")
  objectives: tuple[str, ...] = ("softmax", "pc_softmax")
  train_per_class: int = 10_000  # balanced; imbalanced: x (1, 2, 3, 4, 5) / 2
  eval_fraction: float = 0.2  # val and test sizes per class, relative to train
  mc_samples: int = 1_000_000  # ground-truth Monte Carlo draws
  hidden_sizes: tuple[int, ...] = (100, 100, 100)
  epochs: int = 60
  batch_size: int = 1000
  learning_rate: float = 1e-3
  warmup_epochs: int = 2
  final_lr_fraction: float = 0.01  # cosine decay to learning_rate * this
  # Early stopping after this many epochs without a better validation NLL;
  # None = off (default): with a cosine schedule the best model usually comes
  # from the annealed last epochs, and stopping during the high-LR phase cost
  # accuracy (seed 1, d=2: best epoch 5, stopped at 25, error 0.004 nats).
  patience: int | None = None
  seed: int = 0
  # "rbg" (XLA RngBitGenerator) compiles 3-4x faster than "threefry2x32" on
  # XLA:CPU, where compilation dominates the quick run; deterministic on a
  # given backend and jax version.
  prng_impl: str = "rbg"
  quick: bool = False


# ----------------------------------------------------------------------------
# Data.
# ----------------------------------------------------------------------------


def class_counts(cfg: Config, balanced: bool) -> list[int]:
  """Training examples per class: N each, or N·(1..5)/2 (5k..25k for N=10k)."""
  if balanced:
    return [cfg.train_per_class] * NUM_CLASSES
  return [int(round(cfg.train_per_class * w / 2)) for w in PAPER_IMBALANCED_WEIGHTS]


def eval_counts(cfg: Config, balanced: bool) -> list[int]:
  """Validation (= test) examples per class: training/5 by default."""
  return [max(1, int(round(c * cfg.eval_fraction))) for c in class_counts(cfg, balanced)]


@functools.partial(jax.tree_util.register_dataclass, data_fields=["x", "y", "mask", "n"],
                   meta_fields=[])
@dataclasses.dataclass
class Split:
  """One split padded to a size shared by all settings of a dimension.

  Padding rows (``mask == False``) hold x = 0, y = 0 and are never used:
  sharing shapes lets balanced and imbalanced data use the same compiled
  functions (XLA:CPU compilation, not training, dominates the quick run).
  """
  x: jax.Array  # [n_pad, d] float32
  y: jax.Array  # [n_pad] int32
  mask: jax.Array  # [n_pad] bool
  n: int  # real examples (a prefix: mask = arange(n_pad) < n); traced under jit


@dataclasses.dataclass
class Data:
  mixture: GaussianMixture
  prior: jax.Array  # training class frequencies [K]
  train: Split
  val: Split
  test: Split


def make_data(cfg: Config, dim: int, key: jax.Array) -> dict[str, Data]:
  """All settings' splits for one dimension, with exact per-class counts.

  One stratified draw per class supplies every setting: setting s takes, within
  each class and in the draw's random order, its first ``train_k`` draws for
  training, the next ``val_k`` for validation and the next ``test_k`` for test.
  The settings are therefore paired (they share draws), and within a setting
  train, val and test are independent.
  """
  settings = {s: s == "balanced" for s in cfg.settings}
  sizes = {s: (class_counts(cfg, b), eval_counts(cfg, b), eval_counts(cfg, b))
           for s, b in settings.items()}
  pool = [max(sum(parts[j][k] for j in range(3)) for parts in sizes.values())
          for k in range(NUM_CLASSES)]
  # Class-conditional draws do not depend on the prior.
  x_draw, y_draw = GaussianMixture.paper(dim).sample_class_counts(key, pool)
  x, y = np.asarray(x_draw), np.asarray(y_draw)
  rank = np.empty_like(y)
  for k in range(NUM_CLASSES):
    idx = np.flatnonzero(y == k)
    rank[idx] = np.arange(idx.size)

  def pad_to(split_sizes: list[list[int]]) -> int:
    return max(sum(c) for c in split_sizes)

  pads = [pad_to([sizes[s][j] for s in settings]) for j in range(3)]
  out = {}
  for s, balanced in settings.items():
    lo = np.zeros(NUM_CLASSES, np.int64)
    splits = []
    for j in range(3):
      hi = lo + np.asarray(sizes[s][j])
      m = (rank >= lo[y]) & (rank < hi[y])
      n = int(m.sum())
      xs = np.zeros((pads[j], dim), np.float32)
      ys = np.zeros((pads[j],), np.int32)
      xs[:n], ys[:n] = x[m], y[m]
      splits.append(Split(jnp.asarray(xs), jnp.asarray(ys), jnp.arange(pads[j]) < n, n))
      lo = hi
    mixture = GaussianMixture.paper(dim, balanced=balanced)
    prior = prior_from_counts(np.asarray(sizes[s][0]))
    if not np.allclose(np.asarray(mixture.prior), np.asarray(prior), atol=1e-6):
      raise AssertionError("training counts and mixture prior disagree")
    out[s] = Data(mixture, prior, *splits)
  return out


# ----------------------------------------------------------------------------
# Training (one jitted epoch = a loop over minibatches).
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _train_functions(hidden_sizes: tuple[int, ...], batch_size: int, peak_lr: float,
                     final_lr_fraction: float):
  """Jitted init / epoch / evaluation functions (cached: equal shapes compile once)."""
  model = MLP(NUM_CLASSES, hidden_sizes=hidden_sizes)
  adam = optax.scale_by_adam()

  def loss_fn(params, x, y, train_prior):
    # PC-softmax NLL with the objective's prior: the class frequencies for
    # "pc_softmax", uniform for "softmax" (then it is CE - log K, same gradient).
    return jnp.mean(pc_softmax_cross_entropy_with_integer_labels(model.apply(params, x), y, train_prior))

  @jax.jit
  def init(key, x1):
    params = model.init(key, x1)
    return params, adam.init(params)

  @jax.jit
  def train_epoch(params, opt_state, key, step0, warmup_steps, total_steps, train, val,
                  train_prior):
    """One pass over a fresh permutation of the real training rows (drop remainder)."""
    x, y, n = train.x, train.y, train.n
    n_pad = x.shape[0]
    max_steps = n_pad // batch_size
    u = jax.random.uniform(key, (n_pad,))
    order = jnp.argsort(jnp.where(jnp.arange(n_pad) < n, u, 2.0))  # real rows first, shuffled
    order = order[:max_steps * batch_size].reshape(max_steps, batch_size)
    steps = n // batch_size

    def step(i, carry):
      params, opt_state, total = carry
      idx = order[i]
      loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx], train_prior)
      updates, opt_state = adam.update(grads, opt_state, params)
      lr = warmup_cosine_decay(step0 + i, warmup_steps, total_steps, peak_lr,
                               final_lr_fraction)
      updates = jax.tree.map(lambda u: -lr * u, updates)
      return optax.apply_updates(params, updates), opt_state, total + loss

    params, opt_state, total = jax.lax.fori_loop(0, steps, step, (params, opt_state, 0.0))
    nll = pc_softmax_cross_entropy_with_integer_labels(model.apply(params, val.x), val.y, train_prior)
    val_nll = jnp.sum(jnp.where(val.mask, nll, 0)) / jnp.sum(val.mask)
    return params, opt_state, total / steps, val_nll

  @jax.jit
  def evaluate(params, mixture, test, prior):
    """Ground truth and every reading of one model on the test split."""
    x, y, mask = test.x, test.y, test.mask
    logits = model.apply(params, x)
    true_pmi = mixture.pmi(x, y)
    readings = {
        "log_k": pmi(logits, y),
        "pc": pmi(logits, y, prior, objective="pc_softmax"),
        "prior_corrected": pmi(logits, y, prior, objective="softmax"),
    }
    out = {name: (mean_with_stderr(v, mask), mean_with_stderr(v - true_pmi, mask))
           for name, v in readings.items()}
    hits = jnp.where(mask, jnp.argmax(logits, axis=-1) == y, False)
    onehot = jax.nn.one_hot(y, NUM_CLASSES) * mask[:, None]
    per_class = (onehot * hits[:, None]).sum(0) / jnp.maximum(onehot.sum(0), 1)
    present = onehot.sum(0) > 0
    balanced_accuracy = jnp.sum(jnp.where(present, per_class, 0)) / jnp.sum(present)
    accuracy = jnp.sum(hits) / jnp.sum(mask)
    return mean_with_stderr(true_pmi, mask), out, accuracy, balanced_accuracy

  return init, train_epoch, evaluate


def study_functions(cfg: Config):
  return _train_functions(tuple(cfg.hidden_sizes), cfg.batch_size, cfg.learning_rate,
                          cfg.final_lr_fraction)


def train_model(cfg: Config, data: Data, objective: str, key: jax.Array, *,
                progress: bool, desc: str) -> tuple[Any, dict[str, Any]]:
  """Trains one MLP; returns the params with the best validation NLL and a log."""
  init, train_epoch, _ = study_functions(cfg)
  if data.train.n < cfg.batch_size:
    raise ValueError(f"config.batch_size {cfg.batch_size} exceeds the training set "
                     f"({data.train.n}).")
  steps_per_epoch = data.train.n // cfg.batch_size
  warmup_steps = jnp.int32(cfg.warmup_epochs * steps_per_epoch)
  total_steps = jnp.int32(cfg.epochs * steps_per_epoch)
  train_prior = (data.prior if objective == "pc_softmax"
                 else jnp.full((NUM_CLASSES,), 1.0 / NUM_CLASSES, jnp.float32))
  key_init, key_data = jax.random.split(key)
  params, opt_state = init(key_init, data.train.x[:1])
  best = (math.inf, params, 0)
  epochs_run = 0
  bar = tqdm(range(cfg.epochs), desc=desc, leave=False, disable=not progress, file=sys.stderr)
  for epoch in bar:
    params, opt_state, train_loss, val_loss = train_epoch(
        params, opt_state, jax.random.fold_in(key_data, epoch), jnp.int32(epoch * steps_per_epoch),
        warmup_steps, total_steps, data.train, data.val, train_prior)
    v = float(val_loss)
    epochs_run = epoch + 1
    if not math.isfinite(v):
      raise FloatingPointError(f"validation NLL became {v} at epoch {epochs_run} ({desc})")
    if v < best[0]:
      best = (v, params, epochs_run)
    bar.set_postfix(train=f"{float(train_loss):.4f}", val=f"{v:.4f}", best=best[2])
    if cfg.patience is not None and epochs_run - best[2] >= cfg.patience:
      break
  bar.close()
  return best[1], {"val_nll": best[0], "best_epoch": best[2], "epochs_run": epochs_run}
