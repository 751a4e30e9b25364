"""mibench tasks: every truth against an independent computation; invariances; bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from infocam_jax.mibench import tasks as T

KEY = jax.random.key(0)
ALL_SPECS = [
    "gaussian_paper(dim=2)", "null(num_classes=100,dim=5)", "concentric(dim=3,num_classes=5)",
    "sparse(dim=40,informative=2,num_classes=10)", "many_classes(num_classes=100,dim=20)",
    "student(nu=1,dim=2,num_classes=10)", "student(nu=2,dim=3,num_classes=5)",
    "student(nu=inf,dim=2,num_classes=10)", "zipf(num_classes=100,dim=10)",
    "transformed(kind=half_cube)", "transformed(kind=asinh,base=student(nu=1,dim=2,num_classes=10))",
    "transformed(kind=spiral)", "transformed(kind=affine)", "product", "image",
]


def _quadrature_mi(prior, pdfs, lo, hi, points=()):
  """I(S;Y) = sum_k p_k int p(s|k) log p(s|k)/p(s) ds for a scalar statistic S (float64)."""
  def integrand(s):
    dens = np.array([f(s) for f in pdfs])
    mix = np.dot(prior, dens)
    terms = np.where(dens > 0, dens * (np.log(np.maximum(dens, 1e-300)) - np.log(max(mix, 1e-300))), 0)
    return float(np.dot(prior, terms))
  val, err = integrate.quad(integrand, lo, hi, points=points or None, limit=500, epsabs=1e-9)
  assert err < 1e-5
  return val


def _check_close(mc, exact, extra=1e-3):
  assert abs(float(mc.estimate) - exact) <= 4 * float(mc.stderr) + extra, (mc, exact)


def test_concentric_truth_matches_quadrature_over_the_radius():
  # |z|^2 / i^2 ~ chi2_d is sufficient: I(Z;Y) = I(|Z|^2; Y), a 1-D integral.
  d, k = 3, 5
  task = T.concentric(dim=d, num_classes=k)
  pdfs = [lambda s, i=i: stats.chi2.pdf(s / i**2, d) / i**2 for i in range(1, k + 1)]
  exact = _quadrature_mi(np.full(k, 1 / k), pdfs, 0, 2000, points=(1, 10, 50, 200))
  _check_close(task.mutual_information(KEY, 100_000), exact)
  _check_close(task.mutual_information_pmi(jax.random.key(1), 100_000), exact, 3e-3)


@pytest.mark.parametrize("dim,balanced", [(1, True), (2, False)])
def test_paper_mixture_truth_matches_quadrature_along_the_mean_direction(dim, balanced):
  # Means lie on the line through 1: the projection onto 1/sqrt(d) is sufficient.
  task = T.gaussian_paper(dim=dim, balanced=balanced)
  mus = np.array([0, 2, -2, 4, -4]) * math.sqrt(dim)
  pdfs = [lambda s, m=m: stats.norm.pdf(s - m) for m in mus]
  exact = _quadrature_mi(task.prior, pdfs, -20, 20, points=tuple(mus))
  _check_close(task.mutual_information(KEY, 100_000), exact)


def test_student_truth_matches_quadrature_in_one_dimension():
  task = T.student(nu=1, dim=1, num_classes=4, separation=3.0)
  mus = np.asarray(task.means)[:, 0].astype(np.float64)
  pdfs = [lambda s, m=m: stats.t.pdf(s - m, 1) for m in mus]
  exact = _quadrature_mi(task.prior, pdfs, -np.inf, np.inf)
  _check_close(task.mutual_information(KEY, 200_000), exact)


def test_null_task_is_exactly_independent():
  task = T.null(num_classes=100, dim=5)
  assert float(task.mutual_information(KEY).estimate) == 0.0
  s = task.sample(KEY, 500)
  np.testing.assert_allclose(task.pmi(s), 0.0, atol=1e-5)
  assert task.label_entropy == pytest.approx(math.log(100))


@pytest.mark.parametrize("spec", ["many_classes(num_classes=100,dim=20)",
                                  "zipf(num_classes=100,dim=10)", "image"])
def test_two_independent_monte_carlos_agree(spec):
  task = T.parse_task(spec)
  a = task.mutual_information(jax.random.key(1), 50_000)
  b = task.mutual_information_pmi(jax.random.key(2), 50_000)
  se = math.hypot(float(a.stderr), float(b.stderr))
  assert abs(float(a.estimate) - float(b.estimate)) <= 4 * se + 1e-3


def test_sparse_truth_does_not_depend_on_the_noise_dimensions():
  low = T.sparse(dim=2, informative=2, num_classes=10)
  high = T.sparse(dim=300, informative=2, num_classes=10)
  np.testing.assert_allclose(high.means[:, :2], low.means)
  a, b = low.mutual_information(jax.random.key(1), 50_000), high.mutual_information(
      jax.random.key(2), 50_000)
  assert abs(float(a.estimate) - float(b.estimate)) <= 4 * math.hypot(
      float(a.stderr), float(b.stderr)) + 1e-3


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_pmi_is_normalised_and_matches_the_posterior(spec):
  # sum_k p_k exp(PMI(x, k)) = 1 for every x, and the sampled PMI is PMI(x, y).
  task = T.parse_task(spec)
  s = task.sample(KEY, 64)
  assert s.x.shape == (64, task.dim) and s.z.shape == (64, task.latent_dim)
  assert s.y.dtype == jnp.int32 and int(s.y.min()) >= 0 and int(s.y.max()) < task.num_classes
  m = task.pmi_matrix(s.z)
  np.testing.assert_allclose(jax.nn.logsumexp(m + jnp.log(task.prior), -1), 0.0, atol=1e-4)
  np.testing.assert_allclose(task.pmi(s), m[jnp.arange(64), s.y], atol=1e-6)


@pytest.mark.parametrize("kind", T.Transformed.KINDS)
def test_transforms_are_invertible_and_leave_the_truth_unchanged(kind):
  base = T.concentric(dim=3, num_classes=5)
  task = T.Transformed("t", base, kind)
  s = task.sample(KEY, 256)
  assert not np.allclose(s.x, s.z)
  np.testing.assert_allclose(task.invert(s.x), s.z, rtol=1e-3, atol=1e-3)
  # The PMI read from the recovered latent equals the sample's exact PMI.
  np.testing.assert_allclose(task.pmi(s._replace(z=task.invert(s.x))), task.pmi(s), atol=1e-3)
  # Same latent law, same key: the latents and the exact PMI are the base task's.
  b = base.sample(KEY, 256)
  # (two compiled programs: equal up to float rounding, which may differ in the last bit by CPU)
  np.testing.assert_allclose(b.z, s.z, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(base.pmi(b), task.pmi(s), atol=1e-6)
  if kind == "half_cube":  # and so is the MC truth (one kind suffices: same code path)
    assert float(task.mutual_information(KEY, 20_000).estimate) == pytest.approx(
        float(base.mutual_information(KEY, 20_000).estimate), abs=1e-6)


def test_image_rendering_is_injective():
  task = T.image()
  s = task.sample(KEY, 128)
  assert s.x.shape == (128, 784)
  h = task.invert_features(s.x)
  np.testing.assert_allclose(h, s.z + 0.5 * jnp.tanh(s.z), atol=2e-3)


@pytest.mark.slow
def test_product_labels_add_exactly():
  a, b = T.concentric(dim=3, num_classes=5), T.gaussian_paper(dim=1)
  task = T.Product("p", a, b)
  s = task.sample(KEY, 256)
  y1, y2 = s.y // 5, s.y % 5
  pa = a.pmi(T.Sample(s.x[:, :3], y1, s.z[:, :3]))
  pb = b.pmi(T.Sample(s.x[:, 3:], y2, s.z[:, 3:]))
  np.testing.assert_allclose(task.pmi(s), pa + pb, atol=1e-4)
  ia, ib = a.mutual_information(jax.random.key(1), 20_000), b.mutual_information(
      jax.random.key(2), 20_000)
  ip = task.mutual_information(jax.random.key(3), 20_000)
  se = math.sqrt(float(ia.stderr)**2 + float(ib.stderr)**2 + float(ip.stderr)**2)
  assert abs(float(ip.estimate) - float(ia.estimate) - float(ib.estimate)) <= 4 * se + 1e-3
  assert task.label_entropy == pytest.approx(a.label_entropy + b.label_entropy)
  # Closed forms add too.
  assert T.Product("n", T.null(5, 2), T.null(3, 2)).exact_mutual_information() == 0.0


def test_truth_reaches_the_stderr_target():
  est = T.concentric(dim=3, num_classes=5).truth(start=50_000)
  assert float(est.stderr) <= T.TRUTH_STDERR_TARGET


def test_bad_input_names_the_argument():
  with pytest.raises(ValueError, match="unknown task family 'nope'"):
    T.make_task("nope")
  with pytest.raises(ValueError, match="num_classes"):
    T.null(num_classes=1)
  with pytest.raises(ValueError, match="K >= 2"):
    T.check_prior([1.0])
  with pytest.raises(ValueError, match="sum to 1"):
    T.check_prior([0.5, 0.6])
  with pytest.raises(ValueError, match="positive"):
    T.check_prior([1.5, -0.5])
  with pytest.raises(ValueError, match="bad parameters"):
    T.parse_task("concentric(dims=3)")
  with pytest.raises(ValueError, match="kind"):
    T.transformed(kind="twist")
  with pytest.raises(ValueError, match="informative"):
    T.sparse(dim=2, informative=5)
  with pytest.raises(ValueError, match="num_samples"):
    T.null().sample(KEY, 0)
