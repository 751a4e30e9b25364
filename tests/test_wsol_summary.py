"""experiments.wsol_summary: seed aggregation of WSOL results (no training, fabricated results)."""

import json
import os

import numpy as np
import pytest

from experiments import wsol_summary


def _fake_results(seed, rng, *, lr=0.1):
  def entry():
    return {k: float(rng.uniform(0, 100)) for k in wsol_summary.METRICS}
  protocols = {p: {m: entry() for m in ("cam", "infocam", "centre_box")}
               for p in ("clean", "paper")}
  cls = {"accuracy": float(rng.uniform(50, 90)), "mean_per_class_accuracy": 70.0, "mi": 1.5}
  return {"experiment": "wsol", "seed": seed, "protocols": protocols,
          "classification": {"val": cls, "test": cls},
          "config": {"seed": seed, "optimizer": {"learning_rate": lr}},
          "dataset": {"name": "x"}, "selection": {}, "wall_time_s": {"total_s": 100.0 + seed}}


def _write(tmp_path, results):
  dirs = []
  for r in results:
    d = tmp_path / f"s{r['seed']}"
    d.mkdir()
    (d / "results.json").write_text(json.dumps(r))
    dirs.append(str(d))
  return dirs


def test_mean_std_and_paired_differences_match_numpy(tmp_path):
  rng = np.random.default_rng(0)
  results = [_fake_results(s, rng) for s in range(3)]
  dirs = _write(tmp_path, results)
  out = tmp_path / "summary.json"
  assert wsol_summary.main([*dirs, "--output", str(out)]) == 0
  s = json.loads(out.read_text())
  assert s["seeds"] == [0, 1, 2]
  for p in ("clean", "paper"):
    for m in ("cam", "infocam", "centre_box"):
      for k in wsol_summary.METRICS:
        vals = np.array([r["protocols"][p][m][k] for r in results])
        got = s["protocols"][p][m][k]
        np.testing.assert_allclose(got["mean"], vals.mean(), rtol=1e-12)
        np.testing.assert_allclose(got["std"], vals.std(ddof=1), rtol=1e-12)
    for k in wsol_summary.METRICS:
      d = np.array([r["protocols"][p]["infocam"][k] - r["protocols"][p]["cam"][k]
                    for r in results])
      np.testing.assert_allclose(s["differences"][p]["infocam"][k]["mean"], d.mean(),
                                 rtol=1e-12)
      np.testing.assert_allclose(s["differences"][p]["infocam"][k]["std"], d.std(ddof=1),
                                 rtol=1e-12)
    assert "cam" not in s["differences"][p]
  assert "| infocam |" in s["markdown"] and "± " in s["markdown"]


def test_single_run_has_no_std_and_a_missing_metric_is_left_out_and_counted():
  assert wsol_summary.stat([3.0]) == {"mean": 3.0, "std": None, "per_seed": [3.0], "missing": 0}
  s = wsol_summary.stat([1.0, None, 4.0])
  assert (s["mean"], s["missing"]) == (2.5, 1) and s["std"] == pytest.approx(2.1213203435596424)
  assert wsol_summary.stat([None, None]) == {"mean": None, "std": None,
                                             "per_seed": [None, None], "missing": 2}
  assert wsol_summary._pm(s) == "2.5 ± 2.1 (1 missing)" and wsol_summary._pm(
      wsol_summary.stat([None])) == "-"


def test_bad_inputs_are_named(tmp_path):
  rng = np.random.default_rng(1)
  with pytest.raises(ValueError, match="does not exist"):
    wsol_summary.load_runs([str(tmp_path / "nope")])
  dirs = _write(tmp_path, [_fake_results(0, rng), _fake_results(1, rng, lr=0.2)])
  with pytest.raises(ValueError, match="more than the seed.*optimizer"):
    wsol_summary.load_runs(dirs)
  assert len(wsol_summary.load_runs(dirs, allow_different_configs=True)) == 2
  same = tmp_path / "same"
  os.makedirs(same)
  (same / "results.json").write_text(json.dumps(_fake_results(0, rng)))
  with pytest.raises(ValueError, match="distinct seeds"):
    wsol_summary.load_runs([dirs[0], str(same)])
  assert wsol_summary.main([str(tmp_path / "nope")]) == 2
