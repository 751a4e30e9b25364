"""Synthetic Gaussian study: softmax / PC-softmax classifiers as MI estimators.

Reproduces the synthetic experiment of Qin, Kim & Gedeon (arXiv 1911.10688)
and goes further. Data: K = 5 classes, ``x|y ~ N(mu_y, I_d)`` with means
``0, +2·1, -2·1, +4·1, -4·1``, d in {1, 2, 5, 10}. Balanced training set:
10,000 per class; imbalanced: 5k/10k/15k/20k/25k. Validation (model selection)
and test (reporting) splits each hold training/5 per class; train, val and
test are disjoint draws, and the test split is never used for selection.

For every (d, balanced/imbalanced, objective) an MLP d->100->100->100->5 is
trained with Adam (warm-up + cosine decay) on

* ``softmax``: plain softmax cross-entropy, read as ``log softmax_y + log K``
  (and, for imbalanced data, also as the prior-corrected ``log softmax_y -
  log p_y``);
* ``pc_softmax``: the NLL of PC-softmax with the training class prior, read as
  ``log s~_y``.

The checkpoint with the best validation NLL is kept. Each row reports the true
MI (Monte Carlo, >= 10^6 draws, with standard error), the true MI on the test
sample itself (mean exact PMI), the estimate on the test sample with its
standard error, and test accuracy. The target: for balanced+softmax and every
PC-softmax row, ``|estimate - true MI on the same test sample| <= 0.01`` nats.
``log K + log softmax_y`` on imbalanced data is reported to show the failure
PC-softmax fixes; it is not held to the target.

Usage::

    python -m experiments.synthetic_mi                          # -> runs/synthetic_mi.json + .png
    python -m experiments.synthetic_mi --quick                  # -> runs/synthetic_mi_quick.json
    python -m experiments.synthetic_mi --config.dims=2,5 --config.epochs=30 --output=PATH.json

The study's knobs are the fields of ``experiments/configs/synthetic_mi.py``
(variants ``default`` and ``quick``; ``--quick`` is short for the latter).
Prints a markdown table on stdout (progress bars on stderr) and always writes
the results: ``--output`` (default ``runs/synthetic_mi.json``, or
``runs/synthetic_mi_quick.json`` for quick runs, so a quick run never
replaces the full study) and the figure next to it. The JSON holds
``{"experiment", "quick", "config", "rows": [...], "summary", "versions",
"device", "wall_time_s"}``; quick results say so in the file and the figure.
Same seed, same numbers (bitwise on CPU). Exit statuses as every experiment:
0 done, 2 bad input.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags
from ml_collections import config_flags
from tqdm.auto import tqdm

from infocam_jax import plotting
from infocam_jax import io
from infocam_jax.estimators import (mean_with_stderr, pc_softmax_cross_entropy, pmi,
                                    prior_from_counts)
from infocam_jax.gaussian import PAPER_IMBALANCED_WEIGHTS, GaussianMixture
from infocam_jax.models.mlp import MLP
from infocam_jax.train import config as config_lib
from infocam_jax.train.optim import warmup_cosine_decay

from experiments import _workers
from experiments import _common
from experiments.configs import synthetic_mi as configs


TARGET_NATS = 0.01
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


DEFAULT_CONFIG = os.path.join(_common.CONFIG_DIR, "synthetic_mi.py")
def _int_list(v: str) -> str | None:
  try:
    out = [int(x) for x in str(v).split(",") if x.strip()]
  except ValueError:
    return f"expected comma-separated integers, got {v!r}"
  return None if out and min(out) >= 1 else f"expected positive integers, got {v!r}"


def _subset(choices: Sequence[str]):
  def check(v: str) -> str | None:
    out = [x.strip() for x in str(v).split(",") if x.strip()]
    if not out or set(out) - set(choices) or len(set(out)) != len(out):
      return f"expected a comma-separated subset of {list(choices)}, got {v!r}"
    return None
  return check


def _schema() -> dict[str, Any]:
  F, at_least = config_lib.Field, config_lib.at_least
  positive = lambda v: None if v > 0 else f"must be > 0, got {v!r}"
  return {
      "quick": F((bool,), "quick variant (fewer samples/epochs); marked in the results."),
      "seed": F((int,), "PRNG seed of data, initialisation and order.", at_least(0)),
      "dims": F((str,), "input dimensions d, comma-separated.", _int_list),
      "settings": F((str,), "'balanced', 'imbalanced' or both, comma-separated.",
                    _subset(("balanced", "imbalanced"))),
      "objectives": F((str,), "'softmax', 'pc_softmax' or both, comma-separated.",
                      _subset(("softmax", "pc_softmax"))),
      "train_per_class": F((int,), "balanced training examples per class (imbalanced: x "
                           "(1..5)/2).", at_least(1)),
      "eval_fraction": F((float,), "validation/test size per class relative to training.",
                         lambda v: None if 0 < v <= 1 else f"must lie in (0, 1], got {v!r}"),
      "mc_samples": F((int,), "Monte-Carlo draws of the true MI.", at_least(2)),
      "hidden_sizes": F((str,), "MLP widths, comma-separated.", _int_list),
      "epochs": F((int,), "training epochs.", at_least(1)),
      "batch_size": F((int,), "minibatch size.", at_least(1)),
      "learning_rate": F((float,), "peak Adam learning rate.", positive),
      "warmup_epochs": F((int,), "linear warm-up epochs.", at_least(0)),
      "final_lr_fraction": F((float,), "cosine decay to learning_rate x this.", at_least(0)),
      "patience": F((int,), "early-stopping patience in epochs (0: off; best-val selection).",
                    at_least(0)),
      "prng_impl": F((str,), "JAX PRNG implementation.",
                     choices=("rbg", "threefry2x32", "unsafe_rbg")),
  }


def study_config(config: Any) -> Config:
  """The validated ``Config`` of a ``ConfigDict`` (``experiments/configs/synthetic_mi.py``)."""
  _common.validate(config, _schema())
  ints = lambda s: tuple(int(x) for x in str(s).split(",") if x.strip())
  names = lambda s: tuple(x.strip() for x in str(s).split(",") if x.strip())
  c = dict(config.to_dict() if hasattr(config, "to_dict") else config)
  c.update(dims=ints(c["dims"]), hidden_sizes=ints(c["hidden_sizes"]),
           settings=names(c["settings"]), objectives=names(c["objectives"]),
           patience=int(c["patience"]) or None)
  return Config(**c)


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
  x, y = GaussianMixture.paper(dim).sample_class_counts(key, pool)
  x, y = np.asarray(x), np.asarray(y)
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
    return jnp.mean(pc_softmax_cross_entropy(model.apply(params, x), y, train_prior))

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
    nll = pc_softmax_cross_entropy(model.apply(params, val.x), val.y, train_prior)
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


def _functions(cfg: Config):
  return _train_functions(tuple(cfg.hidden_sizes), cfg.batch_size, cfg.learning_rate,
                          cfg.final_lr_fraction)


def train_model(cfg: Config, data: Data, objective: str, key: jax.Array, *,
                progress: bool, desc: str) -> tuple[Any, dict[str, Any]]:
  """Trains one MLP; returns the params with the best validation NLL and a log."""
  init, train_epoch, _ = _functions(cfg)
  if data.train.n < cfg.batch_size:
    raise _common.UsageError(f"config.batch_size {cfg.batch_size} exceeds the training set "
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


# ----------------------------------------------------------------------------
# The study.
# ----------------------------------------------------------------------------

ESTIMATOR_LABELS = {
    "log_k": "log K + log softmax_y",
    "pc": "log s̃_y (PC)",
    "prior_corrected": "log softmax_y − log p_y",
}


def run_dimension(cfg: Config, dim: int, *, progress: bool = True,
                  on_cell_done: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
  """Every cell of one dimension; rows depend only on (cfg, dim)."""
  root = jax.random.key(cfg.seed, impl=cfg.prng_impl)
  rows: list[dict[str, Any]] = []
  config = dataclasses.asdict(cfg)
  config.update(jax_version=jax.__version__, backend=jax.default_backend(),
                machine=platform.machine(), python=platform.python_version())
  _, _, evaluate = _functions(cfg)
  key_dim = jax.random.fold_in(root, dim)
  t0 = time.perf_counter()
  data_by_setting = make_data(cfg, dim, jax.random.fold_in(key_dim, 2))
  data_s = (time.perf_counter() - t0) / len(cfg.settings)
  for setting in cfg.settings:
    balanced = setting == "balanced"
    data = data_by_setting[setting]
    k_mc, k_model = jax.random.split(jax.random.fold_in(key_dim, int(balanced)))
    t0 = time.perf_counter()
    true_mi = jax.device_get(data.mixture.mutual_information(k_mc, cfg.mc_samples))
    ground_truth_s = time.perf_counter() - t0 + data_s
    for objective in cfg.objectives:
      t0 = time.perf_counter()
      # The same init/shuffle key for both objectives: paired comparison.
      params, log = train_model(cfg, data, objective, k_model, progress=progress,
                                desc=f"d={dim} {setting} {objective}")
      true_mi_test, evaluated, accuracy, balanced_accuracy = jax.device_get(
          evaluate(params, data.mixture, data.test, data.prior))
      runtime = time.perf_counter() - t0
      if objective == "pc_softmax":
        names = ["pc"]
      else:
        names = ["log_k"] + ([] if balanced else ["prior_corrected"])
      for name in names:
        est, diff = evaluated[name]
        target_applies = name == "pc" or (balanced and name == "log_k")
        error = float(est.estimate) - float(true_mi_test.estimate)
        rows.append(dict(
            dim=dim, balanced=balanced, objective=objective, estimator=name,
            estimator_formula=ESTIMATOR_LABELS[name],
            true_mi=float(true_mi.estimate), true_mi_stderr=float(true_mi.stderr),
            true_mi_test=float(true_mi_test.estimate),
            true_mi_test_stderr=float(true_mi_test.stderr),
            estimate=float(est.estimate), stderr=float(est.stderr),
            error=error, error_stderr=float(diff.stderr),
            accuracy=float(accuracy), balanced_accuracy=float(balanced_accuracy),
            label_entropy=float(data.mixture.label_entropy()),
            val_nll=log["val_nll"], best_epoch=log["best_epoch"], epochs_run=log["epochs_run"],
            n_train=data.train.n, n_val=data.val.n, n_test=data.test.n,
            runtime_s=runtime, ground_truth_runtime_s=ground_truth_s,
            target_applies=target_applies,
            within_target=(abs(error) <= TARGET_NATS) if target_applies else None,
            seed=cfg.seed, config=config))
      if on_cell_done is not None:
        on_cell_done(f"d={dim} {setting} {objective}")
  return rows


def _worker(cfg: Config, dim: int) -> list[dict[str, Any]]:
  return run_dimension(cfg, dim, progress=False, on_cell_done=_workers.send)


def run(cfg: Config, *, progress: bool = True, workers: int = 1) -> list[dict[str, Any]]:
  """Runs every cell of the study; returns the JSON rows (ordered by dim).

  ``workers > 1`` runs the dimensions in that many spawned processes (the
  rows are identical: each depends only on (cfg, dim)); XLA:CPU compilation
  and these small MLPs are mostly single-threaded, so 2 workers on 2 cores
  nearly halve the wall time.
  """
  num_cells = len(cfg.dims) * len(cfg.settings) * len(cfg.objectives)
  outer = tqdm(total=num_cells, desc="synthetic MI", disable=not progress, file=sys.stderr)

  def done(cell: str) -> None:
    outer.update(1)
    outer.set_postfix_str(f"done: {cell}")

  workers = max(1, min(workers, len(cfg.dims)))
  try:
    if workers == 1:
      return [row for dim in cfg.dims
              for row in run_dimension(cfg, dim, progress=progress, on_cell_done=done)]
    # By module path, also when this file runs as __main__ (python -m ...).
    from experiments import synthetic_mi as module  # pylint: disable=g-import-not-at-top,import-self
    worker = module._worker  # pylint: disable=protected-access
    per_dim = _workers.map_in_workers(worker, [(cfg, dim) for dim in cfg.dims], workers,
                                      on_message=done)
    return [row for rows in per_dim for row in rows]
  finally:
    outer.close()


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
  head = ("| d | data | objective | estimator | true MI (MC) | true MI (test) | estimate ± se "
          "| error | acc | bal. acc | best/run ep. | time (s) | ≤ 0.01 |")
  lines = [head, "|" + "---|" * 13]
  for r in rows:
    mark = "—" if not r["target_applies"] else ("✓" if r["within_target"] else "✗")
    lines.append(
        f"| {r['dim']} | {'balanced' if r['balanced'] else 'imbalanced'} | {r['objective']} "
        f"| {r['estimator_formula']} | {r['true_mi']:.4f} ± {r['true_mi_stderr']:.4f} "
        f"| {r['true_mi_test']:.4f} | {r['estimate']:.4f} ± {r['stderr']:.4f} "
        f"| {r['error']:+.4f} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} "
        f"| {r['best_epoch']}/{r['epochs_run']} | {r['runtime_s']:.1f} | {mark} |")
  return "\n".join(lines)


def summary(rows: Sequence[dict[str, Any]], wall_s: float, workers: int = 1) -> str:
  target = [r for r in rows if r["target_applies"]]
  failure = [r for r in rows if r["estimator"] == "log_k" and not r["balanced"]]
  parts = []
  if target:
    worst = max(abs(r["error"]) for r in target)
    ok = all(r["within_target"] for r in target)
    parts.append(f"Target rows (balanced softmax, all PC-softmax): "
                 f"max |estimate − true MI (test)| = {worst:.4f} nats -> "
                 f"{'PASS' if ok else 'FAIL'} (target {TARGET_NATS}).")
  if failure:
    parts.append("Plain softmax + log K on imbalanced data: errors " +
                 ", ".join(f"d={r['dim']}: {r['error']:+.3f}" for r in failure) + " nats.")
  parts.append(f"Wall time {wall_s:.1f} s ({jax.default_backend()}, {workers} worker process"
               f"{'es' if workers > 1 else ''}).")
  return "\n".join(parts)


# ----------------------------------------------------------------------------
# Results and command line.
# ----------------------------------------------------------------------------


def default_output(cfg: Config) -> str:
  return os.path.join("runs", "synthetic_mi_quick.json" if cfg.quick else "synthetic_mi.json")


def study(cfg: Config, *, output: str, figure: str = "", workers: int = 1,
          progress: bool = True) -> dict[str, Any]:
  """Runs the study, prints the table, writes ``output`` (JSON) and the figure; returns the record."""
  t0 = time.perf_counter()
  rows = run(cfg, progress=progress, workers=workers)
  wall = time.perf_counter() - t0
  workers = max(1, min(workers, len(cfg.dims)))
  text = summary(rows, wall, workers)
  print(markdown_table(rows))
  print()
  print(text)
  target = [r for r in rows if r["target_applies"]]
  record = {"experiment": "synthetic_mi", "quick": cfg.quick, "config": dataclasses.asdict(cfg),
            "rows": rows,
            "summary": {"max_abs_error_target_rows": max((abs(r["error"]) for r in target),
                                                         default=None),
                        "target_nats": TARGET_NATS, "text": text},
            "versions": io.versions(), "device": io.device_info(), "wall_time_s": wall,
            "workers": workers}
  io.write_json(output, record, indent=1)
  print(f"Wrote {len(rows)} rows to {output}")
  figure = figure or os.path.splitext(output)[0] + ".png"
  print(f"Wrote the figure {plot_errors(rows, figure, quick=cfg.quick)}")
  return record


def main() -> None:
  """The command line (flags parsed by ``_common.main``)."""
  f = flags.FLAGS
  config = f.config
  if f.quick and not config.quick:
    quick = configs.get_config("quick")
    base = configs.get_config("default")
    with config.unlocked():
      for key in quick:  # the quick values, except fields the command line overrode
        if config[key] == base[key]:
          config[key] = quick[key]
  if f.workers < 1:
    raise _common.UsageError(f"--workers must be >= 1, got {f.workers}")
  cfg = study_config(config)
  study(cfg, output=f.output or default_output(cfg), figure=f.figure, workers=f.workers,
        progress=f.progress)


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Config file (Python, get_config), "
                                  "optionally ':quick'; override any field with "
                                  "--config.field=value.", lock_config=True)
  flags.DEFINE_bool("quick", False, "Short for --config=experiments/configs/synthetic_mi.py:quick "
                    "(1/5 of the data, fewer epochs; < 2 min on 2 cores).")
  flags.DEFINE_string("output", "", "Results JSON (default runs/synthetic_mi.json, or "
                      "runs/synthetic_mi_quick.json for quick runs); always written.")
  flags.DEFINE_string("figure", "", "Figure path (default: next to --output, .png).")
  flags.DEFINE_integer("workers", min(2, os.cpu_count() or 1), "Processes, one dimension each "
                       "(default min(2, cores)); the results do not depend on it.")
  flags.DEFINE_bool("progress", True, "Progress bars on stderr (--noprogress: none).")


def plot_errors(rows: Sequence[dict[str, Any]], path: str, *, quick: bool = False) -> str:
  """Estimate - true MI on the test sample (nats, ± paired standard error) against d."""
  dims = sorted({r["dim"] for r in rows})
  series: dict[str, list[float]] = {}
  errors: dict[str, list[float]] = {}
  for r in rows:
    label = (f"{'balanced' if r['balanced'] else 'imbalanced'}: {r['objective']}, "
             f"{r['estimator_formula']}")
    series.setdefault(label, [math.nan] * len(dims))[dims.index(r["dim"])] = r["error"]
    errors.setdefault(label, [0.0] * len(dims))[dims.index(r["dim"])] = r["error_stderr"]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  return str(plotting.plot_mi_errors(
      path, dims, series, errors=errors, target=TARGET_NATS,
      error_label="error bars: ± 1 paired standard error over the test sample",
      xlabel="dimension d", ylabel="estimate − true MI on the test sample (nats)",
      title=(f"{'QUICK run (1/5 data): ' if quick else ''}Softmax / PC-softmax MI estimates "
             f"(target |error| ≤ {TARGET_NATS} nats, shaded)")))


if __name__ == "__main__":
  _common.main(main, define_flags=define_flags, doc=__doc__, default_config=DEFAULT_CONFIG, schema=_schema())
