"""Properties of the softmax / PC-softmax MI estimators (infocam_jax.estimators)."""

from __future__ import annotations

import functools
import math

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from hypothesis import given
from hypothesis import strategies as st
from jax.experimental import checkify

import infocam_jax as ij
from infocam_jax import estimators

B, K = 6, 5  # fixed shapes: every new shape recompiles

finite = st.floats(-60, 60, allow_nan=False, width=32)
logits_st = hnp.arrays(np.float32, (B, K), elements=finite)
labels_st = hnp.arrays(np.int32, (B,), elements=st.integers(0, K - 1))
prior_st = hnp.arrays(np.float64, (K,), elements=st.floats(0.02, 1.0)).map(lambda c: c / c.sum())


# Hypothesis calls these many times with one shape: jit once (the eager paths,
# with their value checks, are covered by the example-based tests below).
pc_log_softmax = jax.jit(ij.pc_log_softmax)
pc_softmax = jax.jit(ij.pc_softmax)
pc_ce = jax.jit(ij.pc_softmax_cross_entropy_with_integer_labels)
pc_ce_dist = jax.jit(ij.pc_softmax_cross_entropy)
pmi = jax.jit(ij.pmi, static_argnames="objective")
grad_pc_ce = jax.jit(jax.grad(
    lambda z, y, p: jnp.sum(ij.pc_softmax_cross_entropy_with_integer_labels(z, y, p))))
grad_optax = jax.jit(jax.grad(
    lambda z, y, p: jnp.sum(optax.softmax_cross_entropy_with_integer_labels(z + jnp.log(p), y))))
optax_ce = jax.jit(
    lambda z, y, p: (optax.softmax_cross_entropy_with_integer_labels(z + jnp.log(p), y)
                     + jnp.log(p)[y]))
mean_with_stderr = jax.jit(estimators.mean_with_stderr)
merge = jax.jit(lambda a, b: a.merge(b))
rng = np.random.default_rng(0)


def np_log_softmax(z):
  z = np.asarray(z, np.float64)
  m = z.max(-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


# ----------------------------------------------------------------------------
# Math properties (hypothesis).
# ----------------------------------------------------------------------------


@given(logits_st, prior_st, hnp.arrays(np.float32, (B,), elements=st.floats(-1e3, 1e3, width=32)))
def test_shift_invariance(z, prior, shift):
  a = pc_log_softmax(z, prior)
  b = pc_log_softmax(z + shift[:, None], prior)
  np.testing.assert_allclose(a, b, atol=2e-3 + 1e-6 * np.abs(shift).max())


@given(logits_st, prior_st)
def test_matches_float64_reference(z, prior):
  # log s~_k = log_softmax(z + log p)_k - log p_k, computed independently in float64.
  ref = np_log_softmax(z + np.log(prior)) - np.log(prior)
  np.testing.assert_allclose(pc_log_softmax(z, prior), ref, atol=5e-5, rtol=1e-5)


@given(logits_st)
def test_uniform_prior_gives_k_times_softmax(z):
  uniform = np.full(K, 1 / K)
  np.testing.assert_allclose(pc_softmax(z, uniform), K * np.exp(np_log_softmax(z)),
                             rtol=1e-4, atol=1e-6)


@given(logits_st, prior_st)
def test_prior_weighted_sum_is_one(z, prior):
  total = jnp.sum(jnp.asarray(prior, jnp.float32) * pc_softmax(z, prior), axis=-1)
  np.testing.assert_allclose(total, np.ones(B), rtol=1e-5)
  # and s~_k <= 1 / p_k
  assert np.all(np.asarray(pc_log_softmax(z, prior)) <= -np.log(prior) + 1e-5)


@given(logits_st, labels_st, prior_st)
def test_gradient_equals_logit_adjusted_optax_loss(z, y, prior):
  np.testing.assert_allclose(grad_pc_ce(z, y, prior), grad_optax(z, y, prior), atol=1e-6)
  # and the values differ exactly by the constant log p_y.
  np.testing.assert_allclose(pc_ce(z, y, prior), optax_ce(z, y, prior), atol=5e-5, rtol=1e-5)


@given(logits_st, labels_st, prior_st)
def test_cross_entropy_is_negative_pmi(z, y, prior):
  np.testing.assert_array_equal(pc_ce(z, y, prior), -pmi(z, y, prior, objective="pc_softmax"))


@given(logits_st, labels_st, prior_st, hnp.arrays(np.float64, (B, K), elements=st.floats(0.0, 1.0)))
def test_probability_labels_form(z, y, prior, w):
  """One-hot labels give the integer form (as optax's pair); probability labels are the
  label-weighted mix of the integer form over classes (linear in the labels)."""
  one_hot = np.eye(K, dtype=np.float32)[y]
  np.testing.assert_allclose(pc_ce_dist(z, one_hot, prior), pc_ce(z, y, prior), rtol=1e-6,
                             atol=1e-5)
  w = (w + 1e-3) / (w + 1e-3).sum(-1, keepdims=True)
  per_class = np.stack([pc_ce(z, np.full(B, k, np.int32), prior) for k in range(K)], -1)
  np.testing.assert_allclose(pc_ce_dist(z, w.astype(np.float32), prior),
                             np.sum(w * per_class, -1), rtol=1e-5, atol=1e-4)


@given(hnp.arrays(np.float32, (B,), elements=finite), labels_st, prior_st)
def test_pmi_of_constant_logits_is_zero(c, y, prior):
  z = np.repeat(c[:, None], K, axis=1)
  np.testing.assert_allclose(pmi(z, y, prior, objective="pc_softmax"), 0, atol=1e-5)
  np.testing.assert_allclose(pmi(z, y), 0, atol=1e-5)


@given(logits_st, labels_st, prior_st)
def test_pmi_readings(z, y, prior):
  # balanced: log softmax_y + log K; softmax objective: log softmax_y - log p_y.
  ls = np_log_softmax(z)[np.arange(B), y]
  np.testing.assert_allclose(pmi(z, y), ls + math.log(K), atol=5e-5, rtol=1e-5)
  np.testing.assert_allclose(pmi(z, y, prior, objective="softmax"), ls - np.log(prior[y]),
                             atol=5e-5, rtol=1e-5)
  # a PC-softmax model's logits z equal a plain-softmax model's logits z + log p.
  np.testing.assert_allclose(pmi(z, y, prior, objective="pc_softmax"),
                             pmi(z + np.log(prior).astype(np.float32), y, prior,
                                    objective="softmax"), atol=1e-4)


@given(hnp.arrays(np.float32, (B, K), elements=st.sampled_from([-1e4, -3e3, 0.0, 1.0, 3e3, 1e4])),
       labels_st, prior_st)
def test_no_nan_or_inf_for_huge_logits(z, y, prior):
  for out in (pc_log_softmax(z, prior), pmi(z, y, prior, objective="pc_softmax"), pmi(z, y),
              pmi(z, y, prior, objective="softmax"), pc_ce(z, y, prior),
              grad_pc_ce(z, y, prior)):
    assert np.all(np.isfinite(out))
  assert np.all(np.isfinite(pc_softmax(z, prior)))


def test_zero_prior_entry_is_finite():
  z = rng.normal(size=(B, K)).astype(np.float32) * 5
  prior = np.array([0.0, 0.25, 0.25, 0.25, 0.25])
  y = jnp.array([1, 2, 3, 4, 1, 2])
  assert np.all(np.isfinite(ij.pmi(z, y, prior, objective="pc_softmax")))
  g = jax.grad(
      lambda z: jnp.sum(ij.pc_softmax_cross_entropy_with_integer_labels(z, y, prior)))(z)
  assert np.all(np.isfinite(g))
  np.testing.assert_allclose(g[:, 0], 0)  # a class of prior 0 gets no gradient


def test_low_precision_logits_are_computed_in_float32():
  z = jnp.array([[1.0, 2.0, 3.0, 4.0, 5.0]], jnp.bfloat16)
  out = ij.pc_log_softmax(z, np.full(K, 0.2))
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, np_log_softmax(np.float32(z)) + math.log(K), atol=1e-6)


# ----------------------------------------------------------------------------
# MIEstimate.
# ----------------------------------------------------------------------------


@given(hnp.arrays(np.float32, (40,), elements=st.floats(-10, 10, width=32)),
       hnp.arrays(np.bool_, (40,)))
def test_mean_with_stderr_and_merge(v, mask):
  est = mean_with_stderr(v)
  np.testing.assert_allclose(est.estimate, v.astype(np.float64).mean(), atol=1e-5)
  np.testing.assert_allclose(est.stderr, v.astype(np.float64).std(ddof=1) / math.sqrt(40),
                             atol=1e-5, rtol=1e-4)
  assert int(est.num_samples) == 40
  a = mean_with_stderr(v, mask)
  b = mean_with_stderr(v, ~mask)
  merged = merge(a, b)
  np.testing.assert_allclose(merged.estimate, est.estimate, atol=1e-5)
  np.testing.assert_allclose(merged.stderr, est.stderr, atol=1e-5, rtol=1e-4)
  assert int(merged.num_samples) == 40
  if mask.sum() >= 2:
    sub = v[mask].astype(np.float64)
    np.testing.assert_allclose(a.estimate, sub.mean(), atol=1e-5)
    np.testing.assert_allclose(a.stderr, sub.std(ddof=1) / math.sqrt(sub.size),
                               atol=1e-5, rtol=1e-4)


def test_mutual_information_estimate_and_interval():
  z = rng.normal(size=(1000, K)).astype(np.float32) * 3
  y = rng.integers(0, K, 1000).astype(np.int32)
  prior = ij.prior_from_counts([1, 2, 3, 4, 5])
  mi = ij.mutual_information(z, y, prior, objective="pc_softmax")
  v = np.asarray(ij.pmi(z, y, prior, objective="pc_softmax"), np.float64)
  np.testing.assert_allclose(mi.estimate, v.mean(), rtol=1e-5)
  np.testing.assert_allclose(mi.stderr, v.std(ddof=1) / math.sqrt(1000), rtol=1e-4)
  assert int(mi.num_samples) == 1000
  lo, hi = mi.confidence_interval(0.95)
  np.testing.assert_allclose(hi - lo, 2 * 1.959964 * mi.stderr, rtol=1e-5)
  assert "nats" in str(mi)
  with pytest.raises(ValueError, match="level"):
    mi.confidence_interval(1.5)
  # a single example: the estimate is defined, its standard error is not.
  one = ij.mutual_information(z[:1], y[:1], prior, objective="pc_softmax")
  assert np.isfinite(one.estimate) and np.isnan(one.stderr)


def test_where_masks_padding():
  z = rng.normal(size=(B, K)).astype(np.float32)
  y = jnp.array([0, 1, 2, 3, -1, 99])  # last two are padding
  where = jnp.array([True] * 4 + [False] * 2)
  mi = ij.mutual_information(z, y, where=where)
  ref = ij.mutual_information(z[:4], y[:4])
  np.testing.assert_allclose(mi.estimate, ref.estimate, rtol=1e-6)
  np.testing.assert_allclose(mi.stderr, ref.stderr, rtol=1e-5)
  assert int(mi.num_samples) == 4


# ----------------------------------------------------------------------------
# jit / no-jit / vmap agree.
# ----------------------------------------------------------------------------


class TransformsTest(chex.TestCase):

  def setUp(self):
    super().setUp()
    self.z = jnp.asarray(rng.normal(size=(4, B, K)).astype(np.float32) * 4)
    self.y = jnp.asarray(rng.integers(0, K, (4, B)).astype(np.int32))
    self.prior = ij.prior_from_counts(np.array([5, 10, 15, 20, 25]))

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters("pc_softmax", "softmax", "balanced")
  def test_variants_agree_with_reference(self, objective):
    prior = None if objective == "balanced" else self.prior
    obj = "softmax" if objective == "softmax" else "pc_softmax"

    @self.variant
    def f(z, y, prior):
      return (ij.pmi(z, y, prior, objective=obj),
              ij.mutual_information(z, y, prior, objective=obj))

    values, mi = f(self.z, self.y, prior)
    log_sm = np_log_softmax(self.z)
    p = np.full(K, 1 / K) if prior is None else np.asarray(prior, np.float64)
    if obj == "pc_softmax":
      log_q = np_log_softmax(np.asarray(self.z) + np.log(p))
    else:
      log_q = log_sm
    ref = np.take_along_axis(log_q - np.log(p), np.asarray(self.y)[..., None], -1)[..., 0]
    chex.assert_shape(values, (4, B))
    chex.assert_type(values, jnp.float32)
    np.testing.assert_allclose(values, ref, atol=5e-5, rtol=1e-5)
    np.testing.assert_allclose(mi.estimate, ref.mean(), atol=5e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_vmap_matches_batched(self):
    prior = self.prior

    @self.variant
    def batched(z, y):
      return (ij.pmi(z, y, prior, objective="pc_softmax"), ij.pc_log_softmax(z, prior),
              ij.pc_softmax_cross_entropy_with_integer_labels(z, y, prior))

    @self.variant
    def per_example(z, y):
      f = lambda zz, yy: (ij.pmi(zz, yy, prior, objective="pc_softmax"),
                          ij.pc_log_softmax(zz, prior),
                          ij.pc_softmax_cross_entropy_with_integer_labels(zz, yy, prior))
      return jax.vmap(jax.vmap(f))(z, y)

    chex.assert_trees_all_close(batched(self.z, self.y), per_example(self.z, self.y), atol=1e-6)

  def test_vmap_of_mutual_information_is_per_group(self):
    mi = jax.vmap(lambda z, y: ij.mutual_information(z, y, self.prior, objective="pc_softmax"))(
        self.z, self.y)
    chex.assert_shape((mi.estimate, mi.stderr, mi.num_samples), (4,))
    for g in range(4):
      one = ij.mutual_information(self.z[g], self.y[g], self.prior, objective="pc_softmax")
      np.testing.assert_allclose(mi.estimate[g], one.estimate, rtol=1e-6)
      np.testing.assert_allclose(mi.stderr[g], one.stderr, rtol=1e-5)


# ----------------------------------------------------------------------------
# Bad input.
# ----------------------------------------------------------------------------

Z = np.zeros((B, K), np.float32)
Y = np.arange(B, dtype=np.int32) % K
P = np.full(K, 1 / K)


@pytest.mark.parametrize("call, name", [
    (lambda: ij.pmi(Z, Y, np.array([0.5, 0.5, 0.5, -0.5, 0.0]), objective="pc_softmax"),
     "`prior`"),  # negative
    (lambda: ij.pmi(Z, Y, np.full(K, 0.3), objective="pc_softmax"), "`prior`"),  # sums to 1.5
    (lambda: ij.pmi(Z, Y, P[:3], objective="pc_softmax"), "`prior`"),  # wrong length
    (lambda: ij.pmi(Z, Y, np.array([np.nan, 0.25, 0.25, 0.25, 0.25]), objective="pc_softmax"),
     "`prior`"),
    (lambda: ij.pc_log_softmax(Z, np.zeros((0,))), "`prior`"),  # zero-length
    (lambda: ij.pc_log_softmax(np.zeros((B, 0), np.float32), np.zeros((0,))), "`logits`"),
    (lambda: ij.pmi(Z, Y + 1, P, objective="pc_softmax"), "`labels`"),  # 5 is out of range
    (lambda: ij.pmi(Z, Y - 1, P, objective="pc_softmax"), "`labels`"),  # -1 is out of range
    (lambda: ij.pmi(Z, Y[:3], P, objective="pc_softmax"), "`labels`"),  # shape mismatch
    (lambda: ij.pmi(Z, Y.astype(np.float32), P, objective="pc_softmax"), "`labels`"),
    (lambda: ij.pmi(Z.astype(np.int32), Y, P, objective="pc_softmax"), "`logits`"),
    (lambda: ij.pmi(np.float32(1.0), Y, P, objective="pc_softmax"), "`logits`"),
    (lambda: ij.pmi(Z, Y, P, objective="plain"), "`objective`"),
    (lambda: ij.pc_softmax_cross_entropy_with_integer_labels(Z, Y + 1, P), "`labels`"),
    (lambda: ij.mutual_information(Z, Y, P, where=np.ones(B), objective="pc_softmax"), "`where`"),
    (lambda: ij.mutual_information(Z, Y, P, where=np.ones(3, bool), objective="pc_softmax"),
     "`where`"),
    (lambda: ij.mutual_information(Z, Y + 1, P, where=np.ones(B, bool), objective="pc_softmax"),
     "`labels`"),
    # `objective` is required with a prior: the two readings differ.
    (lambda: ij.pmi(Z, Y, P), "`objective`"),
    (lambda: ij.mutual_information(Z, Y, P), "`objective`"),
    # The one-hot / probability form refuses integer labels, naming the integer form.
    (lambda: ij.pc_softmax_cross_entropy(Z, Y, P), "with_integer_labels"),
    (lambda: ij.pc_softmax_cross_entropy(Z, np.eye(K, dtype=np.float32)[Y][:, :3], P), "`labels`"),
    (lambda: ij.pc_softmax_cross_entropy(Z, np.full((B, K), 0.5, np.float32), P), "`labels`"),
    (lambda: ij.pc_softmax_cross_entropy(Z, np.eye(K, dtype=np.float32)[Y], P[:3]), "`prior`"),
    (lambda: ij.prior_from_counts(np.array([1, -1, 2])), "`counts`"),
    (lambda: ij.prior_from_counts(np.zeros(3)), "`counts`"),
    (lambda: ij.prior_from_counts(np.ones((2, 2))), "`counts`"),
    (lambda: ij.prior_from_counts(np.zeros((0,))), "`counts`"),
])
def test_bad_input_raises_naming_the_argument(call, name):
  with pytest.raises(ValueError, match=name):
    call()


pc_pmi = functools.partial(ij.pmi, objective="pc_softmax")
pc_mi = functools.partial(ij.mutual_information, objective="pc_softmax")


def test_static_errors_also_raise_under_jit():
  with pytest.raises(ValueError, match="`labels`"):
    jax.jit(pc_pmi)(Z, Y[:3], P)
  with pytest.raises(ValueError, match="`prior`"):
    jax.jit(pc_pmi)(Z, Y, P[:3])


def test_value_errors_under_jit_give_nan_not_a_clamped_class():
  out = jax.jit(pc_pmi)(Z, jnp.asarray(Y).at[0].set(K), P)
  assert np.isnan(out[0]) and np.all(np.isfinite(out[1:]))
  out = jax.jit(pc_pmi)(Z, jnp.asarray(Y).at[0].set(-1), P)
  assert np.isnan(out[0])
  assert np.isnan(jax.jit(pc_mi)(Z, jnp.asarray(Y).at[0].set(K), P).estimate)
  assert np.all(np.isnan(jax.jit(ij.pc_log_softmax)(Z, -P)))


def test_checked_reports_value_errors_inside_jit():
  f = jax.jit(ij.checked(pc_mi))
  err, mi = f(Z, Y, P)
  assert err.get() is None
  err.throw()  # no error: does nothing
  np.testing.assert_allclose(mi.estimate, 0, atol=1e-6)

  err, _ = f(Z, jnp.asarray(Y).at[2].set(7), P)
  assert "`labels`" in err.get()
  with pytest.raises(ValueError, match="`labels`"):  # checkify.JaxRuntimeError is a ValueError
    err.throw()
  err, _ = f(Z, Y, jnp.full(K, 0.3))
  assert "`prior`" in err.get() and "sum" in err.get()
  err, _ = f(Z, Y, jnp.asarray(P).at[0].set(-0.1).at[1].add(0.1))
  assert "`prior`" in err.get()
  # padding masked out by `where` is not an error.
  err, _ = f(Z, jnp.asarray(Y).at[0].set(-1), P, where=jnp.arange(B) > 0)
  assert err.get() is None


def test_checked_composes_with_vmap_and_user_functions():
  def eval_step(z, y):
    return (ij.mutual_information(z, y, P, objective="pc_softmax").estimate
            + jnp.mean(ij.pc_softmax_cross_entropy_with_integer_labels(z, y, P)))

  zb = jnp.zeros((3, B, K))
  yb = jnp.tile(jnp.asarray(Y), (3, 1)).at[1, 0].set(K)
  err, out = jax.jit(jax.vmap(ij.checked(eval_step)))(zb, yb)
  assert out.shape == (3,)
  assert "`labels`" in err.get()
  err, _ = jax.jit(ij.checked(eval_step, errors=checkify.user_checks | checkify.nan_checks))(
      zb[0], yb[0])
  assert err.get() is None


def test_prior_from_counts():
  p = ij.prior_from_counts(np.array([5000, 10000, 15000, 20000, 25000]))
  chex.assert_type(p, jnp.float32)
  np.testing.assert_allclose(p, np.arange(1, 6) / 15, rtol=1e-7)
  np.testing.assert_allclose(jax.jit(ij.prior_from_counts)(jnp.array([1.0, 3.0])), [0.25, 0.75])


def test_estimate_and_interval_print_as_numbers_in_nats():
  """The README's ``print(mi, mi.confidence_interval(0.95))`` prints numbers, not Array tuples."""
  mi = ij.MIEstimate(jnp.float32(1.4873), jnp.float32(0.0036), jnp.int32(15000))
  ci = mi.confidence_interval(0.95)
  assert str(mi) == "1.4873 ± 0.0036 nats (n=15000)"
  lo, hi = 1.4873 - 1.959964 * 0.0036, 1.4873 + 1.959964 * 0.0036
  assert str(ci) == f"[{lo:.4f}, {hi:.4f}] nats" and "Array" not in str(ci)
  np.testing.assert_allclose((ci.low, ci.high), (lo, hi), rtol=1e-6)
