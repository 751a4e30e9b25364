"""experiments/mi_benchmark.py and infocam_jax.mibench.report: verdicts, bad input, a tiny run."""

import json
import math
import os

import numpy as np
import pytest

from experiments import _common
from experiments import mi_benchmark
from experiments.configs import mi_benchmark as configs
from infocam_jax.mibench import report


def test_verdicts_use_paired_errors_and_two_standard_errors():
  truth, log_k = 1.0, math.log(10)
  good = [1.01, 0.99, 1.02, 0.98, 1.00]
  bad = [0.5, 0.6, 0.55, 0.52, 0.58]
  assert report.verdict(good, bad, truth, log_k) == "win"
  assert report.verdict(bad, good, truth, log_k) == "lose"
  noisy = [1.3, 0.7, 1.25, 0.75, 1.0]
  assert report.verdict(noisy, [1.2, 0.8, 1.3, 0.7, 1.05], truth, log_k) == "tie"
  assert report.verdict(good, [1.0, np.nan, 1.0, 1.0, 1.0], truth, log_k) == "win"
  assert report.verdict([1e9] * 5, good, truth, log_k) == "lose"


def test_estimator_row_statistics_and_divergence():
  row = report.estimator_row("e", [1.1, 0.9, -5.0], [0.1, 0.1, 0.1], 2.0, 1.0, [1.0, 1.0, 1.0],
                             math.log(5))
  assert row["diverged"] == 1
  assert row["bias"] == pytest.approx(0.0)
  assert row["rmse"] == pytest.approx(0.1)
  assert row["std"] == pytest.approx(np.std([1.1, 0.9], ddof=1))


def test_samples_needed_is_the_first_n_from_which_the_bias_stays_small():
  curve = [(100, -0.5), (300, -0.04), (1000, -0.08), (3000, -0.01)]
  assert report.samples_needed(curve, truth=1.0) == 3000
  assert report.samples_needed([(100, 0.2)], truth=1.0) is None
  assert report.samples_needed([(10, -0.2), (30, -0.15)], truth=4.0) == 10  # 5 % of 4 nats


@pytest.mark.parametrize("variant", configs.VARIANTS)
def test_both_tiers_validate(variant):
  _common.validate(configs.get_config(variant), mi_benchmark._schema())


def _tiny(**overrides):
  c = configs.get_config("quick")
  c.tasks = "null(num_classes=3,dim=2)"
  c.estimators = "classifier,knn,oracle:infonce/label"
  c.num_seeds, c.n_train, c.n_test, c.steps, c.eval_every = 2, 200, 100, 20, 10
  c.hidden, c.batch_size, c.curve_task = "8", 16, ""
  for k, v in overrides.items():
    setattr(c, k, v)
  return c


@pytest.mark.parametrize("overrides,match", [
    (dict(estimators="classifier,mine++"), "unknown estimator"),
    (dict(tasks="nope(dim=2)"), "unknown task family"),
    (dict(tasks="null(num_classes=1,dim=2)"), "num_classes"),
    (dict(batch_size=500), "batch_size"),
    (dict(tasks="zipf(num_classes=5,exponent=-1e9)"), "prior"),
])
def test_bad_input_is_a_usage_error_naming_the_argument(tmp_path, overrides, match):
  with pytest.raises(_common.UsageError, match=match):
    mi_benchmark.benchmark(_tiny(**overrides), output=str(tmp_path / "r.json"))


@pytest.mark.slow
def test_a_tiny_run_writes_json_tables_and_figures(tmp_path):
  out = tmp_path / "r.json"
  c = _tiny(curve_task="null(num_classes=3,dim=2)", curve_per_class="40,80",
            curve_estimators="classifier,knn")
  rec = mi_benchmark.benchmark(c, output=str(out))
  data = json.loads(out.read_text())
  assert data["tasks"][0]["truth"] == 0.0
  names = [r["estimator"] for r in data["tasks"][0]["rows"]]
  assert names == ["classifier", "knn", "oracle:infonce/label"]
  assert set(data["tasks"][0]["verdicts"]) == {"knn"}
  assert data["learning_curve"]["samples_needed"].keys() == {"classifier", "knn"}
  for suffix in (".md", "_estimates.png", "_curve.png"):
    assert os.path.getsize(str(out).replace(".json", suffix)) > 0
  assert rec["versions"] and rec["cpu_model"] and rec["cpu_time_s"] > 0
  # The docs render the same tables from the JSON, under the machine that ran it.
  from tools import doc_tables  # pylint: disable=g-import-not-at-top
  table = doc_tables.render_records("mi_benchmark", [data])
  assert table.startswith("Machine: ") and "not recorded" not in table.splitlines()[0]
  assert report.record_tables(data) in open(str(out).replace(".json", ".md")).read()
  for caption in ("**Summary", "**The classifier against", "**Learning curve"):
    assert caption in table
  assert "| knn | " in table and "| null(num_classes=3,dim=2) | 0.00 |" in table
