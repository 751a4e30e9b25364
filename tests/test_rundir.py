"""The run-directory rule (``infocam_jax.train.rundir``) for every class of config field.

Fast: no training. The last test drives ``experiments.wsol --mode=evaluate`` on a
fabricated finished run (an export whose ``export.json`` holds the smoke config and a
``results.json``): a refused field must exit 2 naming the field, before any data is
opened, and leave ``DIR/results.json`` untouched. ``tests/test_wsol_experiment.py``
repeats the refusals on a really trained run (slow).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess

import pytest

from infocam_jax.train import config as config_lib
from infocam_jax.train import rundir

from experiments import _common

try:
  import multidevice  # tests/ on sys.path
except ImportError:  # pragma: no cover
  from tests import multidevice

SMOKE = os.path.join(multidevice.REPO, "experiments", "configs", "smoke.py")
WSOL_FIELDS = frozenset({"wsol.*"})

# One field of every class, with a value different from the smoke config's.
TRAINED = {  # what was trained or what data is evaluated: refused for every action
    "seed": 1, "data.image_size": 64, "data.resize_size": 64, "data.random_crop": False,
    "data.name": "cluttered_digits", "data.test_split": "validation",
    "data.eval_split": "test", "model.arch": "resnet18", "loss": "pc_softmax",
    "optimizer.learning_rate": 0.5, "batch_size": 8,
}
SCHEDULE = {"num_epochs": 7, "num_train_steps": 99, "eval_every_steps": 3,
            "keep_best_checkpoints": 3}  # resumable (continues training), not evaluable
OPERATIONAL = {"progress_bar": False, "eval_batch_size": 8, "data.data_dir": "/elsewhere",
               "distributed.process_id": 3, "keep_checkpoints": 9, "tensorboard": True,
               "data.num_workers": 4}
EVALUATION = {"wsol.region_size": 2, "wsol.methods": "cam", "wsol.checkpoint": "best"}


def _smoke() -> dict:
  return config_lib.to_dict(_common.load_config_module(SMOKE).get_config())


def _with(config: dict, key: str, value) -> dict:
  out = copy.deepcopy(config)
  *path, last = key.split(".")
  node = out
  for p in path:
    node = node[p]
  assert last in node, key  # the field exists: a typo would make the test pass vacuously
  assert node[last] != value, key
  node[last] = value
  return out


@pytest.mark.parametrize("action", ["resume", "evaluate"])
@pytest.mark.parametrize("key", sorted(TRAINED))
def test_training_and_data_fields_are_refused_naming_the_field(key, action):
  saved = _smoke()
  with pytest.raises(rundir.ConfigMismatchError, match=f"refusing to {action}") as e:
    rundir.check_config(saved, _with(saved, key, TRAINED[key]), "/runs/x", action=action,
                        evaluation_fields=WSOL_FIELDS)
  assert f"\n  {key}: " in str(e.value) and "/runs/x" in str(e.value)
  assert isinstance(e.value, ValueError)  # the experiments' exit status 2


@pytest.mark.parametrize("key", sorted(SCHEDULE))
def test_schedule_fields_continue_a_training_but_are_refused_to_an_evaluation(key):
  saved = _smoke()
  current = _with(saved, key, SCHEDULE[key])
  rundir.check_config(saved, current, "/runs/x", action="resume")
  with pytest.raises(rundir.ConfigMismatchError, match=key.replace(".", r"\.")):
    rundir.check_config(saved, current, "/runs/x", action="evaluate",
                        evaluation_fields=WSOL_FIELDS)


@pytest.mark.parametrize("action", ["resume", "evaluate"])
@pytest.mark.parametrize("key", sorted(OPERATIONAL) + sorted(EVALUATION))
def test_operational_and_evaluation_fields_are_allowed(key, action):
  saved = _smoke()
  value = {**OPERATIONAL, **EVALUATION}[key]
  rundir.check_config(saved, _with(saved, key, value), "/runs/x", action=action,
                      evaluation_fields=WSOL_FIELDS)
  if key in EVALUATION:  # ... only because the experiment declares them evaluation fields
    with pytest.raises(rundir.ConfigMismatchError, match=key.replace(".", r"\.")):
      rundir.check_config(saved, _with(saved, key, value), "/runs/x", action=action)


def test_every_difference_is_listed_and_json_round_trip_is_no_difference():
  saved = json.loads(json.dumps(_smoke()))  # tuples became lists
  current = _with(_with(_smoke(), "seed", 3), "data.image_size", 48)
  with pytest.raises(rundir.ConfigMismatchError) as e:
    rundir.check_config(saved, current, "D", action="evaluate")
  assert "seed: 0 -> 3" in str(e.value) and "data.image_size: 32 -> 48" in str(e.value)
  rundir.check_config(saved, _smoke(), "D", action="evaluate")
  rundir.check_config(None, current, "D")  # nothing saved: nothing to compare


def _results(workdir, config):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"config": config, "methods": {"cam": {"top1_loc": 12.5}}}, f)


def test_evaluation_dir_never_replaces_the_runs_results(tmp_path):
  config = _smoke()
  d = str(tmp_path)
  assert rundir.evaluation_dir(d, config, WSOL_FIELDS) == d  # no results yet
  _results(d, config)
  # An operational change is the same evaluation.
  assert rundir.evaluation_dir(d, _with(config, "eval_batch_size", 8), WSOL_FIELDS) == d
  other = _with(config, "wsol.region_size", 2)
  out = rundir.evaluation_dir(d, other, WSOL_FIELDS)
  assert out == os.path.join(d, "eval", "region_size=2")
  assert rundir.evaluation_dir(d, other, WSOL_FIELDS, name="k2") == os.path.join(d, "eval", "k2")
  assert rundir.evaluation_dir(d, other, WSOL_FIELDS, overwrite=True) == d
  _results(out, other)
  assert rundir.evaluation_dir(d, other, WSOL_FIELDS) == out  # the same evaluation again
  with pytest.raises(rundir.ConfigMismatchError, match="--eval_name"):
    rundir.evaluation_dir(d, _with(config, "wsol.methods", "cam"), WSOL_FIELDS,
                          name="region_size=2")


def test_finished_reuses_records_of_the_same_training_config(tmp_path):
  run_config, settings = _smoke(), {"test_splits": ["test"], "select": "last"}
  path = str(tmp_path / "result.json")
  assert rundir.finished(path, run_config, settings) == (None, False)
  with open(path, "w") as f:
    json.dump({"run_config": run_config, "eval_settings": settings, "train_steps": 30}, f)
  record, needs_eval = rundir.finished(path, _with(run_config, "progress_bar", False), settings)
  assert record["train_steps"] == 30 and not needs_eval
  assert rundir.finished(path, run_config, {**settings, "select": "best_val"})[1]
  # More epochs (resumable) or another seed: not finished with this config.
  assert rundir.finished(path, _with(run_config, "num_epochs", 7), settings) == (None, False)
  assert rundir.finished(path, _with(run_config, "seed", 1), settings) == (None, False)
  with open(path, "w") as f:
    f.write('{"run_config": ')  # cut by a crash
  assert rundir.finished(path, run_config, settings) == (None, False)


def _fake_finished_run(workdir, config):
  """A finished run's files, as far as ``--mode=evaluate`` reads them before the data."""
  os.makedirs(os.path.join(workdir, "export", "variables"))
  with open(os.path.join(workdir, "export", "export.json"), "w") as f:
    json.dump({"config": config, "step": 30}, f)
  _results(workdir, config)


@pytest.mark.parametrize("overrides,fields", [  # the two evaluations of issue 24
    (["--config.seed=1"], ["seed"]),
    (["--config.data.image_size=64", "--config.data.resize_size=64"],
     ["data.image_size", "data.resize_size"]),
])
def test_wsol_evaluate_refuses_before_opening_data(tmp_path, overrides, fields):
  workdir = str(tmp_path / "run")
  _fake_finished_run(workdir, _smoke())
  before = open(os.path.join(workdir, "results.json")).read()
  proc = subprocess.run(
      multidevice.wsol_command(SMOKE, workdir, ["--mode=evaluate", *overrides,
                                                "--config.progress_bar=False"]),
      cwd=multidevice.REPO, env=multidevice.subprocess_env(1), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert all(f"  {field}: " in proc.stderr for field in fields), proc.stderr[-3000:]
  assert "refusing to evaluate" in proc.stderr
  assert open(os.path.join(workdir, "results.json")).read() == before
  assert sorted(os.listdir(workdir)) == ["export", "results.json"]
