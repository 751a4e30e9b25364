"""Gaussian-mixture ground truth (infocam_jax.gaussian) against independent references."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import infocam_jax as ij

# "rbg" keys: XLA:CPU compiles them several times faster than threefry (test speed).
KEY = jax.random.key(0, impl="rbg")
N_DIM, N_SAMPLE = 2, 4000  # one shape for most tests: each new shape recompiles


def quad_mi_1d(means, prior, sds):
  """I(X;Y) = sum_k p_k ∫ N(x; mu_k, s_k) log N(x; mu_k, s_k) / p(x) dx by adaptive quadrature."""
  means, prior, sds = (np.asarray(a, np.float64) for a in (means, prior, sds))

  def integrand(x, k):
    lp = stats.norm.logpdf(x, means, sds)
    log_px = np.logaddexp.reduce(lp + np.log(prior))
    return math.exp(lp[k]) * (lp[k] - log_px)

  total = 0.0
  for k in range(len(means)):
    lo, hi = means[k] - 12 * sds[k], means[k] + 12 * sds[k]
    total += prior[k] * integrate.quad(integrand, lo, hi, args=(k,), limit=200,
                                       epsabs=1e-11, epsrel=1e-10)[0]
  return total


@pytest.fixture(scope="module")
def paper_1d_imbalanced():
  gm = ij.GaussianMixture.paper(1, balanced=False)
  ref = quad_mi_1d(gm.means[:, 0], gm.prior, np.ones(5))
  return gm, ref


@pytest.mark.parametrize("estimator", ["posterior", "pmi"])
def test_monte_carlo_mi_matches_quadrature_1d(paper_1d_imbalanced, estimator):
  gm, ref = paper_1d_imbalanced
  # 200,000 is not a multiple of the chunk size: the last chunk is masked.
  mc = gm.mutual_information(KEY, 200_000, estimator=estimator)
  assert int(mc.num_samples) == 200_000
  assert 0 < float(mc.stderr) < 0.003
  assert abs(float(mc.estimate) - ref) < 4 * float(mc.stderr), (float(mc.estimate), ref)
  # same key, same number.
  assert float(gm.mutual_information(KEY, 200_000, estimator=estimator).estimate) == float(
      mc.estimate)


def test_posterior_estimator_has_smaller_variance(paper_1d_imbalanced):
  gm, _ = paper_1d_imbalanced
  a = gm.mutual_information(KEY, 200_000, estimator="posterior")
  b = gm.mutual_information(KEY, 200_000, estimator="pmi")
  assert float(a.stderr) < 0.5 * float(b.stderr)
  # balanced data (the prior is traced: no recompilation).
  gm_bal = ij.GaussianMixture.paper(1)
  ref = quad_mi_1d(gm_bal.means[:, 0], gm_bal.prior, np.ones(5))
  c = gm_bal.mutual_information(KEY, 200_000)
  assert abs(float(c.estimate) - ref) < 4 * float(c.stderr)


def test_monte_carlo_mi_per_class_variances_1d():
  means = np.array([[0.0], [1.5], [-2.0]])
  prior, sds = np.array([0.2, 0.3, 0.5]), np.array([0.5, 1.0, 2.0])
  gm = ij.GaussianMixture(means, prior, covariance=np.square(sds)[:, None, None])
  assert not gm.shared_covariance
  ref = quad_mi_1d(means[:, 0], prior, sds)
  mc = gm.mutual_information(KEY, 200_000)
  assert abs(float(mc.estimate) - ref) < 4 * float(mc.stderr)


def test_quadrature_reference_is_itself_right():
  # Two far-apart classes: I = H(Y) up to the (tiny) overlap.
  assert quad_mi_1d([-30.0, 30.0], [0.3, 0.7], [1.0, 1.0]) == pytest.approx(
      -(0.3 * math.log(0.3) + 0.7 * math.log(0.7)), abs=1e-9)
  # Identical classes: I = 0.
  assert quad_mi_1d([0.0, 0.0], [0.5, 0.5], [1.0, 1.0]) == pytest.approx(0, abs=1e-12)


def test_pmi_matches_scipy_float64():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(3, 3))
  shared = a @ a.T + 0.5 * np.eye(3)
  per_class = np.stack([shared, 2 * np.eye(3), np.diag([0.5, 1.0, 3.0])])
  means = rng.normal(size=(3, 3)) * 2
  prior = np.array([0.5, 0.3, 0.2])
  x = (rng.normal(size=(500, 3)) * 2).astype(np.float32)
  y = rng.integers(0, 3, 500).astype(np.int32)
  for cov in (shared, per_class, None):
    gm = ij.GaussianMixture(means, prior, cov)
    covs = np.broadcast_to(np.eye(3) if cov is None else cov, (3, 3, 3))
    xs = np.asarray(x, np.float64)
    lp = np.stack([stats.multivariate_normal(means[k], covs[k]).logpdf(xs) for k in range(3)], -1)
    log_px = np.logaddexp.reduce(lp + np.log(prior), axis=-1)
    ys = np.asarray(y)
    np.testing.assert_allclose(gm.class_log_likelihoods(x), lp, atol=2e-4, rtol=1e-5)
    np.testing.assert_allclose(gm.log_density(x), log_px, atol=2e-4, rtol=1e-5)
    np.testing.assert_allclose(gm.pmi(x, y), lp[np.arange(500), ys] - log_px, atol=2e-4)
    np.testing.assert_allclose(jnp.exp(gm.log_posterior(x)).sum(-1), 1, rtol=1e-5)


def test_sampling_moments_and_exact_counts():
  gm = ij.GaussianMixture.paper(N_DIM, balanced=False)
  x, y = gm.sample_class_counts(KEY, [100, 200, 300, 400, 500])
  assert x.shape == (1500, N_DIM) and x.dtype == jnp.float32 and y.dtype == jnp.int32
  np.testing.assert_array_equal(np.bincount(np.asarray(y), minlength=5), [100, 200, 300, 400, 500])
  assert len(np.unique(np.asarray(y)[:50])) > 1  # shuffled, not sorted by class
  for k in range(5):
    xk = np.asarray(x)[np.asarray(y) == k]
    # mean within 5 standard errors of mu_k (identity covariance)
    assert np.all(np.abs(xk.mean(0) - np.asarray(gm.means[k])) < 5 / math.sqrt(len(xk)))
  x, y = gm.sample(KEY, N_SAMPLE)
  freq = np.bincount(np.asarray(y), minlength=5) / N_SAMPLE
  np.testing.assert_allclose(freq, np.arange(1, 6) / 15, atol=0.03)  # > 4 sigma


def test_bayes_optimal_logits_recover_the_true_pmi():
  """The estimator on the Bayes-optimal classifier's logits equals the true MI on that sample."""
  gm = ij.GaussianMixture.paper(N_DIM, balanced=False)
  x, y = gm.sample(KEY, N_SAMPLE)
  true_pmi = gm.pmi(x, y)
  true_mi = float(jnp.mean(true_pmi))
  prior = gm.prior
  # PC-softmax optimum: z_k = log p(x|k) (+ any per-example constant).
  z_pc = gm.bayes_logits(x) + 123.0
  np.testing.assert_allclose(ij.pmi(z_pc, y, prior, objective="pc_softmax"), true_pmi, atol=1e-4)
  mi = ij.mutual_information(z_pc, y, prior, objective="pc_softmax")
  assert float(mi.estimate) == pytest.approx(true_mi, abs=2e-5)
  # Plain-softmax optimum: z_k = log p(k|x); read with the prior correction.
  z_sm = gm.bayes_logits(x, objective="softmax")
  np.testing.assert_allclose(ij.pmi(z_sm, y, prior, objective="softmax"), true_pmi, atol=1e-4)
  # Read with log K instead (the failure PC-softmax fixes), the error is
  # log K + log p_y per example: log K - H(Y) on average, 0.1196 nats here.
  wrong = ij.mutual_information(z_sm, y)
  expected = true_mi + math.log(5) + float(jnp.mean(jnp.log(prior)[y]))
  assert float(wrong.estimate) == pytest.approx(expected, abs=1e-4)
  assert math.log(5) - float(gm.label_entropy()) == pytest.approx(0.11962, abs=1e-4)


def test_balanced_bayes_logits_with_log_k():
  gm = ij.GaussianMixture.paper(N_DIM)
  x, y = gm.sample(KEY, N_SAMPLE)
  for objective in ("pc_softmax", "softmax"):
    np.testing.assert_allclose(ij.pmi(gm.bayes_logits(x, objective=objective), y), gm.pmi(x, y),
                               atol=1e-4)


def test_is_a_pytree_under_jit_and_vmap():
  gm = ij.GaussianMixture.paper(N_DIM, balanced=False)
  x, y = gm.sample(KEY, N_SAMPLE)
  f = jax.jit(lambda g, x, y: g.pmi(x, y))
  np.testing.assert_allclose(f(gm, x, y), gm.pmi(x, y), atol=1e-6)
  per_example = jax.vmap(lambda xi, yi: gm.pmi(xi, yi))(x, y)
  np.testing.assert_allclose(per_example, gm.pmi(x, y), atol=1e-6)
  leaves = jax.tree_util.tree_leaves(gm)
  assert len(leaves) == 4
  assert "GaussianMixture" in repr(gm)


def test_paper_configuration():
  gm = ij.GaussianMixture.paper(10, balanced=False)
  assert (gm.num_classes, gm.dim) == (5, 10)
  np.testing.assert_allclose(gm.means[:, 0], [0, 2, -2, 4, -4])
  np.testing.assert_allclose(gm.means[3], 4 * np.ones(10))
  np.testing.assert_allclose(gm.prior, np.arange(1, 6) / 15, rtol=1e-6)
  np.testing.assert_allclose(ij.GaussianMixture.paper(1).label_entropy(), math.log(5), rtol=1e-6)


PAPER_1D = ij.GaussianMixture.paper(1)


@pytest.mark.parametrize("call, name", [
    (lambda: ij.GaussianMixture(np.zeros(3), np.ones(3) / 3), "`means`"),
    (lambda: ij.GaussianMixture(np.zeros((3, 2)), np.ones(2) / 2), "`prior`"),
    (lambda: ij.GaussianMixture(np.zeros((3, 2)), np.ones(3)), "`prior`"),
    (lambda: ij.GaussianMixture(np.zeros((2, 2)), np.array([1.5, -0.5])), "`prior`"),
    (lambda: ij.GaussianMixture(np.zeros((2, 2)), np.ones(2) / 2, np.eye(3)), "`covariance`"),
    (lambda: ij.GaussianMixture(np.zeros((2, 2)), np.ones(2) / 2, -np.eye(2)), "`covariance`"),
    (lambda: ij.GaussianMixture(np.zeros((2, 2)), np.ones(2) / 2, np.array([[1, 2], [0, 1.0]])),
     "`covariance`"),
    (lambda: ij.GaussianMixture(np.full((2, 2), np.nan), np.ones(2) / 2), "`means`"),
    (lambda: PAPER_1D.pmi(np.zeros((4, 2), np.float32), np.zeros(4, np.int32)), "`x`"),
    (lambda: PAPER_1D.pmi(np.zeros((4, 1), np.float32), np.full(4, 5)), "`labels`"),
    (lambda: PAPER_1D.pmi(np.zeros((4, 1), np.float32), np.zeros(3, int)), "`labels`"),
    (lambda: ij.GaussianMixture.paper(1).log_density(np.zeros((4, 1), np.int32)), "`x`"),
    (lambda: ij.GaussianMixture.paper(1).mutual_information(KEY, 1), "`num_samples`"),
    (lambda: ij.GaussianMixture.paper(1).mutual_information(KEY, 10, estimator="x"), "`estimator`"),
    (lambda: ij.GaussianMixture.paper(1).sample_class_counts(KEY, [1, 2]), "`counts`"),
    (lambda: ij.GaussianMixture.paper(1).bayes_logits(np.zeros((1, 1), np.float32), objective="x"),
     "`objective`"),
    (lambda: ij.GaussianMixture.paper(0), "`dim`"),
])
def test_bad_input_raises_naming_the_argument(call, name):
  with pytest.raises(ValueError, match=name):
    call()
