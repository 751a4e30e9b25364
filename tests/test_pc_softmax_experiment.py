"""``experiments.pc_softmax`` end to end, plus the frozen-backbone wrapper.

The end-to-end runs use the ``small`` config (the offline imbalanced digits at
32x32: 220 training images, 80 validation, 80 test; a few steps) with two
seeds and both objectives, in this process. One module-scoped run is shared
by the schema, figure, independent-recomputation and resume tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from experiments import pc_softmax as exp
from experiments.configs import pc_softmax as configs
from infocam_jax import data as data_lib
from infocam_jax import estimators, models
from infocam_jax.evaluators import classification
from infocam_jax.train import build
from infocam_jax.train import steps as steps_lib
from infocam_jax.train.state import init_train_state

try:
  import multidevice  # tests/ on sys.path
except ImportError:  # pragma: no cover
  from tests import multidevice

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 10


def _small(**overrides):
  c = configs.get_config("small")
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


class _Echo:
  def __init__(self):
    self.lines = []

  def __call__(self, msg):
    self.lines.append(msg)


# -- the frozen-backbone wrapper ------------------------------------------------------


def test_last_layer_only_trains_the_head_alone():
  inner = models.create_model("resnet_tiny", 4)
  model = models.LastLayerOnly(inner, trainable=("fc",))
  x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
  y = (np.arange(4) % 4).astype(np.int32)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  reference = jax.eval_shape(lambda: inner.init(jax.random.PRNGKey(0), x))
  assert jax.tree.structure(variables) == jax.tree.structure(reference)  # loadable by `inner`
  assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, reference)
  tx = optax.sgd(0.1, momentum=0.9)  # no weight decay (the experiment requires it)
  # Jitted: eager initialisation compiles every op on its own (~30 s more here).
  state0 = jax.jit(lambda: init_train_state(model, tx, jax.random.PRNGKey(0), (8, 8, 3)))()
  step = jax.jit(steps_lib.make_train_step(model, tx, num_classes=4, loss="pc_softmax",
                                           class_prior=np.array([0.1, 0.2, 0.3, 0.4])))
  state = state0
  for _ in range(2):
    state, metrics = step(state, {"image": x, "label": y})
  assert np.isfinite(float(metrics["loss"]))
  for name in state0.params:
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state0.params[name]),
                                                    jax.tree.leaves(state.params[name])))
    assert same == (name != "fc"), name  # backbone bitwise unchanged, the head trained
  for a, b in zip(jax.tree.leaves(state0.batch_stats), jax.tree.leaves(state.batch_stats)):
    np.testing.assert_array_equal(a, b)  # BatchNorm statistics frozen too (inference mode)
  # Inference mode whatever `train` says: the plain model's eval outputs.
  both = jax.jit(lambda v: (model.apply(v, x, train=True)[0], inner.apply(v, x)[0]))
  got, want = both(state.variables)
  np.testing.assert_array_equal(got, want)


# -- metrics helpers -------------------------------------------------------------------


def test_weighted_mean_is_the_stratified_estimator():
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(3), [4, 7, 9])
  values = rng.normal(size=labels.size)
  w = np.array([0.5, 0.3, 0.2])
  est, se = classification.weighted_mean(values, labels, w)
  means = [values[labels == c].mean() for c in range(3)]
  variances = [values[labels == c].var(ddof=1) / np.sum(labels == c) for c in range(3)]
  assert est == pytest.approx(float(np.dot(w, means)), rel=1e-12)
  assert se == pytest.approx(float(np.sqrt(np.dot(w ** 2, variances))), rel=1e-12)
  # Weights proportional to the class counts: the plain mean.
  est2, _ = classification.weighted_mean(values, labels, np.array([4, 7, 9]) / 20)
  assert est2 == pytest.approx(float(values.mean()), rel=1e-12)
  # Absent classes are dropped and the remaining weights renormalised.
  est3, _ = classification.weighted_mean(values[labels > 0], labels[labels > 0], w)
  assert est3 == pytest.approx((0.3 * means[1] + 0.2 * means[2]) / 0.5, rel=1e-12)


def test_classification_metrics_closed_forms():
  rng = np.random.default_rng(2)
  labels = np.repeat(np.arange(4), 5)
  logits = rng.normal(size=(20, 4)).astype(np.float32)
  logits[np.arange(20), labels] += 2.0
  counts = np.array([10, 30, 10, 30])
  prior = counts / counts.sum()
  pred = logits.argmax(-1)
  per_class = [100 * np.mean(pred[labels == c] == c) for c in range(4)]
  soft = classification.classification_metrics(logits, labels, objective="softmax", prior=prior,
                                    class_counts_train=counts)
  assert soft["accuracy"] == pytest.approx(100 * np.mean(pred == labels))
  assert soft["per_class_accuracy"] == pytest.approx(per_class)
  assert soft["mean_per_class_accuracy"] == pytest.approx(np.mean(per_class))
  assert soft["minority_class_accuracy"] == pytest.approx(np.mean([per_class[0], per_class[2]]))
  assert soft["majority_class_accuracy"] == pytest.approx(np.mean([per_class[1], per_class[3]]))
  assert np.trace(soft["confusion"]) == np.sum(pred == labels)
  log_sm = logits - np.log(np.exp(logits.astype(np.float64)).sum(-1, keepdims=True))
  pick = log_sm[np.arange(20), labels]
  assert soft["loss"] == pytest.approx(-pick.mean(), rel=1e-5)
  # Balanced test set: the training-prior weighting is a weighted mean of class means.
  class_means = np.array([np.mean(np.log(4) + pick[labels == c]) for c in range(4)])
  assert soft["mi"]["estimate"] == pytest.approx(float(prior @ class_means), rel=1e-5)
  assert soft["mi"]["test_mean"] == pytest.approx(float(np.mean(np.log(4) + pick)), rel=1e-5)
  corr = np.array([np.mean(pick[labels == c] - np.log(prior[c])) for c in range(4)])
  assert soft["mi_prior_corrected"]["estimate"] == pytest.approx(float(prior @ corr), rel=1e-5)
  pc = classification.classification_metrics(logits, labels, objective="pc_softmax", prior=prior,
                                  class_counts_train=counts)
  assert pc["accuracy"] == soft["accuracy"]  # argmax z for both objectives
  log_pc = np.asarray(estimators.pc_log_softmax(logits, prior))[np.arange(20), labels]
  assert pc["loss"] == pytest.approx(-log_pc.mean(), rel=1e-5)
  assert "mi_prior_corrected" not in pc


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", configs.VARIANTS)
def test_every_variant_validates(variant):
  exp.validate(configs.get_config(variant))


@pytest.mark.parametrize("overrides, message", [
    ({"experiment.objectives": "softmax,focal"}, "objectives"),
    ({"experiment.objectives": "softmax,softmax"}, "objectives"),
    ({"data.eval_split": "test"}, "model selection must not see the test data"),
    ({"model.last_layer_only": True, "optimizer.weight_decay": 1e-4}, "weight_decay must be 0"),
    ({"data.mean": (0.5, 0.5)}, "data.mean"),
    ({"experiment.num_seeds": 0}, "num_seeds"),
    ({"data.name": "imagenet"}, "unknown dataset"),
    ({"experiment.select": "best_val", "data.eval_split": ""}, "eval_split"),
])
def test_invalid_configs_are_rejected(overrides, message):
  with pytest.raises(ValueError, match=message):
    exp.validate(_small(**overrides))


# -- missing datasets ------------------------------------------------------------------------


@pytest.mark.parametrize("variant, dataset", [("mnist", "mnist"), ("cub", "caltech_birds2011")])
def test_missing_dataset_raises_the_data_module_error(tmp_path, variant, dataset):
  c = configs.get_config(variant)
  c.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(ValueError, match="input missing") as info:
    exp.prepare(c, str(tmp_path / "run"))
  msg = str(info.value)
  assert dataset in msg and str(tmp_path / "tfds") in msg  # what, and where it looked
  assert f"tfds build {dataset}" in msg  # how to obtain it
  assert not (tmp_path / "run").exists()


def test_paper_configs_never_train_from_scratch_silently(tmp_path):
  """A config the paper runs with pretrained weights fails with where to get them ..."""
  c = configs.get_config("cub")
  assert c.model.pretrained.endswith("resnet50-0676ba61.pth")
  c.model.pretrained = str(tmp_path / "resnet50-0676ba61.pth")
  c.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(ValueError, match="input missing") as info:
    exp.prepare(c, str(tmp_path / "run"))
  msg = str(info.value)
  assert "Pretrained weights for resnet50 not found" in msg and "download.pytorch.org" in msg
  assert "--config.model.pretrained=none" in msg
  # ... unless the user says so: "none" is from scratch (no weights file looked for).
  c.model.pretrained = "none"
  with pytest.raises(ValueError) as info:
    exp.prepare(c, str(tmp_path / "run"))
  assert "Pretrained" not in str(info.value) and "caltech_birds2011" in str(info.value)
  assert build.initial_variables(c, 200) is None
  from experiments.configs import paper
  for variant in paper.VARIANTS:  # every WSOL paper run starts from torchvision weights
    assert paper.get_config(variant).model.pretrained.endswith(".pth"), variant


@pytest.mark.slow
def test_missing_dataset_cli_exits_with_the_message(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.pc_softmax",
       "--config=experiments/configs/pc_softmax.py:mnist", f"--workdir={tmp_path / 'run'}",
       f"--config.data.data_dir={tmp_path / 'tfds'}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-3000:]  # the README's table: 2 = missing data
  assert "\nerror: " in "\n" + proc.stderr and "mnist" in proc.stderr
  assert "tfds build mnist" in proc.stderr and str(tmp_path / "tfds") in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "run" / "results.json").exists()


# -- end to end -------------------------------------------------------------------------------


def _stat_ok(s, n):
  assert set(s) >= {"mean", "std", "per_seed"} and len(s["per_seed"]) == n
  assert s["mean"] == pytest.approx(np.mean(s["per_seed"]))
  assert s["std"] == pytest.approx(np.std(s["per_seed"], ddof=1))


@pytest.mark.slow
def test_end_to_end_smoke_resume_and_skip(tmp_path):
  """One shared run (2 seeds x 2 objectives, 12 steps each) through the command line, with
  two worker processes and a persistent compilation cache: SIGTERMed once both workers
  have started (exit 75, no orphaned worker), then SIGKILLed (the workers notice the dead
  parent, checkpoint and exit), then the same command finishes it; then schema, figure,
  an independent recomputation, and in-process re-runs that skip, resume and
  re-evaluate."""
  import signal  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "run")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "xla_cache"))
  cmd = [sys.executable, "-m", "experiments.pc_softmax",
         "--config=experiments/configs/pc_softmax.py:small", f"--workdir={workdir}",
         "--config.keep_checkpoints=3", "--config.experiment.parallel_runs=2"]
  def start_and_wait_for_two_workers():
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started, lines = 0, []
    while started < 2:
      line = proc.stdout.readline()
      assert line, f"ended early: {''.join(lines)[-3000:]}{proc.communicate()[1][-3000:]}"
      lines.append(line)
      started += line.count("training in")
    return proc, multidevice.child_pids(proc.pid)

  def assert_gone(workers):
    assert multidevice.wait_gone(workers) == [], "a worker outlived the stopped run"

  first, workers = start_and_wait_for_two_workers()
  first.send_signal(signal.SIGTERM)
  out, err = first.communicate(timeout=600)
  assert first.returncode == exp.EXIT_INTERRUPTED, err[-5000:]
  assert "Stopped: 4 of 4 runs stopped early" in err and "not started" in err, err[-3000:]
  assert err.count("(checkpoint saved)") == 2, err[-3000:]
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  assert_gone(workers)

  second, workers = start_and_wait_for_two_workers()
  assert len(workers) >= 2
  second.kill()  # SIGKILL: nothing in the parent runs; the workers must stop on their own
  second.communicate(timeout=600)  # EOF once every worker has closed the pipe
  assert_gone(workers)

  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-5000:]  # (how many runs were left varies)
  assert "| PC-softmax |" in proc.stdout  # the markdown table
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  config = _small(keep_checkpoints=3)  # parallel_runs is not part of a run's identity
  _check_schema(workdir)
  # The documented table (BUILD_NOTES, tools.doc_tables) is what this code prints after a
  # stop, a SIGKILL and a resume: exactly on the machine that recorded it, by shape elsewhere.
  from tools import doc_tables  # pylint: disable=g-import-not-at-top
  assert doc_tables.compare_fresh("pc_softmax", ["runs/pc_small/results.json"],
                                  [results]) in ("exact", "shape")
  _check_independent_evaluation(config, workdir, results)
  _check_rerun_skip_resume(config, workdir, results)


def _check_schema(workdir):
  on_disk = json.load(open(os.path.join(workdir, "results.json")))
  assert on_disk["seeds"] == [0, 1] and on_disk["objectives"] == ["softmax", "pc_softmax"]
  assert on_disk["test_split"] == "test" and on_disk["num_classes"] == K
  assert on_disk["train_class_counts"] == [4, 40] * 5
  assert on_disk["minority_classes"] == [0, 2, 4, 6, 8]
  assert "balanced" in on_disk["protocol"]["test_set"]
  assert "validation" in on_disk["protocol"]["selection"]
  for obj in ("softmax", "pc_softmax"):
    r = on_disk[obj]
    for key in ("accuracy", "mean_per_class_accuracy", "minority_class_accuracy",
                "majority_class_accuracy"):
      _stat_ok(r[key], 2)
      assert all(0.0 <= v <= 100.0 for v in r[key]["per_seed"])
    # Balanced test set: accuracy == mean per-class accuracy, seed by seed.
    np.testing.assert_allclose(r["accuracy"]["per_seed"],
                               r["mean_per_class_accuracy"]["per_seed"], atol=1e-9)
    pc = r["per_class_accuracy"]
    assert len(pc["mean"]) == len(pc["std"]) == K
    assert len(pc["per_seed"]) == 2 and all(len(p) == K for p in pc["per_seed"])
    np.testing.assert_allclose(pc["mean"], np.mean(pc["per_seed"], axis=0))
    np.testing.assert_allclose(pc["std"], np.std(pc["per_seed"], axis=0, ddof=1))
    np.testing.assert_allclose(np.mean(pc["per_seed"], axis=1),
                               r["mean_per_class_accuracy"]["per_seed"])
    _stat_ok(r["mi"], 2)
    assert len(r["mi"]["stderr_per_seed"]) == 2 and all(s > 0 for s in r["mi"]["stderr_per_seed"])
    assert r["splits"]["test"]["accuracy"] == r["accuracy"]
    assert len(r["wall_time_s"]) == 2 and r["train_steps"] == [12, 12]
    assert all(s in (6, 12) for s in r["selected_step"])  # validated every 6 of 12 steps
    for seed, step in zip((0, 1), r["selected_step"]):
      run_dir = os.path.join(workdir, obj, f"seed_{seed}")
      assert os.path.isdir(os.path.join(run_dir, "checkpoints", str(step)))
      assert os.path.exists(os.path.join(run_dir, "result.json"))
    val = r["val"]["val/mean_per_class_accuracy"]["per_seed"]
    assert len(val) == 2 and all(0 <= v <= 100 for v in val)  # percent, as every accuracy
  assert "mi_prior_corrected" in on_disk["softmax"]
  assert "mi_prior_corrected" not in on_disk["pc_softmax"]
  diff = on_disk["difference_pc_minus_softmax"]["mean_per_class_accuracy"]
  np.testing.assert_allclose(
      diff["per_seed"], np.subtract(on_disk["pc_softmax"]["mean_per_class_accuracy"]["per_seed"],
                                    on_disk["softmax"]["mean_per_class_accuracy"]["per_seed"]))
  assert on_disk["config"]["experiment"]["num_seeds"] == 2
  assert {"jax", "flax", "optax"} <= set(on_disk["versions"])
  assert on_disk["device"]["platform"] == "cpu"
  assert on_disk["timing"]["wall_time_s"] > 0 and on_disk["timing"]["cpu_time_s"] > 0
  assert on_disk["figures"] == ["per_class_accuracy.png"]
  with open(os.path.join(workdir, "per_class_accuracy.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "| PC-softmax |" in open(os.path.join(workdir, "results.md")).read()


def _check_independent_evaluation(config, workdir, results):
  """One run's test metrics from its selected checkpoint with plain orbax + numpy."""
  run_dir = os.path.join(workdir, "pc_softmax", "seed_1")
  step = results["pc_softmax"]["selected_step"][1]
  state = ocp.StandardCheckpointer().restore(os.path.join(run_dir, "checkpoints", str(step),
                                                          "state"))
  variables = {"params": state["params"]}
  if state.get("batch_stats"):
    variables["batch_stats"] = state["batch_stats"]
  source = data_lib.load_source("imbalanced_digits/small", "test")
  pipe = data_lib.make_pipeline(source, batch_size=80, train=False, image_size=32, seed=0)
  batch = pipe.get_batch(0)
  assert batch["mask"].all()
  model = models.create_model(config.model.arch, K, **build.model_options(config))
  logits = np.asarray(jax.jit(model.apply)(variables, batch["image"])[0])
  pred = logits.argmax(-1)
  per_class = [100 * np.mean(pred[batch["label"] == c] == c) for c in range(K)]
  got = results["pc_softmax"]["per_class_accuracy"]["per_seed"][1]
  np.testing.assert_allclose(got, per_class, atol=1e-9)
  prior = np.array([4, 40] * 5) / 220
  pmi = np.asarray(estimators.pmi(logits, batch["label"], prior, objective="pc_softmax"))
  class_means = np.array([pmi[batch["label"] == c].mean() for c in range(K)])
  assert results["pc_softmax"]["mi"]["per_seed"][1] == pytest.approx(float(prior @ class_means),
                                                                      rel=1e-4, abs=1e-5)


def _check_rerun_skip_resume(config, workdir, results):
  echo = _Echo()
  again = exp.run(config, workdir, echo=echo)
  assert sum("skipped" in line for line in echo.lines) == 4
  assert not any("training in" in line for line in echo.lines)
  for obj in ("softmax", "pc_softmax"):
    assert again[obj]["per_class_accuracy"] == results[obj]["per_class_accuracy"]

  # "Interrupt" one run after its first checkpoint: drop everything written later.
  run_dir = os.path.join(workdir, "softmax", "seed_1")
  ckpts = sorted(int(s) for s in os.listdir(os.path.join(run_dir, "checkpoints")) if s.isdigit())
  assert ckpts == [6, 12]
  shutil.rmtree(os.path.join(run_dir, "checkpoints", "12"))
  shutil.rmtree(os.path.join(run_dir, "export"))
  os.remove(os.path.join(run_dir, "result.json"))
  echo = _Echo()
  resumed = exp.run(config, workdir, echo=echo)
  assert sum("skipped" in line for line in echo.lines) == 3
  assert any("Resuming" in line and "from step 6" in line for line in echo.lines)
  # Exact resume (CPU): the same numbers as the uninterrupted run.
  for obj in ("softmax", "pc_softmax"):
    assert resumed[obj]["per_class_accuracy"] == results[obj]["per_class_accuracy"]
    assert resumed[obj]["mi"]["per_seed"] == results[obj]["mi"]["per_seed"]

  # Evaluation-only changes re-evaluate without training; training changes are refused.
  echo = _Echo()
  last = exp.run(_small(keep_checkpoints=3, **{"experiment.select": "last"}), workdir, echo=echo)
  assert sum("re-evaluating" in line for line in echo.lines) == 4
  assert not any("training in" in line for line in echo.lines)
  assert last["softmax"]["selected_step"] == [12, 12]
  with pytest.raises(ValueError, match="different config"):
    exp.run(_small(keep_checkpoints=3, **{"optimizer.learning_rate": 0.5}), workdir)
