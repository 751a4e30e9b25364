"""Softmax and PC-softmax as point-wise / mutual-information estimators (nats).

A classifier with logits ``z = f(x)`` trained by cross-entropy estimates the
posterior ``q(y|x)``; the point-wise mutual information (PMI) of an example is
then ``log q(y|x) - log p(y)`` and its average over held-out data estimates
I(X;Y), a Barber-Agakov variational *lower* bound that is tight when
``q(y|x) = p(y|x)`` (Qin, Kim & Gedeon, arXiv 1911.10688).

* Balanced data (``p(y) = 1/K``): ``PMI = log softmax_y(z) + log K``.
* PC-softmax (probability-corrected softmax) for a class prior ``p``::

      s~_y(z) = exp(z_y) / sum_k p_k exp(z_k)
      log s~_y(z) = z_y - logsumexp_k(z_k + log p_k)

  A network trained by the NLL of ``s~`` satisfies ``softmax(z + log p) =
  q(y|x)`` at its optimum, so ``log s~_y = log q(y|x) - log p_y`` is its PMI
  estimate. The loss is gradient-identical to cross-entropy on ``z + log p``
  (the "logit-adjusted" / "balanced softmax" loss). Predict with ``argmax z``.

Conventions: ``logits`` has shape ``[..., K]`` (any floating dtype; results are
computed in ``float32`` or wider), ``labels`` has shape ``[...]`` (integer, in
``[0, K)``), ``prior`` has shape ``[K]`` (a probability vector; zero entries
are allowed and mean "class never occurs"). All outputs are in nats. Every
function is pure and works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.

Bad input
---------
Shape and dtype errors are static, so they raise ``ValueError`` (naming the
argument) both eagerly and while tracing under ``jit``. Value errors -- a
``prior`` that is negative, non-finite or does not sum to 1 within ``1e-5``,
``labels`` outside ``[0, K)`` -- raise ``ValueError`` when the values are
concrete (NumPy arrays or ``jax.Array`` s outside any transformation; the
check copies ``labels`` and ``prior`` to the host, so hot loops belong under
``jit``). Under
``jit``/``vmap`` the values are tracers and nothing can raise; then:

* out-of-range labels give ``NaN`` for those examples (never a silently
  clamped class), so ``mutual_information`` becomes ``NaN``;
* a negative prior entry gives ``NaN`` (``log`` of a negative number);
* a prior that does not sum to 1 is used as given, which shifts every
  PC-softmax PMI by ``-log(sum(prior))``.

To get these errors *inside* ``jit``, wrap the computation with :func:`checked`
(``jax.experimental.checkify``): the estimators register their value checks
with ``checkify.debug_check``, which costs nothing unless checkified::

    err, mi = jax.jit(checked(mutual_information))(logits, labels, prior)
    err.throw()  # ValueError (checkify.JaxRuntimeError) naming the argument
"""

from __future__ import annotations

import functools
import statistics
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.typing import ArrayLike, DTypeLike

from infocam_jax import _checks

Array = jax.Array
Objective = Literal["pc_softmax", "softmax"]

_OBJECTIVES = ("pc_softmax", "softmax")
PRIOR_SUM_ATOL = 1e-5


# ----------------------------------------------------------------------------
# Argument checks. Static (shape/dtype) checks always raise. Value checks raise
# eagerly for concrete values and, for traced values, register
# ``checkify.debug_check`` s (dropped unless the caller uses `checked`).
# ----------------------------------------------------------------------------


def _as_logits(logits: ArrayLike, name: str = "logits") -> Array:
  _checks.require_floating(logits, name)
  if np.ndim(logits) < 1:
    raise ValueError(
        f"`{name}` must have shape [..., K] with at least one dimension, got a scalar.")
  if np.shape(logits)[-1] < 1:
    raise ValueError(f"`{name}` must have at least one class (last axis K >= 1), got shape "
                     f"{tuple(np.shape(logits))}.")
  logits = jnp.asarray(logits)
  return logits.astype(jnp.promote_types(logits.dtype, jnp.float32))


def _check_prior_values(prior: ArrayLike, name: str = "prior") -> None:
  """Eager value checks of a probability vector (skipped for tracers)."""
  if not _checks.is_concrete(prior):
    return
  p = np.asarray(prior, dtype=np.float64)
  if not np.all(np.isfinite(p)):
    raise ValueError(f"`{name}` must be finite, got {p}.")
  if np.any(p < 0):
    raise ValueError(
        f"`{name}` must be non-negative (a probability vector), got min {p.min():.6g}.")
  total = float(p.sum())
  if abs(total - 1.0) > PRIOR_SUM_ATOL:
    raise ValueError(f"`{name}` must sum to 1 within {PRIOR_SUM_ATOL:g}, got sum {total:.8g}. "
                     "Use `prior_from_counts(counts)` to normalise class counts.")


def _as_prior(prior: ArrayLike, num_classes: int, dtype: Any, name: str = "prior") -> Array:
  """Validates a prior [K] and returns it as ``dtype``."""
  if not jnp.issubdtype(_checks.dtype_of(prior), jnp.number):
    raise ValueError(f"`{name}` must be a numeric array, got dtype {_checks.dtype_of(prior)}.")
  if tuple(np.shape(prior)) != (num_classes,):
    raise ValueError(f"`{name}` must have shape [K] = ({num_classes},) to match the logits, "
                     f"got shape {tuple(np.shape(prior))}.")
  if _checks.is_concrete(prior):
    _check_prior_values(prior, name)
    return jnp.asarray(prior, dtype)
  prior = jnp.asarray(prior).astype(dtype)
  checkify.debug_check(
      jnp.all(jnp.isfinite(prior)) & jnp.all(prior >= 0),
      f"`{name}` must be finite and non-negative (a probability vector), got min {{m}}.",
      m=jnp.min(prior))
  checkify.debug_check(
      jnp.abs(jnp.sum(prior) - 1) <= PRIOR_SUM_ATOL,
      f"`{name}` must sum to 1 within {PRIOR_SUM_ATOL:g}, got sum {{s}}.",
      s=jnp.sum(prior))
  return prior


def _as_labels(labels: ArrayLike, batch_shape: tuple[int, ...], num_classes: int,
               where: Array | None = None) -> Array:
  _checks.require_integer(labels, "labels")
  if tuple(np.shape(labels)) != tuple(batch_shape):
    raise ValueError(f"`labels` must have shape logits.shape[:-1] = {tuple(batch_shape)}, "
                     f"got shape {tuple(np.shape(labels))}.")
  if _checks.is_concrete(labels) and (where is None or _checks.is_concrete(where)):
    lab = np.asarray(labels)
    if where is not None:
      lab = lab[np.asarray(where)]
    _checks.require_labels_in_range(lab, num_classes, "labels")
    return jnp.asarray(labels)
  labels = jnp.asarray(labels)
  valid = (labels >= 0) & (labels < num_classes)
  if where is not None:
    valid = valid | ~where
  checkify.debug_check(
      jnp.all(valid),
      f"`labels` must lie in [0, {num_classes - 1}] (num_classes={num_classes}), got values in "
      "[{lo}, {hi}].",
      lo=jnp.min(labels, initial=jnp.iinfo(labels.dtype).max),
      hi=jnp.max(labels, initial=jnp.iinfo(labels.dtype).min))
  return labels


def _as_where(where: ArrayLike | None, batch_shape: tuple[int, ...]) -> Array | None:
  if where is None:
    return None
  if _checks.dtype_of(where) != np.bool_:
    raise ValueError(f"`where` must be a boolean mask, got dtype {_checks.dtype_of(where)}.")
  if tuple(np.shape(where)) != tuple(batch_shape):
    raise ValueError(f"`where` must have shape logits.shape[:-1] = {tuple(batch_shape)}, got shape "
                     f"{tuple(np.shape(where))}.")
  return jnp.asarray(where)


def _check_objective(objective: str | None, prior: ArrayLike | None) -> str:
  """The objective to use; ``objective`` is required whenever a prior is given."""
  if objective is None:
    if prior is not None:
      raise ValueError(
          "`objective` is required when `prior` is given: objective='pc_softmax' for logits "
          "trained with PC-softmax (log s~_y), objective='softmax' for logits trained with "
          "plain softmax cross-entropy (log softmax_y - log p_y).")
    return "softmax"  # uniform prior: both objectives give log softmax_y + log K
  if objective not in _OBJECTIVES:
    raise ValueError(f"`objective` must be one of {_OBJECTIVES}, got {objective!r}.")
  return objective


# ----------------------------------------------------------------------------
# Jitted kernels (inputs already validated). Eager calls compile once per
# shape; under an outer jit they are inlined.
# ----------------------------------------------------------------------------


def _pick(values: Array, labels: Array) -> Array:
  """values[..., labels]; NaN where a label is outside [0, K) (never clamped)."""
  num_classes = values.shape[-1]
  valid = (labels >= 0) & (labels < num_classes)
  safe = jnp.where(valid, labels, 0).astype(jnp.int32)
  picked = jnp.take_along_axis(values, safe[..., None], axis=-1)[..., 0]
  return jnp.where(valid, picked, jnp.nan)


def _log_pc_softmax_impl(logits: Array, prior: Array) -> Array:
  return logits - jax.nn.logsumexp(logits + jnp.log(prior), axis=-1, keepdims=True)


@functools.partial(jax.jit, static_argnames="objective")
def _pmi_kernel(logits: Array, labels: Array, prior: Array | None, objective: str) -> Array:
  if prior is None:
    log_k = jnp.log(jnp.asarray(logits.shape[-1], logits.dtype))
    return _pick(jax.nn.log_softmax(logits, axis=-1), labels) + log_k
  if objective == "pc_softmax":
    return _pick(_log_pc_softmax_impl(logits, prior), labels)
  return _pick(jax.nn.log_softmax(logits, axis=-1) - jnp.log(prior), labels)


@jax.jit
def _mean_with_stderr_kernel(values: Array, where: Array | None) -> MIEstimate:
  if where is None:
    where = jnp.ones(values.shape, bool)
  n = jnp.sum(where, dtype=jnp.int32)
  nf = n.astype(values.dtype)
  mean = jnp.sum(jnp.where(where, values, 0)) / nf
  m2 = jnp.sum(jnp.where(where, jnp.square(values - mean), 0))  # two-pass: accurate in float32
  return MIEstimate(mean, _stderr_from_m2(m2, nf).astype(values.dtype), n)


# ----------------------------------------------------------------------------
# PC-softmax.
# ----------------------------------------------------------------------------


def prior_from_counts(counts: ArrayLike, dtype: DTypeLike = jnp.float32) -> Array:
  """Class prior ``p_k = n_k / sum_j n_j`` from per-class counts.

  Args:
    counts: [K] non-negative counts (integer or float), not all zero.
    dtype: floating dtype of the result.

  Returns:
    [K] probability vector. Concrete counts are normalised in float64 and then
    rounded, so the result sums to 1 to within the dtype's precision.

  Example:
    >>> import infocam_jax as ij
    >>> print(ij.prior_from_counts([50, 150, 300]))
    [0.1 0.3 0.6]
  """
  if not jnp.issubdtype(_checks.dtype_of(counts), jnp.number):
    raise ValueError(f"`counts` must be a numeric array, got dtype {_checks.dtype_of(counts)}.")
  _checks.require_ndim(counts, 1, "counts", "[K] per-class counts")
  if np.shape(counts)[0] < 1:
    raise ValueError("`counts` must hold at least one class, got shape (0,).")
  if _checks.is_concrete(counts):
    c = np.asarray(counts, dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.any(c < 0):
      raise ValueError(f"`counts` must be finite and non-negative, got {c}.")
    if c.sum() <= 0:
      raise ValueError("`counts` must not all be zero.")
    return jnp.asarray(c / c.sum(), dtype=dtype)
  traced = jnp.asarray(counts).astype(dtype)
  checkify.debug_check(jnp.all(traced >= 0) & (jnp.sum(traced) > 0),
                       "`counts` must be non-negative and not all zero.")
  return traced / jnp.sum(traced)


def pc_log_softmax(logits: ArrayLike, prior: ArrayLike) -> Array:
  """log PC-softmax: ``log s~_k = z_k - logsumexp_j(z_j + log p_j)``.

  Stable for logits of any magnitude (no ``exp`` of raw logits). Satisfies
  ``sum_k p_k exp(log s~_k) = 1``; with a uniform prior it equals
  ``log_softmax(z) + log K``.

  Args:
    logits: [..., K] floating.
    prior: [K] class prior (probability vector).

  Returns:
    [..., K] log PC-softmax in nats (float32, or float64 for float64 logits).

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> logits, prior = jnp.array([2.0, 0.0]), jnp.array([0.8, 0.2])
    >>> print(ij.pc_log_softmax(logits, prior))  # z_k - log(0.8 e^2 + 0.2)
    [ 0.1899 -1.8101 ]
  """
  logits = _as_logits(logits)
  prior = _as_prior(prior, logits.shape[-1], logits.dtype)
  return _log_pc_softmax_kernel(logits, prior)


_log_pc_softmax_kernel = jax.jit(_log_pc_softmax_impl)


def pc_softmax(logits: ArrayLike, prior: ArrayLike) -> Array:
  """PC-softmax ``s~_k = exp(z_k) / sum_j p_j exp(z_j)``; [..., K].

  Not a distribution over k (``sum_k s~_k != 1``); ``sum_k p_k s~_k = 1`` and
  ``0 <= s~_k <= 1 / p_k``. ``s~_y`` estimates ``p(y|x) / p(y)``.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> prior = jnp.array([0.8, 0.2])
    >>> s = ij.pc_softmax(jnp.array([2.0, 0.0]), prior)
    >>> print(s, float(jnp.sum(prior * s)))
    [1.2091 0.1636] 1.0
  """
  return jnp.exp(pc_log_softmax(logits, prior))


def pc_softmax_cross_entropy_with_integer_labels(logits: ArrayLike, labels: ArrayLike,
                                                 prior: ArrayLike) -> Array:
  """Per-example NLL of PC-softmax for integer labels, ``-log s~_y``; [...] in nats.

  The PC-softmax training loss (named as ``optax``'s
  ``softmax_cross_entropy_with_integer_labels``; :func:`pc_softmax_cross_entropy`
  takes one-hot or probability labels). Equals ``softmax_cross_entropy(z +
  log p, y) + log p_y``, so its gradient with respect to the logits is that of
  the logit-adjusted cross-entropy
  ``optax.softmax_cross_entropy_with_integer_labels(logits + log(prior),
  labels)``. With a uniform prior it is ``CE(z, y) - log K``. It equals
  ``-pmi(logits, labels, prior, objective="pc_softmax")``; its mean is
  ``-(MI estimate)``.

  Args:
    logits: [..., K] floating.
    labels: [...] integer in [0, K).
    prior: [K] class prior.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    >>> loss = ij.pc_softmax_cross_entropy_with_integer_labels(
    ...     logits, jnp.array([0, 1]), prior=jnp.array([0.8, 0.2]))
    >>> print(loss)
    [-0.1899 -0.7046]
  """
  return -pmi(logits, labels, prior, objective="pc_softmax")


def pc_softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, prior: ArrayLike) -> Array:
  """Per-example PC-softmax cross-entropy for one-hot or probability labels; [...] in nats.

  ``-sum_k labels_k log s~_k``, the PC-softmax counterpart of
  ``optax.softmax_cross_entropy`` (for integer labels use
  :func:`pc_softmax_cross_entropy_with_integer_labels`). With one-hot labels
  the two are equal.

  Args:
    logits: [..., K] floating.
    labels: [..., K] floating, each row a probability distribution over the
      K classes (non-negative, summing to 1), e.g. ``jax.nn.one_hot(y, K)``.
    prior: [K] class prior.

  Example:
    >>> import jax, jax.numpy as jnp, infocam_jax as ij
    >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    >>> one_hot = jax.nn.one_hot(jnp.array([0, 1]), 2)
    >>> print(ij.pc_softmax_cross_entropy(logits, one_hot, prior=jnp.array([0.8, 0.2])))
    [-0.1899 -0.7046]
  """
  logits = _as_logits(logits)
  if not jnp.issubdtype(_checks.dtype_of(labels), jnp.floating) or (
      tuple(np.shape(labels)) != tuple(logits.shape)):
    raise ValueError(
        f"`labels` must be floating with the logits' shape {tuple(logits.shape)} (one-hot or "
        f"probabilities), got dtype {_checks.dtype_of(labels)} and shape "
        f"{tuple(np.shape(labels))}; for integer labels use "
        "pc_softmax_cross_entropy_with_integer_labels.")
  if _checks.is_concrete(labels):
    lab = np.asarray(labels, np.float64)
    if not np.all(np.isfinite(lab)) or np.any(lab < 0) or (
        lab.size and np.max(np.abs(lab.sum(-1) - 1)) > 1e-4):
      raise ValueError("`labels` must hold probability distributions over the last axis "
                       "(finite, non-negative, each row summing to 1).")
  labels = jnp.asarray(labels).astype(logits.dtype)
  prior = _as_prior(prior, logits.shape[-1], logits.dtype)
  return _pc_cross_entropy_kernel(logits, labels, prior)


@jax.jit
def _pc_cross_entropy_kernel(logits: Array, labels: Array, prior: Array) -> Array:
  log_s = _log_pc_softmax_impl(logits, prior)
  return -jnp.sum(jnp.where(labels > 0, labels * log_s, 0), axis=-1)


# ----------------------------------------------------------------------------
# PMI and MI.
# ----------------------------------------------------------------------------


def pmi(logits: ArrayLike, labels: ArrayLike, prior: ArrayLike | None = None, *,
        objective: Objective | None = None) -> Array:
  """Per-example point-wise mutual information estimate ``log q(y|x) / p(y)``.

  * ``prior=None`` (balanced data, ``p_y = 1/K``): ``log softmax_y(z) + log K``.
  * ``prior`` given, ``objective="pc_softmax"`` (logits trained with
    PC-softmax, i.e. ``q = softmax(z + log p)``): ``log s~_y(z)``.
  * ``prior`` given, ``objective="softmax"`` (logits trained with plain
    softmax-CE on data with class frequencies ``prior``, i.e. ``q =
    softmax(z)``): ``log softmax_y(z) - log p_y``.

  Using ``prior=None`` for a plain-softmax model trained on imbalanced data
  (``log K + log softmax_y``) is the mistake PC-softmax fixes: even for the
  Bayes-optimal classifier it overestimates the MI by ``log K - H(Y)`` on
  average.

  Args:
    logits: [..., K] floating.
    labels: [...] integer in [0, K).
    prior: [K] class prior or ``None`` (uniform).
    objective: the objective the logits were trained with (see above):
      required when ``prior`` is given (a ``ValueError`` otherwise, since
      the two readings differ), irrelevant when it is ``None``.

  Returns:
    [...] PMI estimates in nats.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> logits, labels = jnp.array([[2.0, 0.0], [0.0, 1.0]]), jnp.array([0, 1])
    >>> print(ij.pmi(logits, labels))  # balanced: log softmax_y + log 2
    [0.5662 0.3799]
    >>> prior = jnp.array([0.8, 0.2])
    >>> print(ij.pmi(logits, labels, prior, objective="pc_softmax"))
    [0.1899 0.7046]
    >>> print(ij.pmi(logits, labels, prior, objective="softmax"))
    [0.0962 1.2962 ]
  """
  kind = _check_objective(objective, prior)
  logits = _as_logits(logits)
  num_classes = logits.shape[-1]
  labels = _as_labels(labels, logits.shape[:-1], num_classes)
  if prior is not None:
    prior = _as_prior(prior, num_classes, logits.dtype)
  return _pmi_kernel(logits, labels, prior, kind)


class ConfidenceInterval(NamedTuple):
  """A two-sided interval ``(low, high)`` in nats; prints as ``[low, high] nats``.

  >>> print(ConfidenceInterval(jnp.float32(1.25), jnp.float32(1.5)))
  [1.2500, 1.5000] nats
  """
  low: Array
  high: Array

  def __str__(self) -> str:
    return f"[{float(self.low):.4f}, {float(self.high):.4f}] nats"


class MIEstimate(NamedTuple):
  """A Monte-Carlo mean with its i.i.d. standard error (a pytree).

  Attributes:
    estimate: the mean (nats).
    stderr: ``std(values, ddof=1) / sqrt(n)``, the standard error of the mean
      for i.i.d. samples (nats). It measures sampling noise only: it does *not*
      include the estimator's bias (for a trained classifier the estimate is a
      variational lower bound; its gap is the expected KL between the true and
      the model posterior). ``NaN`` when ``num_samples < 2``.
    num_samples: the number of values averaged (int32).

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> a = ij.mean_with_stderr(jnp.array([1.0, 2.0, 3.0]))
    >>> b = ij.mean_with_stderr(jnp.array([4.0, 5.0]))
    >>> print(a.merge(b))  # pooled: the estimate over all five values
    3.0000 ± 0.7071 nats (n=5)
  """
  estimate: Array
  stderr: Array
  num_samples: Array

  def confidence_interval(self, level: float = 0.95) -> ConfidenceInterval:
    """Normal-approximation two-sided interval ``estimate -/+ z * stderr`` (nats).

    >>> mi = MIEstimate(jnp.float32(1.5), jnp.float32(0.01), jnp.int32(100))
    >>> print(mi, mi.confidence_interval(0.95))
    1.5000 ± 0.0100 nats (n=100) [1.4804, 1.5196] nats
    """
    if not 0.0 < level < 1.0:
      raise ValueError(f"`level` must lie in (0, 1), got {level}.")
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    return ConfidenceInterval(self.estimate - z * self.stderr, self.estimate + z * self.stderr)

  def merge(self, other: MIEstimate) -> MIEstimate:
    """Pools two estimates over disjoint samples (e.g. eval batches).

    Exact (Chan et al.'s parallel mean/variance update): merging per-batch
    estimates equals the estimate over the concatenated values up to rounding.
    An empty side (``num_samples == 0``) is ignored.
    """
    n_a = jnp.asarray(self.num_samples).astype(jnp.float32)
    n_b = jnp.asarray(other.num_samples).astype(jnp.float32)
    n = n_a + n_b
    mean_a = jnp.where(n_a > 0, self.estimate, 0)
    mean_b = jnp.where(n_b > 0, other.estimate, 0)
    delta = mean_b - mean_a
    frac_b = jnp.where(n > 0, n_b / jnp.maximum(n, 1), 0)
    mean = jnp.where(n > 0, mean_a + delta * frac_b, jnp.nan)
    m2 = _m2(self) + _m2(other) + jnp.square(delta) * n_a * frac_b
    count = jnp.asarray(self.num_samples) + jnp.asarray(other.num_samples)
    return MIEstimate(mean.astype(jnp.result_type(self.estimate)),
                      _stderr_from_m2(m2, n).astype(jnp.result_type(self.stderr)),
                      count.astype(jnp.int32))

  def __str__(self) -> str:
    return (f"{float(self.estimate):.4f} ± {float(self.stderr):.4f} nats "
            f"(n={int(self.num_samples)})")


def _m2(e: MIEstimate) -> Array:
  """Sum of squared deviations recovered from (stderr, n); 0 for n <= 1."""
  n = jnp.asarray(e.num_samples).astype(jnp.float32)
  return jnp.where(n > 1, jnp.square(e.stderr) * n * (n - 1), 0.0)


def _stderr_from_m2(m2: Array, n: Array) -> Array:
  return jnp.where(n > 1, jnp.sqrt(m2 / jnp.maximum(n - 1, 1) / jnp.maximum(n, 1)), jnp.nan)


def mean_with_stderr(values: ArrayLike, where: ArrayLike | None = None) -> MIEstimate:
  """Mean of ``values`` (all axes) with its i.i.d. standard error.

  Two-pass (mean, then centred squares), so it is accurate in float32 for
  millions of values. ``where`` (bool, same shape) selects the values to use;
  with none selected the estimate is NaN.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> e = ij.mean_with_stderr(jnp.array([1.0, 2.0, 3.0, 10.0]), where=jnp.array([1, 1, 1, 0]) > 0)
    >>> float(e.estimate), float(e.stderr), int(e.num_samples)
    (2.0, 0.5773..., 3)
  """
  _checks.require_floating(values, "values")
  values = jnp.asarray(values)
  values = values.astype(jnp.promote_types(values.dtype, jnp.float32))
  return _mean_with_stderr_kernel(values, _as_where(where, values.shape))


def mutual_information(logits: ArrayLike, labels: ArrayLike, prior: ArrayLike | None = None, *,
                       objective: Objective | None = None,
                       where: ArrayLike | None = None) -> MIEstimate:
  """MI estimate ``mean(pmi)`` over all examples, with its standard error.

  Use held-out data drawn from the same distribution as the training data
  (class frequencies ``prior``). The estimate is a variational lower bound on
  I(X;Y) (tight when the classifier's posterior is exact); ``stderr`` is the
  i.i.d. standard error ``std(pmi, ddof=1) / sqrt(n)`` of the mean and does not
  include that bias. See :func:`pmi` for ``prior`` and ``objective``.

  Args:
    logits: [..., K] floating.
    labels: [...] integer in [0, K) (entries masked out by ``where`` may hold
      anything, e.g. padding).
    prior: [K] class prior, or ``None`` for balanced data.
    objective: "pc_softmax" or "softmax", the objective the logits were
      trained with; required when ``prior`` is given.
    where: optional [...] bool mask of the examples to include (e.g. the
      ``mask`` of a padded evaluation batch).

  Returns:
    ``MIEstimate(estimate, stderr, num_samples)`` in nats. Pool several
    batches with ``MIEstimate.merge``.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    >>> mi = ij.mutual_information(logits, jnp.array([0, 1, 0]))
    >>> print(f"{float(mi.estimate):.4f} +- {float(mi.stderr):.4f} nats, n={int(mi.num_samples)}")
    0.5302 +- 0.0785 nats, n=3
  """
  kind = _check_objective(objective, prior)
  logits = _as_logits(logits)
  where = _as_where(where, logits.shape[:-1])
  num_classes = logits.shape[-1]
  labels = _as_labels(labels, logits.shape[:-1], num_classes, where)
  if prior is not None:
    prior = _as_prior(prior, num_classes, logits.dtype)
  return _mutual_information_kernel(logits, labels, prior, where, kind)


@functools.partial(jax.jit, static_argnames="objective")
def _mutual_information_kernel(logits, labels, prior, where, objective):
  if where is not None:
    labels = jnp.where(where, labels, 0)  # padding labels may be anything
  return _mean_with_stderr_kernel(_pmi_kernel(logits, labels, prior, objective), where)


def checked(fn: Callable[..., Any], errors: Any = checkify.user_checks) -> Callable[..., Any]:
  """Checkified version of ``fn``: value errors are returned, also under jit.

  ``fn`` is any function that calls the estimators of this module (or one of
  them). The returned function returns ``(error, fn(...))``; ``error.throw()``
  raises a ``ValueError`` (``checkify.JaxRuntimeError``) whose message names
  the bad argument, and ``error.get()`` returns the message or ``None``. It
  composes with ``jax.jit`` and ``jax.vmap`` in either order::

      err, mi = jax.jit(checked(mutual_information))(logits, labels, prior)
      err.throw()

  Args:
    fn: the function to check.
    errors: the checkify error set; the default (``user_checks``) reports
      the estimators' value checks and any ``checkify.check`` in ``fn``. Pass
      e.g. ``checkify.user_checks | checkify.nan_checks`` to also catch NaNs.

  Example:
    >>> import jax, jax.numpy as jnp, infocam_jax as ij
    >>> mi = jax.jit(ij.checked(ij.mutual_information))
    >>> err, _ = mi(jnp.zeros((2, 3)), jnp.array([0, 5]))   # label 5 is out of range
    >>> print(err.get().splitlines()[0])
    `labels` must lie in [0, 2] (num_classes=3), got values in [0, 5]...
  """
  return checkify.checkify(fn, errors=errors)
