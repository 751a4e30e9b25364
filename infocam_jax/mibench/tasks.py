"""Benchmark tasks for I(X;Y) with a discrete label Y and a continuous X, with exact truth (nats).

Every task is ``p(x, y) = p_y p(x|y)`` with a tractable class-conditional density of a
*latent* ``z`` and an observed ``x = g(z)`` where ``g`` is injective (identity for most
tasks). Because ``g`` is injective, ``PMI(x; y) = log p(z|y) - log p(z)`` (the Jacobian
cancels), so the exact per-sample PMI is a function of ``(z, y)``, and I(X;Y) = I(Z;Y).

A :class:`Sample` carries ``x`` (what estimators see), ``y`` and ``z`` (what the exact
PMI and the oracle critics use). Truth: :meth:`Task.mutual_information` is the
Rao-Blackwellised Monte Carlo ``E_z KL(p(y|z) || p(y))`` with its i.i.d. standard error
(or the closed form where one exists: ``I = 0`` for the null task, sums for product
labels); :meth:`Task.mutual_information_pmi` is a second, independent estimator
(mean exact PMI over joint draws), used by the tests.

Example::

    task = make_task("concentric", dim=3, num_classes=5)
    s = task.sample(jax.random.key(0), 1000)      # x [1000, 3], y [1000], z [1000, 3]
    task.pmi(s)                                    # [1000] exact PMI (nats)
    task.mutual_information(jax.random.key(1), 200_000)   # MIEstimate, ~0.456 ± 0.001

Families (``make_task(family, **params)``; see :data:`FAMILIES`): ``gaussian_paper``
(the paper's K = 5 mixture, via :class:`infocam_jax.gaussian.GaussianMixture`),
``null`` (K classes, I = 0), ``concentric`` (bmi's Concentric with the label kept
discrete: ``z|i ~ N(0, i^2 I_d)``, i = 1..K), ``sparse`` (a few informative dimensions
inside d), ``many_classes`` (K random class means of norm ``separation`` in d),
``student`` (Student-t class conditionals, nu = inf is Gaussian), ``zipf`` (Gaussian
classes under a Zipf prior), ``transformed`` (an MI-preserving bijection of a base task),
``product`` (independent product labels, I = I1 + I2) and ``image`` (28x28 images
rendered from a low-dimensional latent by an injective map).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax.estimators import MIEstimate, mean_with_stderr
from infocam_jax.gaussian import GaussianMixture

Array = jax.Array

#: The Monte-Carlo standard error the benchmark's truth must reach (nats).
TRUTH_STDERR_TARGET = 0.003


class Sample(NamedTuple):
  """Draws from a task: ``x`` [..., n, dim] float32 (observed), ``y`` [..., n] int32 labels,
  ``z`` [..., n, latent_dim] float32 (the latent the exact PMI is computed from).

  >>> s = make_task("null", num_classes=4, dim=2).sample(jax.random.key(0), 8)
  >>> s.x.shape, s.y.shape, s.y.dtype, s.z.shape
  ((8, 2), (8,), dtype('int32'), (8, 2))
  """
  x: Array
  y: Array
  z: Array


def check_prior(prior: Any, name: str = "prior") -> np.ndarray:
  """A [K] probability vector (float64) with K >= 2, or ValueError naming ``name``."""
  p = np.asarray(prior, np.float64)
  if p.ndim != 1:
    raise ValueError(f"`{name}` must be a [K] vector, got shape {p.shape}.")
  if p.shape[0] < 2:
    raise ValueError(f"`{name}` must have K >= 2 classes (I(X;Y) = 0 for K = 1), got K = "
                     f"{p.shape[0]}.")
  if not np.all(np.isfinite(p)) or np.any(p <= 0):
    raise ValueError(f"`{name}` must be a distribution with positive finite entries, got min "
                     f"{np.min(p)!r}.")
  if abs(p.sum() - 1) > 1e-6:
    raise ValueError(f"`{name}` must sum to 1 (a distribution), got sum {p.sum()!r}.")
  return p / p.sum()


def _check_num_classes(num_classes: Any) -> int:
  if int(num_classes) != num_classes or num_classes < 2:
    raise ValueError(f"`num_classes` must be an integer K >= 2, got {num_classes!r}.")
  return int(num_classes)


def _check_positive_int(v: Any, name: str) -> int:
  if int(v) != v or v < 1:
    raise ValueError(f"`{name}` must be a positive integer, got {v!r}.")
  return int(v)


class Task:
  """A discrete-label MI task: label prior, latent class conditionals, observation map.

  Subclasses implement ``_sample_z(key, labels) -> z`` and ``_class_log_lik(z) -> [..., K]``
  (``log p(z|k)`` up to a term that does not depend on k), and may override ``_observe``
  (the injective map z -> x) and :meth:`exact_mutual_information`.

  Attributes:
    name: a readable id (family and parameters).
    family: the family name in :data:`FAMILIES`.
    prior: [K] float64 label prior.
    dim: dimension of x.
    latent_dim: dimension of z.

  >>> task = make_task("null", num_classes=4, dim=2)  # 4 classes, one shared density
  >>> task
  GaussianClasses('null(num_classes=4,dim=2)', K=4, dim=2, H(Y)=1.386)
  >>> float(task.mutual_information(jax.random.key(0)).estimate)  # closed form: I(X;Y) = 0 nats
  0.0
  >>> task.pmi(task.sample(jax.random.key(1), 5)).shape  # exact per-sample PMI (nats)
  (5,)
  """

  family = "?"

  def __init__(self, name: str, prior: Any, dim: int, latent_dim: int | None = None):
    self.name = name
    self.prior = check_prior(prior)
    self.dim = int(dim)
    self.latent_dim = int(latent_dim if latent_dim is not None else dim)
    self._log_prior = jnp.asarray(np.log(self.prior), jnp.float32)

  # -- to implement -------------------------------------------------------------------
  def _sample_z(self, key: Array, labels: Array) -> Array:
    raise NotImplementedError

  def _class_log_lik(self, z: Array) -> Array:
    raise NotImplementedError

  def _observe(self, z: Array) -> Array:
    return z

  def exact_mutual_information(self) -> float | None:
    """The closed-form I(X;Y) in nats, or None when only Monte Carlo is available."""
    return None

  # -- shapes and label facts -----------------------------------------------------------
  @property
  def num_classes(self) -> int:
    return self.prior.shape[0]

  @property
  def label_entropy(self) -> float:
    """H(Y) in nats (the upper bound of I(X;Y))."""
    return float(-np.sum(self.prior * np.log(self.prior)))

  @property
  def log_k(self) -> float:
    return math.log(self.num_classes)

  # -- sampling and exact PMI -----------------------------------------------------------
  def sample(self, key: Array, num_samples: int) -> Sample:
    """``num_samples`` i.i.d. draws of (x, y) with their latents."""
    num_samples = _check_positive_int(num_samples, "num_samples")
    return self._sample_jit(key, num_samples)

  @functools.partial(jax.jit, static_argnums=(0, 2))
  def _sample_jit(self, key: Array, num_samples: int) -> Sample:
    key_y, key_z = jax.random.split(key)
    y = jax.random.categorical(key_y, self._log_prior, shape=(num_samples,)).astype(jnp.int32)
    z = self._sample_z(key_z, y).astype(jnp.float32)
    return Sample(self._observe(z).astype(jnp.float32), y, z)

  def sample_seeds(self, key: Array, num_seeds: int, num_samples: int) -> Sample:
    """``num_seeds`` independent samples stacked: x [S, n, dim], y [S, n], z [S, n, latent]."""
    keys = jax.random.split(key, _check_positive_int(num_seeds, "num_seeds"))
    parts = [self.sample(k, num_samples) for k in keys]
    return Sample(*(jnp.stack(p) for p in zip(*parts)))

  def log_posterior(self, z: Array) -> Array:
    """log p(k|z) = log p(k|x); z [..., latent_dim] -> [..., K]."""
    joint = self._class_log_lik(jnp.asarray(z, jnp.float32)) + self._log_prior
    return joint - jax.nn.logsumexp(joint, axis=-1, keepdims=True)

  def pmi_matrix(self, z: Array) -> Array:
    """Exact PMI(x; k) = log p(k|x) - log p_k for every class k; [..., latent] -> [..., K]."""
    return self.log_posterior(z) - self._log_prior

  def pmi(self, sample: Sample) -> Array:
    """Exact per-sample PMI(x_i; y_i) in nats; [..., n]."""
    m = self.pmi_matrix(sample.z)
    return jnp.take_along_axis(m, sample.y[..., None].astype(jnp.int32), axis=-1)[..., 0]

  # -- truth ----------------------------------------------------------------------------
  def mutual_information(self, key: Array, num_samples: int = 200_000, *,
                         chunk_size: int = 8192) -> MIEstimate:
    """Monte-Carlo I(X;Y) = E_x KL(p(y|x) || p(y)) with its standard error (nats).

    Uses the closed form (stderr 0) when :meth:`exact_mutual_information` has one.
    """
    exact = self.exact_mutual_information()
    if exact is not None:
      return MIEstimate(jnp.float32(exact), jnp.float32(0.0), jnp.int32(0))
    return self._monte_carlo(key, num_samples, chunk_size, rao_blackwell=True)

  def mutual_information_pmi(self, key: Array, num_samples: int = 200_000, *,
                             chunk_size: int = 8192) -> MIEstimate:
    """A second, independent MC: mean exact PMI(x; y) over joint draws (nats)."""
    return self._monte_carlo(key, num_samples, chunk_size, rao_blackwell=False)

  def _monte_carlo(self, key, num_samples, chunk_size, rao_blackwell) -> MIEstimate:
    num_samples = _check_positive_int(num_samples, "num_samples")
    chunk = min(_check_positive_int(chunk_size, "chunk_size"), num_samples)
    num_chunks = -(-num_samples // chunk)
    values = self._mc_values(key, num_chunks, chunk, rao_blackwell)
    return mean_with_stderr(values.reshape(-1)[:num_samples])

  @functools.partial(jax.jit, static_argnums=(0, 2, 3, 4))
  def _mc_values(self, key, num_chunks, chunk, rao_blackwell):
    def one(k):
      s = self._sample_jit(k, chunk)
      if rao_blackwell:
        log_post = self.log_posterior(s.z)
        return jnp.sum(jnp.exp(log_post) * (log_post - self._log_prior), axis=-1)
      return self.pmi(s)
    return jax.lax.map(one, jax.random.split(key, num_chunks))

  def truth(self, key: Array | None = None, *, target_stderr: float = TRUTH_STDERR_TARGET,
            start: int = 100_000, max_samples: int = 3_200_000) -> MIEstimate:
    """I(X;Y) with stderr <= ``target_stderr``: doubles the MC size until it is reached."""
    key = jax.random.key(20261207) if key is None else key
    n = start
    while True:
      est = self.mutual_information(key, n)
      if float(est.stderr) <= target_stderr or n >= max_samples:
        return est
      n *= 4

  def __repr__(self) -> str:
    return (f"{type(self).__name__}({self.name!r}, K={self.num_classes}, dim={self.dim}, "
            f"H(Y)={self.label_entropy:.3f})")

  # Tasks are hashed by identity so that methods can be static under jit.
  __hash__ = object.__hash__


# ----------------------------------------------------------------------------------------
# Class-conditional families.
# ----------------------------------------------------------------------------------------


class GaussianClasses(Task):
  """``z|k ~ N(mu_k, sigma^2 I)``; any K, d (class logits by one matmul, no [n, K, d])."""
  family = "gaussian"

  def __init__(self, name, means, prior=None, sigma: float = 1.0):
    means = np.asarray(means, np.float64)
    if means.ndim != 2:
      raise ValueError(f"`means` must be [K, d], got shape {means.shape}.")
    prior = np.full(means.shape[0], 1.0 / means.shape[0]) if prior is None else prior
    super().__init__(name, prior, means.shape[1])
    if means.shape[0] != self.num_classes:
      raise ValueError(f"`means` has {means.shape[0]} rows but the prior has K = "
                       f"{self.num_classes}.")
    if not sigma > 0:
      raise ValueError(f"`sigma` must be > 0, got {sigma!r}.")
    self.means = jnp.asarray(means, jnp.float32)
    self.sigma = float(sigma)
    self._half_sq = jnp.asarray(0.5 * np.sum(means**2, -1), jnp.float32)

  def _sample_z(self, key, labels):
    noise = jax.random.normal(key, (*labels.shape, self.latent_dim), jnp.float32)
    return self.means[labels] + self.sigma * noise

  def _class_log_lik(self, z):
    # -|z - mu_k|^2 / 2 sigma^2 without the k-independent -|z|^2 / 2 sigma^2 term.
    return (z @ self.means.T - self._half_sq) / self.sigma**2

  def exact_mutual_information(self):
    if float(jnp.max(jnp.abs(self.means - self.means[:1]))) == 0.0:
      return 0.0  # all classes share one density: independent
    return None


class MixtureTask(Task):
  """A :class:`infocam_jax.gaussian.GaussianMixture` as a task (the paper's control)."""
  family = "gaussian_paper"

  def __init__(self, name: str, mixture: GaussianMixture):
    super().__init__(name, np.asarray(mixture.prior, np.float64) /
                     np.asarray(mixture.prior, np.float64).sum(), mixture.dim)
    self.mixture = mixture

  def _sample_z(self, key, labels):
    from infocam_jax import gaussian  # the mixture's own sampler
    return gaussian._sample_x(self.mixture, key, labels)  # pylint: disable=protected-access

  def _class_log_lik(self, z):
    return self.mixture.class_log_likelihoods(z)


class StudentClasses(Task):
  """``z|k ~ mu_k + sigma * t_nu`` (isotropic multivariate Student-t, nu degrees of freedom)."""
  family = "student"

  def __init__(self, name, means, nu: float, sigma: float = 1.0, prior=None):
    means = np.asarray(means, np.float64)
    prior = np.full(means.shape[0], 1.0 / means.shape[0]) if prior is None else prior
    super().__init__(name, prior, means.shape[1])
    if not nu > 0:
      raise ValueError(f"`nu` must be > 0 (use the Gaussian family for nu = inf), got {nu!r}.")
    self.means = jnp.asarray(means, jnp.float32)
    self.nu, self.sigma = float(nu), float(sigma)

  def _sample_z(self, key, labels):
    k1, k2 = jax.random.split(key)
    g = jax.random.normal(k1, (*labels.shape, self.latent_dim), jnp.float32)
    chi2 = 2.0 * jax.random.gamma(k2, self.nu / 2, labels.shape, jnp.float32)
    return self.means[labels] + self.sigma * g * jnp.sqrt(self.nu / chi2)[..., None]

  def _class_log_lik(self, z):
    # Direct differences (|z| can be huge under heavy tails; no expanded-square cancellation).
    sq = jnp.sum(jnp.square(z[..., None, :] - self.means), -1) / self.sigma**2
    return -0.5 * (self.nu + self.latent_dim) * jnp.log1p(sq / self.nu)


class Concentric(Task):
  """bmi's Concentric task with a discrete label: ``z | i ~ N(0, i^2 I_d)``, i = 1..K."""
  family = "concentric"

  def __init__(self, name, dim: int, num_classes: int, prior=None):
    k = _check_num_classes(num_classes)
    super().__init__(name, np.full(k, 1.0 / k) if prior is None else prior,
                     _check_positive_int(dim, "dim"))
    self.radii = jnp.arange(1, k + 1, dtype=jnp.float32)

  def _sample_z(self, key, labels):
    noise = jax.random.normal(key, (*labels.shape, self.latent_dim), jnp.float32)
    return self.radii[labels][..., None] * noise

  def _class_log_lik(self, z):
    sq = jnp.sum(jnp.square(z), -1, keepdims=True)
    return -self.latent_dim * jnp.log(self.radii) - 0.5 * sq / jnp.square(self.radii)


class Transformed(Task):
  """A base task seen through an injective, MI-preserving map ``x = g(z)`` (truth unchanged).

  Kinds: ``half_cube`` (random rotation, then ``u |u|^{1/2}`` per coordinate), ``asinh``
  (per coordinate; tames heavy tails), ``spiral`` (rotation of the first two coordinates
  by an angle ``speed * |z|^2``, after a random rotation), ``affine`` (``A z + b``,
  A well conditioned). :meth:`invert` maps x back to z (the tests check it).
  """
  family = "transformed"
  KINDS = ("half_cube", "asinh", "spiral", "affine")

  def __init__(self, name, base: Task, kind: str, seed: int = 0, speed: float = 0.5):
    if kind not in self.KINDS:
      raise ValueError(f"`kind` must be one of {self.KINDS}, got {kind!r}.")
    super().__init__(name, base.prior, base.dim, base.latent_dim)
    self.base, self.kind, self.speed = base, kind, float(speed)
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(base.dim, base.dim)))
    self._rot = jnp.asarray(q * np.sign(np.diag(r)), jnp.float32)
    a = q @ np.diag(np.exp(rng.uniform(-0.5, 0.5, base.dim)))
    self._a = jnp.asarray(a, jnp.float32)
    self._a_inv = jnp.asarray(np.linalg.inv(a), jnp.float32)
    self._b = jnp.asarray(rng.normal(size=base.dim), jnp.float32)

  def _sample_z(self, key, labels):
    return self.base._sample_z(key, labels)  # pylint: disable=protected-access

  def _class_log_lik(self, z):
    return self.base._class_log_lik(z)  # pylint: disable=protected-access

  def exact_mutual_information(self):
    return self.base.exact_mutual_information()

  def _observe(self, z):
    u = self.base._observe(z)  # pylint: disable=protected-access
    if self.kind == "half_cube":
      v = u @ self._rot.T
      return v * jnp.sqrt(jnp.abs(v))
    if self.kind == "asinh":
      return jnp.arcsinh(u)
    if self.kind == "spiral":
      v = u @ self._rot.T
      if v.shape[-1] < 2:
        return v
      theta = self.speed * jnp.sum(jnp.square(v), -1)
      c, s = jnp.cos(theta), jnp.sin(theta)
      first = jnp.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)
      return jnp.concatenate([first, v[..., 2:]], -1)
    return u @ self._a.T + self._b

  def invert(self, x: Array) -> Array:
    """g^{-1}(x) (the base observation u), showing the map is a bijection onto its image."""
    if self.kind == "half_cube":
      v = jnp.sign(x) * jnp.abs(x) ** (2.0 / 3.0)
      return v @ self._rot
    if self.kind == "asinh":
      return jnp.sinh(x)
    if self.kind == "spiral":
      if x.shape[-1] < 2:
        return x @ self._rot
      theta = self.speed * jnp.sum(jnp.square(x), -1)  # rotations keep |v|
      c, s = jnp.cos(theta), jnp.sin(theta)
      first = jnp.stack([c * x[..., 0] + s * x[..., 1], -s * x[..., 0] + c * x[..., 1]], -1)
      return jnp.concatenate([first, x[..., 2:]], -1) @ self._rot
    return (x - self._b) @ self._a_inv.T


class Product(Task):
  """Independent product label ``y = y1 * K2 + y2`` with ``x = concat(x1, x2)``: I = I1 + I2."""
  family = "product"

  def __init__(self, name, first: Task, second: Task):
    super().__init__(name, np.outer(first.prior, second.prior).reshape(-1),
                     first.dim + second.dim, first.latent_dim + second.latent_dim)
    self.first, self.second = first, second

  def _split(self, labels):
    return labels // self.second.num_classes, labels % self.second.num_classes

  def _sample_z(self, key, labels):
    k1, k2 = jax.random.split(key)
    y1, y2 = self._split(labels)
    return jnp.concatenate([self.first._sample_z(k1, y1),  # pylint: disable=protected-access
                            self.second._sample_z(k2, y2)], -1)  # pylint: disable=protected-access

  def _class_log_lik(self, z):
    d1 = self.first.latent_dim
    a = self.first._class_log_lik(z[..., :d1])  # pylint: disable=protected-access
    b = self.second._class_log_lik(z[..., d1:])  # pylint: disable=protected-access
    return (a[..., :, None] + b[..., None, :]).reshape(*z.shape[:-1], -1)

  def _observe(self, z):
    d1 = self.first.latent_dim
    return jnp.concatenate([self.first._observe(z[..., :d1]),  # pylint: disable=protected-access
                            self.second._observe(z[..., d1:])], -1)  # pylint: disable=protected-access

  def exact_mutual_information(self):
    a, b = self.first.exact_mutual_information(), self.second.exact_mutual_information()
    return None if a is None or b is None else a + b


class Image(Task):
  """28x28 images rendered from a low-dimensional latent by an injective map.

  ``x = B h(z)`` flattened to 784, where ``h(u) = u + 0.5 tanh(u)`` per coordinate is
  strictly increasing and ``B`` [784, m] holds m smooth Gaussian-bump images (full column
  rank, checked), so ``z -> x`` is injective and I(X;Y) = I(Z;Y) of the base task.
  """
  family = "image"
  SIDE = 28

  def __init__(self, name, base: Task, seed: int = 0, width: float = 3.0):
    super().__init__(name, base.prior, self.SIDE * self.SIDE, base.latent_dim)
    self.base = base
    rng = np.random.default_rng(seed)
    m = base.dim
    yy, xx = np.mgrid[0:self.SIDE, 0:self.SIDE]
    centres = rng.uniform(4, self.SIDE - 4, size=(m, 2))
    widths = width * np.exp(rng.uniform(-0.3, 0.3, m))
    bumps = np.exp(-((yy[None] - centres[:, 0, None, None]) ** 2 +
                     (xx[None] - centres[:, 1, None, None]) ** 2) / (2 * widths[:, None, None]**2))
    basis = bumps.reshape(m, -1).T  # [784, m]
    if np.linalg.matrix_rank(basis) < m:
      raise ValueError(f"the {m} rendering bumps are not linearly independent; use another seed.")
    self.basis = jnp.asarray(basis, jnp.float32)
    self._pinv = jnp.asarray(np.linalg.pinv(basis), jnp.float32)

  def _sample_z(self, key, labels):
    return self.base._sample_z(key, labels)  # pylint: disable=protected-access

  def _class_log_lik(self, z):
    return self.base._class_log_lik(z)  # pylint: disable=protected-access

  def exact_mutual_information(self):
    return self.base.exact_mutual_information()

  def _observe(self, z):
    u = self.base._observe(z)  # pylint: disable=protected-access
    return (u + 0.5 * jnp.tanh(u)) @ self.basis.T

  def invert_features(self, x: Array) -> Array:
    """h(u) recovered from the image by least squares (exact for rendered images)."""
    return x @ self._pinv.T


# ----------------------------------------------------------------------------------------
# Constructors (the families) and the registry.
# ----------------------------------------------------------------------------------------


def _fmt(family: str, **params) -> str:
  inner = ",".join(f"{k}={v}" for k, v in params.items())
  return f"{family}({inner})"


def gaussian_paper(dim: int = 2, balanced: bool = True) -> Task:
  """The paper's K = 5 mixture ``N(mu_k, I_d)``, means 0, ±2·1, ±4·1 (the existing control)."""
  return MixtureTask(_fmt("gaussian_paper", dim=dim, balanced=balanced),
                     GaussianMixture.paper(_check_positive_int(dim, "dim"), balanced=balanced))


def null(num_classes: int = 100, dim: int = 10) -> Task:
  """K classes sharing one density N(0, I_d): I(X;Y) = 0 exactly, H(Y) = log K."""
  k = _check_num_classes(num_classes)
  return GaussianClasses(_fmt("null", num_classes=k, dim=dim),
                         np.zeros((k, _check_positive_int(dim, "dim"))))


def concentric(dim: int = 3, num_classes: int = 5) -> Task:
  return Concentric(_fmt("concentric", dim=dim, num_classes=num_classes), dim, num_classes)


def _random_means(num_classes: int, dim: int, separation: float, seed: int) -> np.ndarray:
  """K class means of norm ``separation`` in random directions of R^dim."""
  rng = np.random.default_rng(seed)
  m = rng.normal(size=(num_classes, dim))
  return separation * m / np.linalg.norm(m, axis=1, keepdims=True)


def sparse(dim: int = 100, informative: int = 2, num_classes: int = 10,
           separation: float = 3.0, seed: int = 0) -> Task:
  """K Gaussian classes whose means differ only in the first ``informative`` of ``dim``
  coordinates (the rest is pure noise): I(X;Y) equals the ``informative``-dim task's."""
  k, d = _check_num_classes(num_classes), _check_positive_int(dim, "dim")
  s = _check_positive_int(informative, "informative")
  if s > d:
    raise ValueError(f"`informative` ({s}) must be <= `dim` ({d}).")
  means = np.zeros((k, d))
  means[:, :s] = _random_means(k, s, separation, seed)
  return GaussianClasses(_fmt("sparse", dim=d, informative=s, num_classes=k,
                              separation=separation, seed=seed), means)


def many_classes(num_classes: int = 100, dim: int = 100, separation: float = 4.0,
                 seed: int = 0) -> Task:
  """K Gaussian classes N(mu_k, I_d), |mu_k| = ``separation`` in random directions; the MI
  rises from 0 towards log K as the separation grows."""
  k, d = _check_num_classes(num_classes), _check_positive_int(dim, "dim")
  return GaussianClasses(_fmt("many_classes", num_classes=k, dim=d, separation=separation,
                              seed=seed), _random_means(k, d, separation, seed))


def student(nu: float = 1.0, dim: int = 2, num_classes: int = 10, separation: float = 3.0,
            seed: int = 0) -> Task:
  """Student-t class conditionals ``mu_k + t_nu`` (nu = inf: the Gaussian task)."""
  k, d = _check_num_classes(num_classes), _check_positive_int(dim, "dim")
  means = _random_means(k, d, separation, seed)
  name = _fmt("student", nu=nu, dim=d, num_classes=k, separation=separation, seed=seed)
  if math.isinf(float(nu)):
    return GaussianClasses(name, means)
  return StudentClasses(name, means, float(nu))


def zipf_prior(num_classes: int, exponent: float = 1.0) -> np.ndarray:
  """p_k proportional to 1 / k^exponent, k = 1..K."""
  if not math.isfinite(float(exponent)):
    raise ValueError(f"`exponent` must be finite, got {exponent!r}.")
  log_w = -float(exponent) * np.log(np.arange(1, _check_num_classes(num_classes) + 1))
  w = np.exp(log_w - log_w.max())
  return w / w.sum()


def zipf(num_classes: int = 100, dim: int = 10, separation: float = 4.0, exponent: float = 1.0,
         seed: int = 0) -> Task:
  """Gaussian classes under a Zipf prior (imbalanced; read through PC-softmax)."""
  k, d = _check_num_classes(num_classes), _check_positive_int(dim, "dim")
  return GaussianClasses(_fmt("zipf", num_classes=k, dim=d, separation=separation,
                              exponent=exponent, seed=seed),
                         _random_means(k, d, separation, seed), prior=zipf_prior(k, exponent))


def transformed(kind: str = "half_cube", base: str = "concentric(dim=3,num_classes=5)",
                seed: int = 0) -> Task:
  """``base`` (a task spec string) seen through an MI-preserving bijection ``kind``."""
  b = parse_task(base)
  return Transformed(f"transformed(kind={kind},base={b.name})", b, kind, seed)


def product(first: str = "concentric(dim=3,num_classes=5)",
            second: str = "gaussian_paper(dim=1,balanced=True)") -> Task:
  """Independent product of two tasks (spec strings): K = K1 K2, I = I1 + I2."""
  a, b = parse_task(first), parse_task(second)
  return Product(f"product({a.name}|{b.name})", a, b)


def image(base: str = "many_classes(num_classes=10,dim=4,separation=3.0)", seed: int = 0) -> Task:
  """28x28 images (dim 784) rendered from the latent of ``base`` (a low-dim task spec)."""
  b = parse_task(base)
  return Image(f"image(base={b.name})", b, seed)


#: family name -> constructor (keyword parameters as documented on each).
FAMILIES: dict[str, Callable[..., Task]] = {
    "gaussian_paper": gaussian_paper, "null": null, "concentric": concentric, "sparse": sparse,
    "many_classes": many_classes, "student": student, "zipf": zipf, "transformed": transformed,
    "product": product, "image": image,
}


def make_task(family: str, **params) -> Task:
  """The task of ``family`` with ``params``; ValueError for an unknown family or parameter.

  >>> sorted(FAMILIES)[:3]
  ['concentric', 'gaussian_paper', 'image']
  >>> make_task("gaussian_paper", dim=2).num_classes  # the paper's 5-class mixture
  5
  """
  if family not in FAMILIES:
    raise ValueError(f"unknown task family {family!r}; expected one of {sorted(FAMILIES)}.")
  try:
    return FAMILIES[family](**params)
  except TypeError as e:
    raise ValueError(f"bad parameters {params} for task family {family!r}: {e}") from None


def _split_top(text: str, sep: str) -> list[str]:
  parts, depth, cur = [], 0, ""
  for ch in text:
    depth += ch == "("
    depth -= ch == ")"
    if ch == sep and depth == 0:
      parts.append(cur)
      cur = ""
    else:
      cur += ch
  return parts + [cur]


def _literal(v: str) -> Any:
  v = v.strip()
  for conv in (int, float):
    try:
      return conv(v)
    except ValueError:
      pass
  if v in ("True", "False"):
    return v == "True"
  if v in ("inf", "+inf"):
    return math.inf
  return v


def parse_task(spec: str) -> Task:
  """A task from a spec string ``family(key=value,...)`` or ``family`` (defaults).

  >>> parse_task("concentric(dim=3,num_classes=5)").num_classes
  5
  """
  spec = str(spec).strip()
  if "(" not in spec:
    return make_task(spec)
  if not spec.endswith(")"):
    raise ValueError(f"task spec must look like family(key=value,...), got {spec!r}.")
  family, inner = spec[:spec.index("(")], spec[spec.index("(") + 1:-1]
  params = {}
  for part in _split_top(inner, ","):
    if not part.strip():
      continue
    if "=" not in part:
      raise ValueError(f"task spec parameter {part!r} in {spec!r} must be key=value.")
    k, v = part.split("=", 1)
    params[k.strip()] = _literal(v)
  return make_task(family.strip(), **params)
