"""Ground truth for class-conditional Gaussian data: exact PMI and Monte-Carlo MI (nats).

``p(x, y) = p_y N(x; mu_y, Sigma_y)`` with ``y`` in ``{0..K-1}`` and
``x`` in ``R^d``. Per sample the point-wise mutual information is exact,

    PMI(x; y) = log p(x|y) - log p(x),   log p(x) = logsumexp_k(log p_k + log p(x|k)),

and I(X;Y) = E[PMI] has no closed form; :meth:`GaussianMixture.mutual_information`
estimates it by Monte Carlo with an explicit PRNG key and reports the i.i.d.
standard error. Everything is float32 (see BUILD_NOTES.md for the float64
comparison) and jit/vmap-friendly; a ``GaussianMixture`` is a pytree.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from infocam_jax import _checks
from infocam_jax.estimators import MIEstimate, mean_with_stderr, _check_prior_values

Array = jax.Array

_LOG_2PI = math.log(2 * math.pi)
PAPER_MEAN_MULTIPLIERS = (0.0, 1.0, -1.0, 2.0, -2.0)
PAPER_IMBALANCED_WEIGHTS = (1, 2, 3, 4, 5)


@jax.tree_util.register_pytree_node_class
class GaussianMixture:
  """Class-conditional Gaussians ``p(x|k) = N(mu_k, Sigma_k)`` with prior ``p_k``.

  Attributes:
    means: [K, d] float32 class means.
    prior: [K] float32 class prior p(y) (a probability vector).
    covariance: float32 covariance, [d, d] when shared by all classes (the
      fast path) or [K, d, d] per class, as given to the constructor.
    scale_tril: lower Cholesky factor(s) of ``covariance``, same shape.

  Example:
    >>> import jax, infocam_jax as ij
    >>> gm = ij.GaussianMixture.paper(dim=2, balanced=False)   # the paper's 5 classes
    >>> x, y = gm.sample(jax.random.key(0), 1000)
    >>> x.shape, y.shape
    ((1000, 2), (1000,))
    >>> mi = gm.mutual_information(jax.random.key(1), 100_000)  # Monte Carlo, nats
    >>> bool(0 < mi.estimate < gm.label_entropy())
    True
  """

  def __init__(self, means: ArrayLike, prior: ArrayLike, covariance: ArrayLike | None = None):
    """Builds and validates the mixture (values are checked eagerly).

    Args:
      means: [K, d] class means.
      prior: [K] class prior, non-negative, summing to 1 within 1e-5.
      covariance: ``None`` (identity), [d, d] (shared) or [K, d, d]
        (per class); symmetric positive definite.
    """
    if not jnp.issubdtype(_checks.dtype_of(means), jnp.number):
      raise ValueError(f"`means` must be a numeric array, got dtype {_checks.dtype_of(means)}.")
    _checks.require_ndim(means, 2, "means", "[K, d]")
    num_classes, dim = np.shape(means)
    if num_classes < 1 or dim < 1:
      raise ValueError(f"`means` must have K >= 1 classes and d >= 1 dimensions, got shape "
                       f"{tuple(np.shape(means))}.")
    if tuple(np.shape(prior)) != (num_classes,):
      raise ValueError(f"`prior` must have shape [K] = ({num_classes},), got shape "
                       f"{tuple(np.shape(prior))}.")
    _check_prior_values(prior, "prior")
    if covariance is None:
      covariance = np.eye(dim)
    cov_shape = tuple(np.shape(covariance))
    if cov_shape not in ((dim, dim), (num_classes, dim, dim)):
      raise ValueError(f"`covariance` must have shape [d, d] = ({dim}, {dim}) or [K, d, d] = "
                       f"({num_classes}, {dim}, {dim}), got shape {cov_shape}.")
    if _checks.is_concrete(covariance):
      cov = np.broadcast_to(np.asarray(covariance, np.float64), (num_classes, dim, dim))
      if not np.all(np.isfinite(cov)) or not np.allclose(cov, np.swapaxes(cov, -1, -2),
                                                        rtol=1e-6, atol=1e-8):
        raise ValueError("`covariance` must be finite and symmetric.")
      if np.any(np.linalg.eigvalsh(cov) <= 0):
        raise ValueError("`covariance` must be positive definite.")
    if _checks.is_concrete(means) and not np.all(np.isfinite(np.asarray(means))):
      raise ValueError("`means` must be finite.")
    self.means = jnp.asarray(means, jnp.float32)
    self.prior = jnp.asarray(prior, jnp.float32)
    self.covariance = jnp.asarray(covariance, jnp.float32)
    self.scale_tril = jnp.linalg.cholesky(self.covariance)

  # -- pytree ----------------------------------------------------------------

  def tree_flatten(self):
    return (self.means, self.prior, self.covariance, self.scale_tril), None

  @classmethod
  def tree_unflatten(cls, aux, children):
    del aux
    obj = object.__new__(cls)
    obj.means, obj.prior, obj.covariance, obj.scale_tril = children
    return obj

  # -- constructors ----------------------------------------------------------

  @classmethod
  def paper(cls, dim: int, *, balanced: bool = True, mean_unit: float = 2.0) -> GaussianMixture:
    """The synthetic benchmark of Qin et al.: K = 5, N(mu_k, I_d).

    Means ``0, +u·1, -u·1, +2u·1, -2u·1`` with ``u = mean_unit`` (2 in the
    paper). Prior uniform (balanced) or ``[1, 2, 3, 4, 5] / 15`` (the
    5k/10k/15k/20k/25k imbalanced training counts).
    """
    if int(dim) != dim or dim < 1:
      raise ValueError(f"`dim` must be a positive integer, got {dim!r}.")
    means = np.outer(np.asarray(PAPER_MEAN_MULTIPLIERS) * mean_unit, np.ones(int(dim)))
    weights = np.ones(5) if balanced else np.asarray(PAPER_IMBALANCED_WEIGHTS, np.float64)
    return cls(means, weights / weights.sum())

  # -- shapes ----------------------------------------------------------------

  @property
  def num_classes(self) -> int:
    return self.means.shape[0]

  @property
  def dim(self) -> int:
    return self.means.shape[1]

  def label_entropy(self) -> Array:
    """H(Y) in nats, the upper bound of I(X;Y)."""
    p = self.prior
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1)), 0))

  # -- densities -------------------------------------------------------------

  def _check_x(self, x: ArrayLike) -> Array:
    _checks.require_floating(x, "x")
    if np.ndim(x) < 1 or np.shape(x)[-1] != self.dim:
      raise ValueError(f"`x` must have shape [..., d] = [..., {self.dim}], got shape "
                       f"{tuple(np.shape(x))}.")
    return jnp.asarray(x, jnp.float32)

  @property
  def shared_covariance(self) -> bool:
    """True when all classes share one covariance matrix."""
    return self.scale_tril.ndim == 2

  def class_log_likelihoods(self, x: ArrayLike) -> Array:
    """log p(x|k) for every class; x [..., d] -> [..., K] (nats)."""
    return _class_log_likelihoods(self, self._check_x(x))

  def log_density(self, x: ArrayLike) -> Array:
    """log p(x) = logsumexp_k(log p_k + log p(x|k)); [..., d] -> [...]."""
    return _log_density(self, self._check_x(x))

  def log_posterior(self, x: ArrayLike) -> Array:
    """log p(k|x); [..., d] -> [..., K]."""
    return _log_posterior(self, self._check_x(x))

  def pmi(self, x: ArrayLike, labels: ArrayLike) -> Array:
    """Exact PMI log p(x|y) / p(x) = log p(y|x) / p(y); x [..., d], labels [...] -> [...].

    Under jit, out-of-range labels give NaN.
    """
    x = self._check_x(x)
    _checks.require_integer(labels, "labels")
    if tuple(np.shape(labels)) != x.shape[:-1]:
      raise ValueError(f"`labels` must have shape x.shape[:-1] = {x.shape[:-1]}, got shape "
                       f"{tuple(np.shape(labels))}.")
    _checks.require_labels_in_range(labels, self.num_classes, "labels")
    return _pmi(self, x, jnp.asarray(labels))

  def bayes_logits(self, x: ArrayLike, *, objective: str = "pc_softmax") -> Array:
    """Logits of the Bayes-optimal classifier; [..., d] -> [..., K].

    ``objective="pc_softmax"``: ``log p(x|k)``, the optimum of PC-softmax
    training (``softmax(z + log p) = p(k|x)``, so ``log s~_y = PMI``).
    ``objective="softmax"``: ``log p(k|x)``, the optimum of plain softmax-CE.
    """
    if objective == "pc_softmax":
      return self.class_log_likelihoods(x)
    if objective == "softmax":
      return self.log_posterior(x)
    raise ValueError(f"`objective` must be 'pc_softmax' or 'softmax', got {objective!r}.")

  # -- sampling --------------------------------------------------------------

  def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]:
    """i.i.d. draws from p(x, y): (x [n, d] float32, labels [n] int32)."""
    if int(num_samples) < 0:
      raise ValueError(f"`num_samples` must be >= 0, got {num_samples}.")
    return _sample(self, key, int(num_samples))

  def sample_class_counts(self, key: Array, counts: Sequence[int]) -> tuple[Array, Array]:
    """Exactly ``counts[k]`` draws from each p(x|k), in a random order.

    The stratified design of the paper's data sets (fixed per-class sizes).
    Returns (x [sum(counts), d] float32, labels [sum(counts)] int32).
    """
    counts = tuple(int(c) for c in counts)
    if len(counts) != self.num_classes or min(counts) < 0:
      raise ValueError(f"`counts` must hold {self.num_classes} non-negative integers, got "
                       f"{list(counts)}.")
    return _sample_class_counts(self, key, counts)

  # -- ground-truth MI ---------------------------------------------------------

  def mutual_information(self, key: Array, num_samples: int = 1_000_000, *,
                         estimator: Literal["posterior", "pmi"] = "posterior",
                         chunk_size: int = 65_536) -> MIEstimate:
    """Monte-Carlo I(X;Y) in nats with its i.i.d. standard error.

    Args:
      key: PRNG key (same key, same number).
      num_samples: number of i.i.d. draws from p(x, y).
      estimator: ``"posterior"`` (default): mean over x ~ p(x) of
        ``KL(p(y|x) || p(y)) = sum_k p(k|x) log(p(k|x)/p_k)``, the
        Rao-Blackwellised estimator (same expectation, smaller variance);
        ``"pmi"``: mean over (x, y) ~ p(x, y) of ``log p(x|y)/p(x)`` (the
        paper's ground truth).
      chunk_size: samples per step (bounds memory at ~chunk_size·K·d floats).

    Returns:
      ``MIEstimate`` (estimate, stderr, num_samples).
    """
    if estimator not in ("posterior", "pmi"):
      raise ValueError(f"`estimator` must be 'posterior' or 'pmi', got {estimator!r}.")
    if int(num_samples) < 2:
      raise ValueError(f"`num_samples` must be >= 2, got {num_samples}.")
    if int(chunk_size) < 1:
      raise ValueError(f"`chunk_size` must be >= 1, got {chunk_size}.")
    return _monte_carlo_mi(self, key, int(num_samples), min(int(chunk_size), int(num_samples)),
                           estimator)

  def __repr__(self) -> str:
    return (f"GaussianMixture(num_classes={self.num_classes}, dim={self.dim}, "
            f"prior={np.round(np.asarray(self.prior), 4).tolist()})")


# Jitted kernels (one compilation per shape; also inlined under an outer jit).


@jax.jit
def _class_log_likelihoods(gm: GaussianMixture, x: Array) -> Array:
  batch, d = x.shape[:-1], gm.dim
  flat = x.reshape(-1, d)
  const = -0.5 * d * _LOG_2PI
  if gm.shared_covariance:
    tril = gm.scale_tril
    white_x = jax.scipy.linalg.solve_triangular(tril, flat.T, lower=True).T  # [n, d]
    white_mu = jax.scipy.linalg.solve_triangular(tril, gm.means.T, lower=True).T  # [K, d]
    # Direct differences (not the expanded |a|^2 - 2ab + |b|^2, which cancels
    # catastrophically in float32 far from the means).
    sq = jnp.sum(jnp.square(white_x[:, None, :] - white_mu[None, :, :]), -1)  # [n, K]
    out = -0.5 * sq - jnp.sum(jnp.log(jnp.diagonal(tril))) + const
  else:
    def one_class(mean, tril):
      white = jax.scipy.linalg.solve_triangular(tril, (flat - mean).T, lower=True)
      return -0.5 * jnp.sum(jnp.square(white), 0) - jnp.sum(jnp.log(jnp.diagonal(tril))) + const
    out = jax.vmap(one_class)(gm.means, gm.scale_tril).T  # [n, K]
  return out.reshape(*batch, gm.num_classes)


def _joint(gm: GaussianMixture, x: Array) -> Array:
  return _class_log_likelihoods(gm, x) + jnp.log(gm.prior)


@jax.jit
def _log_density(gm: GaussianMixture, x: Array) -> Array:
  return jax.nn.logsumexp(_joint(gm, x), axis=-1)


@jax.jit
def _log_posterior(gm: GaussianMixture, x: Array) -> Array:
  joint = _joint(gm, x)
  return joint - jax.nn.logsumexp(joint, axis=-1, keepdims=True)


@jax.jit
def _pmi(gm: GaussianMixture, x: Array, labels: Array) -> Array:
  cll = _class_log_likelihoods(gm, x)
  log_px = jax.nn.logsumexp(cll + jnp.log(gm.prior), axis=-1)
  valid = (labels >= 0) & (labels < gm.num_classes)
  safe = jnp.where(valid, labels, 0).astype(jnp.int32)
  picked = jnp.take_along_axis(cll, safe[..., None], axis=-1)[..., 0]
  return jnp.where(valid, picked - log_px, jnp.nan)


def _sample_x(gm: GaussianMixture, key: Array, labels: Array) -> Array:
  noise = jax.random.normal(key, (*labels.shape, gm.dim), jnp.float32)
  if gm.shared_covariance:
    return gm.means[labels] + noise @ gm.scale_tril.T
  per_class = jnp.einsum("kij,...j->...ki", gm.scale_tril, noise)  # [..., K, d]
  picked = jnp.take_along_axis(per_class, labels[..., None, None], axis=-2)[..., 0, :]
  return gm.means[labels] + picked


@functools.partial(jax.jit, static_argnums=2)
def _sample(gm: GaussianMixture, key: Array, num_samples: int) -> tuple[Array, Array]:
  key_y, key_x = jax.random.split(key)
  labels = jax.random.categorical(key_y, jnp.log(gm.prior), shape=(num_samples,)).astype(jnp.int32)
  return _sample_x(gm, key_x, labels), labels


@functools.partial(jax.jit, static_argnums=2)
def _sample_class_counts(gm: GaussianMixture, key: Array,
                         counts: tuple[int, ...]) -> tuple[Array, Array]:
  labels = jnp.asarray(np.repeat(np.arange(len(counts), dtype=np.int32), counts))
  key_perm, key_x = jax.random.split(key)
  labels = jax.random.permutation(key_perm, labels)
  return _sample_x(gm, key_x, labels), labels


def _posterior_kl(gm: GaussianMixture, x: Array) -> Array:
  """KL(p(y|x) || p(y)) per sample; [n, d] -> [n]."""
  log_post = _log_posterior(gm, x)
  log_prior = jnp.log(gm.prior)
  post = jnp.exp(log_post)
  return jnp.sum(jnp.where(post > 0, post * (log_post - log_prior), 0), axis=-1)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _monte_carlo_mi(gm: GaussianMixture, key: Array, num_samples: int, chunk_size: int,
                    estimator: str) -> MIEstimate:
  num_chunks = -(-num_samples // chunk_size)

  def body(acc: MIEstimate, i: Array):
    x, y = _sample(gm, jax.random.fold_in(key, i), chunk_size)
    values = _pmi(gm, x, y) if estimator == "pmi" else _posterior_kl(gm, x)
    valid = i * chunk_size + jnp.arange(chunk_size) < num_samples
    return acc.merge(mean_with_stderr(values, valid)), None

  init = MIEstimate(jnp.float32(jnp.nan), jnp.float32(jnp.nan), jnp.int32(0))
  out, _ = lax.scan(body, init, jnp.arange(num_chunks))
  return out
