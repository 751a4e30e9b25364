"""MI estimators for a discrete label, under one signature (nats).

Every estimator is ``fn(task, train, test, key, config) -> Estimate``: ``train`` and
``test`` are :class:`~infocam_jax.mibench.tasks.Sample` stacks over S seeds (x [S, n, d],
y [S, n]); the result holds one estimate and its standard error per seed and the wall
time of the whole call (compilation included). Estimators use only x, y, K and the label
prior (the label marginal is tractable for a labelled data set); only the ``oracle:*``
estimators read the task's exact PMI (from ``z``).

Neural estimators train the S seeds together: one ``jax.vmap`` over (initialisation key,
data) inside one ``jax.jit``-compiled ``lax.scan``; the critic with the best objective on a
held-out ``val_fraction`` of the training sample is kept (checked every ``eval_every``
steps); inputs are standardised with the fitting split's mean and std. Inputs and classes
are zero-padded to a few sizes (:data:`DIM_PADS`, :data:`CLASS_PADS`; padded classes get
prior 0) so that one compiled program serves every task of a size bucket; the padding does
not change the critic (weights drawn row by row, padded rows zero). Two critics:

* ``label``: an MLP x -> R^K, f(x, k) = T(x)_k; expectations over the product of marginals
  enumerate the K classes with their prior weights (only x is sampled).
* ``concat``: an MLP on concat(x, one_hot(y)) -> R (bmi / the SMILE code), scored on all
  B x B pairs of a batch (positives on the diagonal, in-batch negatives off it).

Bounds (f the critic, q = p(x)p(y)): ``infonce`` E_i[f_ii - log mean_j e^{f_ij}] (<= log B
with in-batch negatives); ``nwj`` E_p f - E_q e^{f-1}; ``dv`` (Donsker-Varadhan, trained
with its plain minibatch gradient) E_p f - log E_q e^f; ``mine`` the same bound trained
with MINE's bias-corrected gradient (Belghazi et al. 2018: E_q e^f in the gradient's
denominator is a moving average over batches, :func:`mine_surrogate`); ``smile`` trains
with the Jensen-Shannon
objective and reads DV with e^{clip(f, -tau, tau)} in the partition term; ``demi`` trains
the same joint-vs-product classifier (JS = balanced logistic loss) and reads the mean
log-odds E_p f (no partition function). With the label critic, InfoNCE's enumerated
K-class partition term makes it the classifier itself: ``classifier`` (= ``infonce/label``)
is the PC-softmax reading log softmax(T + log p)_y - log p_y
(:func:`infocam_jax.estimators.pmi`), exact PMI at the optimum; ``classifier_t`` rescales
the logits by a temperature fitted on the held-out split.

Non-neural: ``gaussian_lda`` / ``gaussian_qda`` (plug-in Gaussian class conditionals with
a shared / per-class Ledoit-Wolf covariance, read like the classifier) and ``knn`` (Ross
2014, exact neighbours, on train and test pooled). ``oracle:<bound>/<critic>`` evaluates a
bound on the test sample with the exact PMI as critic (1 + PMI for NWJ, its optimum).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from infocam_jax import estimators as ij_estimators
from infocam_jax.mibench import knn
from infocam_jax.mibench.tasks import Sample, Task

Array = jax.Array


class Estimate(NamedTuple):
  """Per-seed estimates (nats): ``estimate`` [S], ``stderr`` [S]; ``wall_s`` for the call."""
  estimate: np.ndarray
  stderr: np.ndarray
  wall_s: float


@dataclasses.dataclass(frozen=True)
class Config:
  """Hyper-parameters shared by the estimators.

  hidden: MLP widths; steps: Adam steps; batch_size: B (also the in-batch negatives of the
  concat critic and the test batch of its bounds); learning_rate: Adam's; val_fraction:
  held-out share of the training sample (model selection, temperature); eval_every: steps
  between validation checks; clip: SMILE's tau; knn_k: neighbours of the kNN estimator;
  mine_rate: the weight alpha of the current batch in MINE's moving average of E_q e^f.
  """
  hidden: tuple[int, ...] = (64, 64)
  steps: int = 1000
  batch_size: int = 128
  learning_rate: float = 1e-3
  val_fraction: float = 0.2
  eval_every: int = 100
  clip: float = 5.0
  knn_k: int = 3
  mine_rate: float = 0.01

  def __post_init__(self):
    if not self.hidden or min(self.hidden) < 1:
      raise ValueError(f"`hidden` must be positive widths, got {self.hidden!r}.")
    for name in ("steps", "batch_size", "eval_every", "knn_k"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)!r}.")
    if not 0 < self.val_fraction < 1:
      raise ValueError(f"`val_fraction` must lie in (0, 1), got {self.val_fraction!r}.")
    if not self.learning_rate > 0 or not self.clip > 0:
      raise ValueError("`learning_rate` and `clip` must be > 0.")
    if not 0 < self.mine_rate <= 1:
      raise ValueError(f"`mine_rate` must lie in (0, 1], got {self.mine_rate!r}.")


# ----------------------------------------------------------------------------------------
# Critics.
# ----------------------------------------------------------------------------------------


#: Padded sizes. Inputs are zero-padded to the first of ``DIM_PADS`` >= dim (then to a
#: multiple of the last) and the classes likewise to ``CLASS_PADS``, so that tasks of
#: different shapes share one compiled training program (compilation, not training,
#: dominated the quick tier's time). Class counts keep a small bucket: the concat critic
#: scores B x K (x, class) pairs when K < B, so K costs time there; dim costs little.
DIM_PADS = (128, 1024)
CLASS_PADS = (16, 128, 1024)
#: The log prior of a padded class: e^{_LOG_ZERO} = 0 in float32, with no inf arithmetic.
_LOG_ZERO = -1e4


def padded_size(v: int, pads=DIM_PADS) -> int:
  """The padded size of a dimension (``pads=DIM_PADS``) or a class count (``CLASS_PADS``)."""
  for b in pads:
    if v <= b:
      return b
  return -(-v // pads[-1]) * pads[-1]


def _dense_init(key, fan_in, fan_out, scale_fan_in=None, live_rows=None):
  """He-normal weights drawn row by row (row i from ``fold_in(key, i)``), so the rows a
  padded layer shares with an unpadded one are the same numbers; rows >= ``live_rows`` are
  zero and the scale uses the true fan-in ``scale_fan_in`` (may be traced)."""
  rows = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (fan_out,),
                                              jnp.float32))(jnp.arange(fan_in))
  w = rows * jnp.sqrt(2.0 / (fan_in if scale_fan_in is None else scale_fan_in))
  if live_rows is not None:
    w = jnp.where(jnp.arange(fan_in)[:, None] < live_rows, w, 0.0)
  return w, jnp.zeros((fan_out,), jnp.float32)


def _init_label(key, dim, num_classes, hidden, true_dim=None):
  sizes = (dim, *hidden, num_classes)
  keys = jax.random.split(key, len(sizes) - 1)
  layers = [_dense_init(keys[0], dim, sizes[1], true_dim, true_dim)]
  layers += [_dense_init(k, a, b) for k, a, b in zip(keys[1:], sizes[1:-1], sizes[2:])]
  # Zero output layer: every critic starts at f = 0 (the classifier at the prior, 0 nats);
  # a padded class's column then stays 0 (its prior weight is 0, so is its gradient).
  layers[-1] = (jnp.zeros_like(layers[-1][0]), layers[-1][1])
  return layers


def _mlp(layers, h):
  for w, b in layers[:-1]:
    h = jax.nn.relu(h @ w + b)
  w, b = layers[-1]
  return h @ w + b


def _init_concat(key, dim, num_classes, hidden, true_dim=None, true_classes=None):
  k0, k1, k2 = jax.random.split(key, 3)
  fan = None if true_dim is None else true_dim + true_classes
  wx, b = _dense_init(k0, dim, hidden[0], fan, true_dim)
  wy, _ = _dense_init(k1, num_classes, hidden[0], fan, true_classes)
  rest = _init_label(k2, hidden[0], 1, hidden[1:])
  return {"wx": wx, "wy": wy, "b": b, "rest": rest}


def _concat_pairs(params, x, y):
  """f(x_i, y_j) for all pairs: x [B, d], y [B] -> [B, B].

  With fewer classes than pairs (K < B) it scores every (x_i, class k), [B, K], and
  gathers the columns y_j: the same numbers at K/B of the cost.
  """
  hx = x @ params["wx"]
  num_classes, b = params["wy"].shape[0], y.shape[0]
  hy = params["wy"] if num_classes < b else params["wy"][y]
  h = jax.nn.relu(hx[:, None, :] + hy[None, :, :] + params["b"])
  f = _mlp(params["rest"], h)[..., 0]
  return f[:, y] if num_classes < b else f


def _concat_diag(params, x, y):
  """f(x_i, y_i): [B]."""
  h = jax.nn.relu(x @ params["wx"] + params["wy"][y] + params["b"])
  return _mlp(params["rest"], h)[..., 0]


# ----------------------------------------------------------------------------------------
# Objectives (to maximise) and readings. ``lp`` is the [K] log prior.
# ----------------------------------------------------------------------------------------


def _pick(f, y):
  return jnp.take_along_axis(f, y[:, None], axis=1)[:, 0]


def _offdiag_mean_exp_log(s):
  """log mean_{i != j} e^{s_ij}."""
  b = s.shape[0]
  masked = jnp.where(jnp.eye(b, dtype=bool), -jnp.inf, s)
  return jax.nn.logsumexp(masked) - jnp.log(b * (b - 1.0))


def label_dv_terms(f, y, lp):
  """(E_p f, log E_q e^f) of a label critic on a batch (f [B, K], y [B]); DV = their difference.

  E_q enumerates the classes with their prior weights: log mean_i sum_k p_k e^{f(x_i, k)}.
  """
  return jnp.mean(_pick(f, y)), jax.nn.logsumexp(f + lp) - jnp.log(f.shape[0])


def concat_dv_terms(s):
  """(E_p f, log E_q e^f) of a concat critic on a [B, B] pair-score matrix (in-batch negatives)."""
  return jnp.mean(jnp.diagonal(s)), _offdiag_mean_exp_log(s)


def mine_moving_average(log_ma, log_z, rate: float, first):
  """MINE's moving average of E_q e^f, in logs: ``log((1 - rate) ma + rate z)`` (``log_z``
  at the first step, where there is no average yet)."""
  log_z = jax.lax.stop_gradient(log_z)
  upd = jnp.logaddexp(jnp.log1p(-rate) + log_ma, jnp.log(rate) + log_z) if rate < 1 else log_z
  return jnp.where(first, log_z, upd)


def mine_surrogate(pos, log_z, log_ma):
  """MINE's training objective (Belghazi et al. 2018, eq. 12 and Algorithm 1): its gradient
  is ``grad E_p f - grad E_q e^f / ma`` with ``ma`` the moving average of E_q e^f (held
  constant), where the plain DV gradient divides by the batch's own E_q e^f (biased in
  minibatches). Only the gradient is meaningful; the value MINE reports is the DV bound."""
  return pos - jnp.exp(log_z - jax.lax.stop_gradient(log_ma))


def label_objective(kind: str, f, y, lp):
  """Label-critic bound of ``kind`` on a batch: f [B, K] critic values, y [B]
  (``mine``: the DV bound, its reported value)."""
  pos = _pick(f, y)
  if kind == "ce":
    return jnp.mean(pos - jax.nn.logsumexp(f + lp, axis=1))
  if kind == "nwj":
    return jnp.mean(pos) - jnp.mean(jnp.exp(jax.nn.logsumexp(f + lp, axis=1) - 1.0))
  if kind in ("dv", "mine"):
    e_p, log_z = label_dv_terms(f, y, lp)
    return e_p - log_z
  if kind == "js":
    return jnp.mean(-jax.nn.softplus(-pos)) - jnp.mean(jnp.sum(jnp.exp(lp) * jax.nn.softplus(f), 1))
  raise ValueError(f"unknown label objective {kind!r}")


def concat_objective(kind: str, s):
  """Concat-critic bound of ``kind`` on a [B, B] pair-score matrix (positives on the diagonal)."""
  b = s.shape[0]
  diag = jnp.diagonal(s)
  if kind == "infonce":
    return jnp.mean(diag - jax.nn.logsumexp(s, axis=1)) + jnp.log(b)
  if kind == "nwj":
    return jnp.mean(diag) - jnp.exp(_offdiag_mean_exp_log(s) - 1.0)
  if kind in ("dv", "mine"):
    e_p, log_z = concat_dv_terms(s)
    return e_p - log_z
  if kind == "js":
    off = jnp.where(jnp.eye(b, dtype=bool), 0.0, jax.nn.softplus(s))
    return jnp.mean(-jax.nn.softplus(-diag)) - jnp.sum(off) / (b * (b - 1.0))
  raise ValueError(f"unknown concat objective {kind!r}")


def _mean_se(v):
  n = v.shape[0]
  return jnp.mean(v), jnp.std(v, ddof=1) / jnp.sqrt(n)


def label_reading(kind: str, f, y, lp, clip: float, prior=None):
  """(estimate, stderr) of a label-critic bound on a whole test sample: f [n, K], y [n]."""
  pos = _pick(f, y)
  if kind in ("classifier", "infonce"):
    # PC-softmax reading; with a uniform prior it is log softmax_y + log K.
    return _mean_se(ij_estimators.pmi(f, y, prior, objective="pc_softmax"))
  if kind == "nwj":
    return _mean_se(pos - jnp.exp(jax.nn.logsumexp(f + lp, axis=1) - 1.0))
  if kind == "demi":
    return _mean_se(pos)
  if kind in ("dv", "mine", "smile"):
    g = jnp.clip(f, -clip, clip) if kind == "smile" else f
    z = jnp.exp(jax.nn.logsumexp(g + lp, axis=1))  # [n] per-x partition terms
    zbar = jnp.mean(z)
    est = jnp.mean(pos) - jnp.log(zbar)
    _, se = _mean_se(pos - z / zbar)  # delta method
    return est, se
  raise ValueError(f"unknown label reading {kind!r}")


def concat_reading(kind: str, pairs_fn: Callable, x, y, batch: int, clip: float):
  """(estimate, stderr) of a concat-critic bound: mean over test batches of B pairs
  (the in-batch protocol of bmi), stderr over batches; ``demi`` uses every test point."""
  n = x.shape[0]
  nb = n // batch
  xb = x[:nb * batch].reshape(nb, batch, -1)
  yb = y[:nb * batch].reshape(nb, batch)
  s = jax.lax.map(lambda a: pairs_fn(*a), (xb, yb))  # [nb, B, B]
  if kind == "demi":
    return _mean_se(jax.vmap(jnp.diagonal)(s).reshape(-1))
  if kind == "smile":
    diag = jax.vmap(jnp.diagonal)(s)
    vals = jnp.mean(diag, 1) - jax.vmap(_offdiag_mean_exp_log)(jnp.clip(s, -clip, clip))
  else:
    vals = jax.vmap(functools.partial(concat_objective, kind))(s)
  if nb < 2:
    return jnp.mean(vals), jnp.float32(jnp.nan)
  return _mean_se(vals)


# ----------------------------------------------------------------------------------------
# Training (seeds vmapped in one compiled program).
# ----------------------------------------------------------------------------------------

_TRAININGS = {
    # training id -> (critic, objective)
    "label/ce": ("label", "ce"), "label/nwj": ("label", "nwj"), "label/dv": ("label", "dv"),
    "label/mine": ("label", "mine"), "label/js": ("label", "js"),
    "concat/infonce": ("concat", "infonce"), "concat/nwj": ("concat", "nwj"),
    "concat/dv": ("concat", "dv"), "concat/mine": ("concat", "mine"), "concat/js": ("concat", "js"),
}


def _split_sizes(n: int, cfg: Config) -> tuple[int, int]:
  n_val = max(1, int(round(n * cfg.val_fraction)))
  return n - n_val, n_val


@functools.partial(jax.jit, static_argnames=("critic", "objective", "cfg"))
def _train_and_read(keys, x, y, xt, yt, lp, sizes, *, critic, objective, cfg):
  """Trains one critic per seed (vmapped) and returns its readings on the test sample.

  x [S, n, D], xt [S, m, D]: inputs zero-padded beyond the true dim; lp [Kp]: the log
  prior, ``_LOG_ZERO`` on padded classes; sizes: int32 [2], the true (dim, K) (traced, so
  every task padded to (D, Kp) runs the same compiled program). Returns a dict
  reading-name -> (estimate [S], stderr [S]).
  """
  n, dim = x.shape[1], x.shape[2]
  num_classes = lp.shape[0]
  n_fit, n_val = _split_sizes(n, cfg)
  batch = cfg.batch_size
  prior = jnp.exp(lp)
  opt = optax.adam(cfg.learning_rate)
  true_dim, true_classes = sizes[0], sizes[1]

  if critic == "label":
    init = lambda k: _init_label(k, dim, num_classes, cfg.hidden, true_dim)
    scores = _mlp
    batch_obj = lambda p, xb, yb: label_objective(objective, _mlp(p, xb), yb, lp)
    dv_terms = lambda p, xb, yb: label_dv_terms(_mlp(p, xb), yb, lp)
    val_obj = batch_obj  # the whole validation split at once
  else:
    init = lambda k: _init_concat(k, dim, num_classes, cfg.hidden, true_dim, true_classes)
    batch_obj = lambda p, xb, yb: concat_objective(objective, _concat_pairs(p, xb, yb))
    dv_terms = lambda p, xb, yb: concat_dv_terms(_concat_pairs(p, xb, yb))
    vb = min(batch, n_val)
    nvb = max(1, n_val // vb)

    def val_obj(p, xv, yv):
      xs = xv[:nvb * vb].reshape(nvb, vb, -1)
      ys = yv[:nvb * vb].reshape(nvb, vb)
      return jnp.mean(jax.lax.map(lambda a: batch_obj(p, *a), (xs, ys)))

  def loss_and_ma(p, xb, yb, log_ma, first):
    """The loss to minimise and MINE's updated moving average (unchanged for the others)."""
    if objective != "mine":
      return -batch_obj(p, xb, yb), log_ma
    pos, log_z = dv_terms(p, xb, yb)
    new_ma = mine_moving_average(log_ma, log_z, cfg.mine_rate, first)
    return -mine_surrogate(pos, log_z, new_ma), new_ma

  def one_seed(key, xs, ys, xts, yts):
    # Standardise with the fitting split's per-coordinate mean and std (as bmi does); a
    # padded (all-zero) coordinate stays 0.
    mu = jnp.mean(xs[:n_fit], 0)
    sd = jnp.std(xs[:n_fit], 0)
    sd = jnp.where(sd > 0, sd, 1.0)
    xs, xts = (xs - mu) / sd, (xts - mu) / sd
    xf, yf, xv, yv = xs[:n_fit], ys[:n_fit], xs[n_fit:], ys[n_fit:]
    k_init, k_train = jax.random.split(key)
    params = init(k_init)
    state = opt.init(params)

    def step(carry, k):
      p, st, log_ma, t = carry
      idx = jax.random.randint(k, (batch,), 0, n_fit)
      grads, log_ma = jax.grad(loss_and_ma, has_aux=True)(p, xf[idx], yf[idx], log_ma, t == 0)
      upd, st = opt.update(grads, st, p)
      return (optax.apply_updates(p, upd), st, log_ma, t + 1), None

    def chunk(carry, k):
      p, st, log_ma, t, best, best_val = carry
      (p, st, log_ma, t), _ = jax.lax.scan(step, (p, st, log_ma, t),
                                           jax.random.split(k, cfg.eval_every))
      val = val_obj(p, xv, yv)
      better = jnp.isfinite(val) & (val > best_val)
      best = jax.tree.map(lambda a, b: jnp.where(better, a, b), p, best)
      return (p, st, log_ma, t, best, jnp.where(better, val, best_val)), val

    num_chunks = max(1, cfg.steps // cfg.eval_every)
    carry = (params, state, jnp.float32(0.0), jnp.int32(0), params, jnp.float32(-jnp.inf))
    (*_, best, _), _ = jax.lax.scan(chunk, carry, jax.random.split(k_train, num_chunks))

    out = {}
    if critic == "label":
      ft, fv = scores(best, xts), scores(best, xv)
      if objective == "ce":
        out["classifier"] = label_reading("classifier", ft, yts, lp, cfg.clip, prior)
        out["infonce"] = out["classifier"]
        # Temperature on the held-out split: q_tau = softmax(T / tau + log p).
        log_taus = jnp.linspace(math.log(0.2), math.log(5.0), 97)
        nll = jax.vmap(lambda lt: -label_objective("ce", fv / jnp.exp(lt), yv, lp))(log_taus)
        tau = jnp.exp(log_taus[jnp.argmin(nll)])
        out["classifier_t"] = label_reading("classifier", ft / tau, yts, lp, cfg.clip, prior)
      elif objective == "js":
        out["smile"] = label_reading("smile", ft, yts, lp, cfg.clip)
        out["demi"] = label_reading("demi", ft, yts, lp, cfg.clip)
      else:
        out[objective] = label_reading(objective, ft, yts, lp, cfg.clip)
    else:
      pairs = functools.partial(_concat_pairs, best)
      readings = ("smile", "demi") if objective == "js" else (objective,)
      for r in readings:
        out[r] = concat_reading(r, pairs, xts, yts, batch, cfg.clip)
    return out

  return jax.vmap(one_seed)(keys, x, y, xt, yt)


def pad_inputs(task: Task, train: Sample, test: Sample, dim_to: int | None = None,
               classes_to: int | None = None):
  """(x, xt, lp, sizes) for :func:`_train_and_read`: x zero-padded to ``dim_to`` columns
  (default ``padded_size(dim)``), the log prior padded with ``_LOG_ZERO`` to ``classes_to``
  classes (default ``padded_size(K, CLASS_PADS)``)."""
  d, k = task.dim, task.num_classes
  dp = padded_size(d) if dim_to is None else max(d, dim_to)
  kp = padded_size(k, CLASS_PADS) if classes_to is None else max(k, classes_to)
  pad = lambda a: jnp.pad(jnp.asarray(a, jnp.float32), ((0, 0), (0, 0), (0, dp - d)))
  lp = np.full(kp, _LOG_ZERO, np.float32)
  lp[:k] = np.log(task.prior)
  return pad(train.x), pad(test.x), jnp.asarray(lp), jnp.asarray([d, k], jnp.int32)


def _check_samples(task: Task, train: Sample, test: Sample, cfg: Config, concat: bool):
  for name, s in (("train", train), ("test", test)):
    if s.x.ndim != 3 or s.y.ndim != 2 or s.x.shape[:2] != s.y.shape:
      raise ValueError(f"`{name}` must be a Sample stacked over seeds: x [S, n, d], y [S, n]; "
                       f"got x {tuple(s.x.shape)}, y {tuple(s.y.shape)}.")
  if train.x.shape[0] != test.x.shape[0]:
    raise ValueError(f"`train` and `test` must hold the same number of seeds, got "
                     f"{train.x.shape[0]} and {test.x.shape[0]}.")
  if train.x.shape[2] != task.dim or test.x.shape[2] != task.dim:
    raise ValueError(f"samples must have dim {task.dim} (the task's), got "
                     f"{train.x.shape[2]} / {test.x.shape[2]}.")
  n_fit, _ = _split_sizes(train.x.shape[1], cfg)
  if cfg.batch_size > n_fit:
    raise ValueError(f"`batch_size` ({cfg.batch_size}) must not exceed the training split "
                     f"({n_fit} of {train.x.shape[1]} samples after holding out "
                     f"val_fraction={cfg.val_fraction}).")
  if concat and cfg.batch_size > test.x.shape[1]:
    raise ValueError(f"`batch_size` ({cfg.batch_size}) must not exceed the test sample "
                     f"({test.x.shape[1]}).")


def run_training(training: str, task: Task, train: Sample, test: Sample, key: Array,
                 cfg: Config) -> tuple[dict[str, Estimate], float]:
  """Trains critic/objective ``training`` (a key of the trainings table) for all seeds at
  once; returns reading-name -> Estimate (all sharing the call's wall time) and the time."""
  critic, objective = _TRAININGS[training]
  _check_samples(task, train, test, cfg, critic == "concat")
  t0 = time.perf_counter()
  keys = jax.random.split(key, train.x.shape[0])
  x, xt, lp, sizes = pad_inputs(task, train, test)
  out = _train_and_read(keys, x, train.y, xt, test.y, lp, sizes, critic=critic,
                        objective=objective, cfg=cfg)
  out = jax.block_until_ready(out)
  wall = time.perf_counter() - t0
  return {k: Estimate(np.asarray(v[0], np.float64), np.asarray(v[1], np.float64), wall)
          for k, v in out.items()}, wall


# ----------------------------------------------------------------------------------------
# Oracles, plug-in, kNN.
# ----------------------------------------------------------------------------------------


def oracle(bound: str, critic: str, task: Task, test: Sample, cfg: Config) -> Estimate:
  """Bound ``bound`` on the test sample with the exact PMI as critic (no training)."""
  return oracles([f"oracle:{bound}/{critic}"], task, test, cfg)[f"oracle:{bound}/{critic}"]


def oracles(names, task: Task, test: Sample, cfg: Config) -> dict[str, Estimate]:
  """Several ``oracle:<bound>/<critic>`` names in one compiled program (they share the
  exact [n, K] PMI matrix); each Estimate carries the program's wall time."""
  parsed = {n: n[len("oracle:"):].split("/") for n in names}
  if any(c == "concat" for _, c in parsed.values()) and cfg.batch_size > test.x.shape[1]:
    raise ValueError(f"`batch_size` ({cfg.batch_size}) must not exceed the test sample "
                     f"({test.x.shape[1]}).")
  t0 = time.perf_counter()
  lp = jnp.asarray(np.log(task.prior), jnp.float32)

  def one(z, y):
    m = task.pmi_matrix(z)
    out = {}
    for name, (bound, critic) in parsed.items():
      mb = m + (1.0 if bound == "nwj" else 0.0)  # NWJ's optimal critic is 1 + PMI
      if critic == "label":
        kind = "classifier" if bound == "infonce" else bound
        out[name] = label_reading(kind, mb, y, lp, cfg.clip, jnp.exp(lp))
      else:
        out[name] = _oracle_concat(bound, mb, y, cfg)
    return out

  res = jax.block_until_ready(jax.jit(jax.vmap(one))(test.z, test.y))
  wall = time.perf_counter() - t0
  return {n: Estimate(np.asarray(e, np.float64), np.asarray(se, np.float64), wall)
          for n, (e, se) in res.items()}


def _oracle_concat(bound, m, y, cfg):
  """Concat bounds with f(x_i, y_j) = PMI(x_i, y_j) read off the [n, K] PMI matrix."""
  n = m.shape[0]
  batch = cfg.batch_size
  nb = n // batch
  mb = m[:nb * batch].reshape(nb, batch, -1)
  yb = y[:nb * batch].reshape(nb, batch)
  s = jax.vmap(lambda mm, yy: mm[:, yy])(mb, yb)  # [nb, B, B]
  if bound == "demi":
    return _mean_se(jax.vmap(jnp.diagonal)(s).reshape(-1))
  if bound == "smile":
    diag = jax.vmap(jnp.diagonal)(s)
    vals = jnp.mean(diag, 1) - jax.vmap(_offdiag_mean_exp_log)(jnp.clip(s, -cfg.clip, cfg.clip))
  else:
    vals = jax.vmap(functools.partial(concat_objective, bound))(s)
  return jnp.mean(vals), jnp.std(vals, ddof=1) / jnp.sqrt(jnp.maximum(nb, 1))


def _ledoit_wolf(resid: np.ndarray) -> np.ndarray:
  from sklearn.covariance import ledoit_wolf  # pylint: disable=g-import-not-at-top
  cov, _ = ledoit_wolf(resid, assume_centered=True)
  return cov


def gaussian_plugin(task: Task, train: Sample, test: Sample, covariance: str = "shared"
                    ) -> Estimate:
  """Plug-in Gaussian class conditionals fitted on ``train`` (class means; a shared or
  per-class Ledoit-Wolf covariance), read on ``test`` as PMI = log q(y|x) - log p_y with the
  known prior. A class absent from a seed's training sample gets the pooled mean."""
  if covariance not in ("shared", "per_class"):
    raise ValueError(f"`covariance` must be 'shared' or 'per_class', got {covariance!r}.")
  t0 = time.perf_counter()
  k = task.num_classes
  log_prior = np.log(task.prior)
  ests, ses = [], []
  for x, y, xt, yt in zip(np.asarray(train.x, np.float64), np.asarray(train.y),
                          np.asarray(test.x, np.float64), np.asarray(test.y)):
    counts = np.bincount(y, minlength=k)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, y, x)
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], x.mean(0))
    resid = x - means[y]
    pooled = _ledoit_wolf(resid)
    loglik = np.empty((xt.shape[0], k))
    covs = [pooled] * k
    if covariance == "per_class":
      covs = [_ledoit_wolf(resid[y == c]) if counts[c] > x.shape[1] else pooled for c in range(k)]
    for c in range(k) if covariance == "per_class" else [None]:
      cov = pooled if c is None else covs[c]
      chol = np.linalg.cholesky(cov)
      logdet = 2 * np.sum(np.log(np.diag(chol)))
      cls = range(k) if c is None else [c]
      white_x = np.linalg.solve(chol, xt.T).T
      white_mu = np.linalg.solve(chol, means[list(cls)].T).T
      sq = (np.sum(white_x**2, 1)[:, None] + np.sum(white_mu**2, 1)[None, :]
            - 2 * white_x @ white_mu.T)
      loglik[:, list(cls)] = -0.5 * sq - 0.5 * logdet
    joint = loglik + log_prior
    log_post = joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)
    v = log_post[np.arange(len(yt)), yt] - log_prior[yt]
    ests.append(v.mean())
    ses.append(v.std(ddof=1) / np.sqrt(len(v)))
  return Estimate(np.asarray(ests), np.asarray(ses), time.perf_counter() - t0)


def knn_estimate(task: Task, train: Sample, test: Sample, k: int = 3) -> Estimate:
  """Ross (2014) kNN on train and test pooled (it has no training step), per seed."""
  del task
  t0 = time.perf_counter()
  out = [knn.ross_mi(np.concatenate([a, b]), np.concatenate([c, d]), k)
         for a, b, c, d in zip(np.asarray(train.x), np.asarray(test.x), np.asarray(train.y),
                               np.asarray(test.y))]
  est, se = zip(*out)
  return Estimate(np.asarray(est), np.asarray(se), time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------
# The registry: name -> (training id or None, reading).
# ----------------------------------------------------------------------------------------

_NEURAL = {
    "classifier": ("label/ce", "classifier"), "classifier_t": ("label/ce", "classifier_t"),
    "infonce/label": ("label/ce", "infonce"), "nwj/label": ("label/nwj", "nwj"),
    "dv/label": ("label/dv", "dv"), "mine/label": ("label/mine", "mine"),
    "smile/label": ("label/js", "smile"),
    "demi/label": ("label/js", "demi"), "infonce/concat": ("concat/infonce", "infonce"),
    "nwj/concat": ("concat/nwj", "nwj"), "dv/concat": ("concat/dv", "dv"),
    "mine/concat": ("concat/mine", "mine"),
    "smile/concat": ("concat/js", "smile"), "demi/concat": ("concat/js", "demi"),
}
_BOUNDS = ("infonce", "nwj", "dv", "mine", "smile", "demi")
ORACLES = tuple(f"oracle:{b}/{c}" for c in ("label", "concat") for b in _BOUNDS)
_OTHER = ("gaussian_lda", "gaussian_qda", "knn")
#: Every estimator name.
ESTIMATORS = tuple(_NEURAL) + _OTHER + ORACLES


def check_names(names) -> tuple[str, ...]:
  names = tuple(names)
  bad = [n for n in names if n not in ESTIMATORS]
  if bad:
    raise ValueError(f"unknown estimator name(s) {bad}; expected names from {list(ESTIMATORS)}.")
  return names


def run_estimators(names, task: Task, train: Sample, test: Sample, key: Array,
                   cfg: Config = Config()) -> dict[str, Estimate]:
  """Runs the estimators ``names``; neural ones sharing a training are trained once (their
  ``wall_s`` is that training's). Keys: one per training, derived from ``key`` by name."""
  names = check_names(names)
  _check_samples(task, train, test, cfg, any(_NEURAL.get(n, ("",))[0].startswith("concat")
                                              for n in names))
  out: dict[str, Estimate] = {}
  trained: dict[str, dict[str, Estimate]] = {}
  exact = oracles([n for n in names if n.startswith("oracle:")], task, test, cfg) \
      if any(n.startswith("oracle:") for n in names) else {}
  for name in names:
    if name in _NEURAL:
      training, reading = _NEURAL[name]
      if training not in trained:
        sub = jax.random.fold_in(key, sorted(_TRAININGS).index(training))
        trained[training], _ = run_training(training, task, train, test, sub, cfg)
      out[name] = trained[training][reading]
    elif name.startswith("oracle:"):
      out[name] = exact[name]
    elif name == "knn":
      out[name] = knn_estimate(task, train, test, cfg.knn_k)
    else:
      out[name] = gaussian_plugin(task, train, test,
                                  "shared" if name == "gaussian_lda" else "per_class")
  return out


def estimate(name: str, task: Task, train: Sample, test: Sample, key: Array,
             cfg: Config = Config()) -> Estimate:
  """One estimator by name (the common signature)."""
  return run_estimators([name], task, train, test, key, cfg)[name]
