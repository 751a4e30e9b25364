"""Smoke, reproducibility and bookkeeping tests of ``python -m experiments.synthetic_mi``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import synthetic_mi as sm
from experiments.configs import synthetic_mi as configs
from infocam_jax.models.mlp import MLP
from infocam_jax.train import optim

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**overrides):
  """Tiny sizes (seconds): one dimension, both settings, both objectives."""
  c = configs.get_config("quick")
  c.update(dict(dims="2", train_per_class=100, epochs=3, batch_size=50, mc_samples=20000))
  c.update(overrides)
  return sm.study_config(c)


def rows_of(cfg, path, workers=1):
  return sm.study(cfg, output=str(path), workers=workers, progress=False)["rows"]

REQUIRED_KEYS = {"dim", "balanced", "objective", "true_mi", "true_mi_test", "estimate", "stderr",
                 "accuracy"}
TIMING_KEYS = {"runtime_s", "ground_truth_runtime_s"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("synthetic_mi") / "rows.json"
  returned = sm.study(tiny(), output=str(out), workers=1, progress=False)
  with open(out) as f:
    record = json.load(f)
  assert record["quick"] is True and record["experiment"] == "synthetic_mi"
  return returned["rows"], record["rows"], out


def test_figure_written_next_to_the_json(tiny_run):
  figure = tiny_run[2].with_suffix(".png")
  with open(figure, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_smoke_json_rows(tiny_run, capsys):
  returned, rows, _ = tiny_run
  assert isinstance(rows, list) and len(rows) == 5  # 2 balanced + 3 imbalanced readings
  assert [(r["balanced"], r["objective"], r["estimator"]) for r in rows] == [
      (True, "softmax", "log_k"), (True, "pc_softmax", "pc"),
      (False, "softmax", "log_k"), (False, "softmax", "prior_corrected"),
      (False, "pc_softmax", "pc")]
  for r in rows:
    assert REQUIRED_KEYS | TIMING_KEYS <= set(r)
    assert r["dim"] == 2 and r["objective"] in ("softmax", "pc_softmax")
    for key in ("true_mi", "true_mi_stderr", "true_mi_test", "estimate", "stderr", "error",
                "accuracy", "balanced_accuracy", "val_nll", "runtime_s"):
      assert math.isfinite(r[key]), key
    assert 0 < r["true_mi"] < r["label_entropy"] <= math.log(5) + 1e-6
    assert 0 < r["true_mi_stderr"] < 0.01
    assert abs(r["true_mi_test"] - r["true_mi"]) < 0.3
    # 3 epochs on 500-750 points: a variational lower bound that has learnt something. Measured
    # (seed 0): estimates 0.79-1.05 nats against true MI 1.21-1.24, standard errors 0.027-0.045.
    assert 0.5 < r["estimate"] <= r["true_mi_test"] + 3 * r["stderr"], r
    assert 0.01 < r["stderr"] < 0.1
    assert 0.2 < r["accuracy"] <= 1 and 0.2 < r["balanced_accuracy"] <= 1
    assert r["error"] == pytest.approx(r["estimate"] - r["true_mi_test"], abs=1e-9)
    assert r["target_applies"] == (r["estimator"] == "pc" or (r["balanced"] and
                                                               r["estimator"] == "log_k"))
    assert r["config"]["train_per_class"] == 100 and r["config"]["quick"] is True
    assert r["n_train"] == (500 if r["balanced"] else 750)
    assert r["n_val"] == r["n_test"] == (100 if r["balanced"] else 150)
  assert json.loads(json.dumps(returned)) == rows
  assert sm.default_output(tiny()) == os.path.join("runs", "synthetic_mi_quick.json")
  assert sm.default_output(tiny(quick=False)) == os.path.join("runs", "synthetic_mi.json")


def test_failure_reading_differs_by_the_closed_form(tiny_run):
  """log K + log softmax_y exceeds log softmax_y - log p_y by log K + mean(log p_y)."""
  _, rows, _ = tiny_run
  by = {(r["balanced"], r["estimator"]): r for r in rows}
  gap = by[False, "log_k"]["estimate"] - by[False, "prior_corrected"]["estimate"]
  # test counts are exactly proportional to the prior [1..5]/15
  p = np.arange(1, 6) / 15
  assert gap == pytest.approx(math.log(5) + float(np.sum(p * np.log(p))), abs=1e-5)
  # With a uniform prior both objectives train the same network (same key): same estimate.
  assert by[True, "log_k"]["estimate"] == pytest.approx(by[True, "pc"]["estimate"], abs=1e-5)


def test_markdown_table_and_summary(tiny_run):
  _, rows, _ = tiny_run
  table = sm.markdown_table(rows)
  lines = table.splitlines()
  assert len(lines) == 2 + len(rows) and lines[0].startswith("| d |")
  assert all(line.count("|") == lines[0].count("|") for line in lines)
  text = sm.summary(rows, 1.0)
  assert "Target rows" in text and "log K" in text


def test_same_seed_same_numbers(tiny_run, tmp_path):
  """Same seed, same rows — also from two worker processes (each dimension in its own)."""
  _, rows, _ = tiny_run
  both = rows_of(tiny(dims="1,2"), tmp_path / "both.json", workers=2)
  again = [r for r in both if r["dim"] == 2]
  assert [r["dim"] for r in both] == [1] * 5 + [2] * 5
  assert all(r["config"]["dims"] == [1, 2] or r["config"]["dims"] == (1, 2) for r in again)
  strip = lambda rs: [{k: ({**v, "dims": None} if k == "config" else v) for k, v in r.items()
                       if k not in TIMING_KEYS} for r in rs]
  assert json.loads(json.dumps(strip(again))) == strip(rows)  # bitwise: floats compared exactly
  other = rows_of(tiny(seed=1), tmp_path / "other.json")
  assert [r["estimate"] for r in other] != [r["estimate"] for r in rows]


def test_splits_have_exact_counts_and_are_disjoint():
  cfg = tiny()  # the smoke run's sizes: compiled functions are reused
  data = sm.make_data(cfg, 2, jax.random.key(7, impl="rbg"))
  for setting, balanced in (("balanced", True), ("imbalanced", False)):
    d = data[setting]
    evals = sm.eval_counts(cfg, balanced)
    want = [sm.class_counts(cfg, balanced), evals, evals]
    rows = []
    for split, counts in zip((d.train, d.val, d.test), want):
      mask = np.asarray(split.mask)
      assert mask.sum() == split.n and np.all(mask[:split.n])  # real rows are a prefix
      y = np.asarray(split.y)[mask]
      np.testing.assert_array_equal(np.bincount(y, minlength=5), counts)
      rows.append(np.asarray(split.x)[mask])
    all_rows = np.concatenate(rows)
    assert len(np.unique(all_rows, axis=0)) == len(all_rows)  # no draw is reused across splits
    np.testing.assert_allclose(d.prior, np.asarray(want[0]) / sum(want[0]), rtol=1e-6)
    np.testing.assert_allclose(d.mixture.prior, d.prior, rtol=1e-6)


def test_learning_rate_schedule():
  schedule = jax.jit(optim.warmup_cosine_decay, static_argnums=(3, 4))
  lr = lambda s: float(schedule(jnp.int32(s), jnp.int32(10), jnp.int32(110), 1e-3, 0.01))
  assert lr(0) == pytest.approx(1e-4) and lr(9) == pytest.approx(1e-3)
  assert lr(10) == pytest.approx(1e-3) and lr(60) == pytest.approx(0.5 * (1e-3 + 1e-5))
  # cos(pi) is XLA's own polynomial: its last bits may differ by CPU and math flags.
  assert lr(110) == pytest.approx(1e-5, rel=1e-5) and lr(500) == pytest.approx(1e-5, rel=1e-5)


def test_mlp_architecture():
  model = MLP(5)
  params = jax.jit(model.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 10)))
  shapes = jax.tree.map(jnp.shape, params["params"])
  assert shapes == {"hidden_0": {"kernel": (10, 100), "bias": (100,)},
                    "hidden_1": {"kernel": (100, 100), "bias": (100,)},
                    "hidden_2": {"kernel": (100, 100), "bias": (100,)},
                    "logits": {"kernel": (100, 5), "bias": (5,)}}
  out = jax.jit(model.apply)(params, jnp.ones((7, 10)))
  assert out.shape == (7, 5) and out.dtype == jnp.float32
  with pytest.raises(ValueError, match="`x`"):
    model.apply(params, jnp.ones((7, 10), jnp.int32))


@pytest.mark.parametrize("override", [{"dims": "0"}, {"dims": "a"}, {"settings": "both"},
                                      {"objectives": "ce"}, {"epochs": 0},
                                      {"learning_rate": -1.0}])
def test_bad_config_fields_are_named(override):
  key = next(iter(override))
  with pytest.raises(ValueError, match=f"config.{key}"):
    tiny(**override)


def test_cli_bad_input_is_one_line_and_status_2(tmp_path):
  """A typo in an override: one error line, exit status 2, nothing written; --help exits 0."""
  run = lambda *a: subprocess.run([sys.executable, "-m", "experiments.synthetic_mi", *a],
                                  cwd=REPO, capture_output=True, text=True, timeout=120,
                                  env=dict(os.environ, JAX_PLATFORMS="cpu"))
  out = tmp_path / "x.json"
  proc = run("--config.epochz=3", f"--output={out}")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert proc.stderr.startswith("error: ") and "epochs" in proc.stderr  # the suggestion
  proc = run("--config.dims=0", f"--output={out}")
  assert proc.returncode == 2 and "config.dims" in proc.stderr and not out.exists()
  proc = run("--help")
  assert proc.returncode == 0 and "--config.train_per_class=10000" in proc.stdout
  assert "--output" in proc.stdout and "always written" in proc.stdout


def test_pc_softmax_trains_with_the_training_prior():
  """Balanced data: both objectives train the same network (uniform prior, same key), bitwise;
  imbalanced data: PC-softmax uses the class frequencies, so the networks differ (a uniform prior
  in PC-softmax training, i.e. plain softmax, would make them equal)."""
  cfg = tiny()
  data = sm.make_data(cfg, 2, jax.random.key(7, impl="rbg"))
  key = jax.random.key(3, impl="rbg")
  leaves = lambda setting, obj: jax.tree.leaves(
      sm.train_model(cfg, data[setting], obj, key, progress=False, desc="")[0])
  for a, b in zip(leaves("balanced", "softmax"), leaves("balanced", "pc_softmax")):
    np.testing.assert_array_equal(a, b)
  diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(leaves("imbalanced", "softmax"), leaves("imbalanced", "pc_softmax"))]
  assert max(diffs) > 1e-3, diffs
