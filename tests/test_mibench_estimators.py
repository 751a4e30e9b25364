"""mibench estimators where the answer is known: oracles, bounds, kNN vs brute force, plug-in."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infocam_jax.mibench import estimators as E
from infocam_jax.mibench import knn
from infocam_jax.mibench import tasks as T

CFG = E.Config(hidden=(16,), steps=200, batch_size=32, eval_every=50)


def _data(task, seeds, n_train, n_test, seed=0):
  k = jax.random.key(seed)
  return (task.sample_seeds(jax.random.fold_in(k, 1), seeds, n_train),
          task.sample_seeds(jax.random.fold_in(k, 2), seeds, n_test))


def test_knn_matches_the_brute_force_loop():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(70, 3))
  y = rng.integers(0, 4, 70)
  y[0] = 9  # a singleton class is dropped by both
  x[y == 1] += 1.5
  for k in (1, 3, 5):
    est, se = knn.ross_mi(x, y, k, chunk_size=16)
    assert est == pytest.approx(knn.ross_mi_reference(x, y, k), abs=1e-10)
    assert se > 0


def test_knn_is_near_the_truth_on_an_easy_low_dimensional_task():
  task = T.gaussian_paper(dim=1)
  s = task.sample(jax.random.key(3), 4000)
  est, se = knn.ross_mi(np.asarray(s.x), np.asarray(s.y), 3)
  truth = float(task.mutual_information(jax.random.key(4), 50_000).estimate)
  assert abs(est - truth) <= 5 * se + 0.03


def test_label_oracles_read_the_test_samples_exact_mean_pmi():
  # With K classes enumerated, sum_k p_k e^{PMI(x,k)} = 1 per x: every label-critic bound
  # with the exact critic equals the mean exact PMI of the test sample (Zipf prior here).
  task = T.zipf(num_classes=20, dim=4)
  _, test = _data(task, 2, 10, 500)
  mean_pmi = np.asarray(task.pmi(test).mean(-1))
  for bound in ("infonce", "nwj", "dv", "demi"):
    est = E.estimate(f"oracle:{bound}/label", task, test, test, None, CFG)
    np.testing.assert_allclose(est.estimate, mean_pmi, atol=2e-4)


def test_infonce_with_the_exact_critic_is_capped_at_log_batch():
  task = T.many_classes(num_classes=50, dim=10, separation=8.0)  # I close to log 50 > log 8
  _, test = _data(task, 2, 10, 800)
  cfg = E.Config(batch_size=8)
  est = E.estimate("oracle:infonce/concat", task, test, test, None, cfg)
  assert np.all(est.estimate <= math.log(8) + 1e-5)
  assert np.all(est.estimate >= math.log(8) - 0.25)  # saturates: I - log 8 > 1.5 nats here


def test_concat_oracles_are_lower_bounds_near_the_truth_at_low_mi():
  task = T.gaussian_paper(dim=1)
  truth = float(task.mutual_information(jax.random.key(5), 50_000).estimate)
  _, test = _data(task, 3, 10, 4096)
  cfg = E.Config(batch_size=256)
  for bound in ("infonce", "nwj", "dv", "demi"):
    est = E.estimate(f"oracle:{bound}/concat", task, test, test, None, cfg)
    # Lower bound (up to the stderr over test batches) ...
    assert np.all(est.estimate <= truth + 4 * est.stderr + 0.01), bound
    # ... and tight with the exact critic when log B >> I (InfoNCE's bias is O(e^I / B)).
    assert np.all(est.estimate >= truth - 4 * est.stderr - 0.06), bound


def test_smile_clipping_breaks_the_bound_once_log_k_exceeds_tau():
  # Accidental positives carry e^{PMI} ~ K > e^tau: clipping at tau drops their weight,
  # so the clipped partition term is too small and the "bound" overshoots.
  task = T.many_classes(num_classes=400, dim=20, separation=12.0)
  _, test = _data(task, 1, 10, 4096)
  mean_pmi = float(task.pmi(test).mean())
  est = E.estimate("oracle:smile/label", task, test, test, None, E.Config(clip=1.0))
  assert float(est.estimate[0]) > mean_pmi + 0.3


@pytest.mark.slow
def test_seeds_trained_together_equal_seeds_trained_alone():
  task = T.gaussian_paper(dim=1)
  train, test = _data(task, 2, 400, 200)
  keys = jax.random.split(jax.random.key(7), 2)
  lp = jnp.log(jnp.asarray(task.prior, jnp.float32))
  kw = dict(critic="label", objective="ce", cfg=CFG, num_classes=5)
  both = E._train_and_read(keys, train.x, train.y, test.x, test.y, lp, **kw)
  alone = E._train_and_read(keys[1:], train.x[1:], train.y[1:], test.x[1:], test.y[1:], lp, **kw)
  np.testing.assert_allclose(both["classifier"][0][1], alone["classifier"][0][0], atol=1e-4)


@pytest.mark.slow
def test_trained_classifier_is_a_lower_bound_close_to_the_truth():
  task = T.gaussian_paper(dim=1)
  truth = float(task.mutual_information(jax.random.key(5), 50_000).estimate)
  train, test = _data(task, 2, 2000, 2000)
  cfg = E.Config(hidden=(32,), steps=600, batch_size=64, learning_rate=3e-3)
  res = E.run_estimators(["classifier", "classifier_t", "infonce/label"], task, train, test,
                         jax.random.key(0), cfg)
  for name, est in res.items():
    # In expectation the reading is I - E KL(p(y|x) || q(y|x)) <= I; noise is the stderr.
    assert np.all(est.estimate <= truth + 4 * est.stderr + 0.01), name
    assert np.all(est.estimate >= truth - 4 * est.stderr - 0.1), name
  np.testing.assert_array_equal(res["classifier"].estimate, res["infonce/label"].estimate)


@pytest.mark.slow
def test_concat_training_runs_all_bounds_and_returns_finite_values():
  task = T.gaussian_paper(dim=1)
  train, test = _data(task, 2, 300, 128)
  res = E.run_estimators(["infonce/concat", "smile/concat", "demi/concat"], task, train, test,
                         jax.random.key(0), CFG)
  for name, est in res.items():
    assert est.estimate.shape == (2,) and np.all(np.isfinite(est.estimate)), name
    assert np.all(est.estimate < task.label_entropy + 1), name
  assert np.all(res["infonce/concat"].estimate <= math.log(CFG.batch_size) + 1e-5)


@pytest.mark.slow
def test_gaussian_plugin_recovers_a_gaussian_task():
  task = T.many_classes(num_classes=10, dim=5, separation=3.0)
  train, test = _data(task, 2, 5000, 2000)
  mean_pmi = np.asarray(task.pmi(test).mean(-1))
  est = E.estimate("gaussian_lda", task, train, test, None)
  np.testing.assert_allclose(est.estimate, mean_pmi, atol=0.03)  # plug-in error at n=5000
  qda = E.estimate("gaussian_qda", T.concentric(dim=3, num_classes=5), *_data(
      T.concentric(dim=3, num_classes=5), 1, 5000, 2000), None)
  assert abs(float(qda.estimate[0]) - 0.457) < 4 * float(qda.stderr[0]) + 0.03


def test_bad_input_names_the_argument():
  task = T.gaussian_paper(dim=1)
  train, test = _data(task, 1, 50, 20)
  with pytest.raises(ValueError, match="unknown estimator name"):
    E.estimate("mine++", task, train, test, jax.random.key(0), CFG)
  with pytest.raises(ValueError, match="batch_size"):
    E.estimate("classifier", task, train, test, jax.random.key(0), E.Config(batch_size=64))
  with pytest.raises(ValueError, match="batch_size"):
    E.estimate("oracle:infonce/concat", task, train, test, None, E.Config(batch_size=32))
  with pytest.raises(ValueError, match="val_fraction"):
    E.Config(val_fraction=1.0)
  with pytest.raises(ValueError, match="x \\[S, n, d\\]"):
    E.estimate("knn", task, T.Sample(train.x[0], train.y[0], train.z[0]), test, None, CFG)
