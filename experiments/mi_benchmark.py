"""MI-estimation benchmark for a discrete label: the classifier reading against the field.

For every task (``infocam_jax.mibench.tasks``; exact per-sample PMI, true I(X;Y) with
Monte-Carlo stderr <= ``truth_stderr``) draws ``num_seeds`` independent train / test
samples, runs every estimator (``infocam_jax.mibench.estimators``; the seeds of a neural
estimator are trained together in one vmapped, compiled program), and reports per
estimator the bias, the std over seeds, RMSE, the error against the test sample's own mean
exact PMI, the oracle (exact-critic) value of the same bound, diverged seeds, wall time,
and the classifier's win / tie / lose verdict. Then a learning curve (estimates against
training samples per class) on ``curve_task``, with the samples needed per estimator.

Usage::

    python -m experiments.mi_benchmark                       # quick tier -> runs/mi_benchmark_quick.*
    python -m experiments.mi_benchmark --config=experiments/configs/mi_benchmark.py:full
    python -m experiments.mi_benchmark --config.tasks="null(num_classes=100,dim=10)" --output=x.json

Writes ``--output`` (JSON: config, per-task rows, learning curve, tally, versions, device,
wall time), a markdown file of the tables and two figures next to it (``*_estimates.png``:
estimate vs truth per estimator; ``*_curve.png``: the learning curve). Exit statuses as
every experiment: 0 done, 2 bad input (unknown task or estimator name, a batch larger than
the sample, K = 1, ...).
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

from experiments import _common
from infocam_jax import io
from infocam_jax.mibench import estimators as E
from infocam_jax.mibench import report
from infocam_jax.mibench import tasks as T
from infocam_jax.train import config as config_lib

DEFAULT_CONFIG = os.path.join(_common.CONFIG_DIR, "mi_benchmark.py")


def _ints(v):
  try:
    out = [int(x) for x in str(v).split(",") if x.strip()]
  except ValueError:
    return f"expected comma-separated integers, got {v!r}"
  return None if out and min(out) >= 1 else f"expected positive integers, got {v!r}"


def _estimator_names(v):
  names = [x.strip() for x in str(v).split(",") if x.strip()]
  bad = [n for n in names if n not in E.ESTIMATORS]
  if not names or bad:
    return f"unknown estimator name(s) {bad or v!r}; expected names from {list(E.ESTIMATORS)}"
  return None


def _schema() -> dict[str, Any]:
  F, at_least = config_lib.Field, config_lib.at_least
  pos = lambda v: None if v > 0 else f"must be > 0, got {v!r}"
  return {
      "tier": F((str,), "'quick' or 'full' (recorded in the results).", choices=("quick", "full")),
      "seed": F((int,), "PRNG seed of data, initialisation and order.", at_least(0)),
      "num_seeds": F((int,), "independent train/test draws (and inits) per task.", at_least(2)),
      "tasks": F((str,), "task specs family(key=value,...), ';'-separated.",
                 lambda v: None if str(v).strip() else "must name at least one task"),
      "estimators": F((str,), "estimator names, comma-separated.", _estimator_names),
      "n_train": F((int,), "training samples per seed (neural: incl. the validation share).",
                   at_least(4)),
      "n_test": F((int,), "test samples per seed.", at_least(2)),
      "hidden": F((str,), "critic MLP widths, comma-separated.", _ints),
      "steps": F((int,), "Adam steps.", at_least(1)),
      "batch_size": F((int,), "batch B (in-batch negatives of the concat critic).", at_least(2)),
      "learning_rate": F((float,), "Adam learning rate.", pos),
      "val_fraction": F((float,), "held-out share of the training sample.",
                        lambda v: None if 0 < v < 1 else f"must lie in (0, 1), got {v!r}"),
      "eval_every": F((int,), "steps between validation checks.", at_least(1)),
      "clip": F((float,), "SMILE's tau.", pos),
      "knn_k": F((int,), "neighbours of the kNN estimator.", at_least(1)),
      "mine_rate": F((float,), "MINE's moving-average rate (weight of the current batch).",
                     lambda v: None if 0 < v <= 1 else f"must lie in (0, 1], got {v!r}"),
      "truth_stderr": F((float,), "MC stderr target of the true MI (nats).", pos),
      "curve_task": F((str,), "task spec of the learning curve ('' = none).", None),
      "curve_per_class": F((str,), "training samples per class on the curve.", _ints),
      "curve_estimators": F((str,), "estimators on the curve.", _estimator_names),
  }


def estimator_config(c) -> E.Config:
  return E.Config(hidden=tuple(int(x) for x in c.hidden.split(",")), steps=c.steps,
                  batch_size=c.batch_size, learning_rate=c.learning_rate,
                  val_fraction=c.val_fraction, eval_every=c.eval_every, clip=c.clip,
                  knn_k=c.knn_k, mine_rate=c.mine_rate)


def _names(s):
  return [x.strip() for x in str(s).split(",") if x.strip()]


def run_task(task: T.Task, names, n_train: int, n_test: int, num_seeds: int, key,
             ecfg: E.Config, truth) -> dict[str, Any]:
  """One task: data for every seed, every estimator, the statistics and verdicts."""
  k_train, k_test, k_est = jax.random.split(key, 3)
  train = task.sample_seeds(k_train, num_seeds, n_train)
  test = task.sample_seeds(k_test, num_seeds, n_test)
  test_pmi = np.asarray(task.pmi(test).mean(-1), np.float64)
  results = E.run_estimators(names, task, train, test, k_est, ecfg)
  I = float(truth.estimate)
  rows = [report.estimator_row(n, r.estimate, r.stderr, r.wall_s, I, test_pmi, task.log_k)
          for n, r in results.items()]
  ref = results.get("classifier")
  verdicts = {}
  if ref is not None:
    for n, r in results.items():
      if n != "classifier" and not n.startswith("oracle:"):
        verdicts[n] = report.verdict(ref.estimate, r.estimate, I, task.log_k)
  return {"task": task.name, "family": task.family, "num_classes": task.num_classes,
          "dim": task.dim, "truth": I, "truth_stderr": float(truth.stderr),
          "truth_mc_samples": int(truth.num_samples), "label_entropy": task.label_entropy,
          "log_k": task.log_k, "n_train": n_train, "n_test": n_test, "num_seeds": num_seeds,
          "test_pmi_per_seed": test_pmi.tolist(), "rows": rows, "verdicts": verdicts}


def learning_curve(c, ecfg: E.Config, key, log) -> dict[str, Any] | None:
  if not c.curve_task.strip():
    return None
  task = T.parse_task(c.curve_task)
  truth = task.truth(jax.random.fold_in(key, 0), target_stderr=c.truth_stderr)
  names = _names(c.curve_estimators)
  out = {"task": task.name, "truth": float(truth.estimate), "truth_stderr": float(truth.stderr),
         "points": [], "estimators": {n: [] for n in names}}
  for i, per_class in enumerate(int(x) for x in c.curve_per_class.split(",")):
    n_train = per_class * task.num_classes
    t0 = time.perf_counter()
    rec = run_task(task, names, n_train, c.n_test, c.num_seeds, jax.random.fold_in(key, i + 1),
                   ecfg, truth)
    out["points"].append(rec)
    for r in rec["rows"]:
      out["estimators"][r["estimator"]].append(
          {"per_class": per_class, "n_train": n_train, "mean": r["mean"], "std": r["std"],
           "bias": r["bias"], "diverged": r["diverged"]})
    log(f"  curve {per_class}/class done in {time.perf_counter() - t0:.0f} s")
  out["samples_needed"] = {
      n: report.samples_needed([(p["n_train"], p["bias"]) for p in pts], out["truth"])
      for n, pts in out["estimators"].items()}
  return out


def _cpu_model() -> str:
  try:
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in text.splitlines():
      if line.startswith("Model name:"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def benchmark(c, *, output: str) -> dict[str, Any]:
  """Runs the configured benchmark, writes JSON, markdown and figures; returns the record."""
  _common.validate(c, _schema())
  ecfg = estimator_config(c)
  names = _names(c.estimators)
  specs = [s.strip() for s in c.tasks.split(";") if s.strip()]
  try:
    tasks = [T.parse_task(s) for s in specs]
  except ValueError as e:
    raise _common.UsageError(f"config.tasks: {e}") from None
  log = lambda m: print(m, file=sys.stderr, flush=True)
  _common.enable_compilation_cache(os.path.join("runs", ".jax_cache"))
  t_start = time.perf_counter()
  key = jax.random.key(c.seed)
  recs = []
  for i, task in enumerate(tasks):
    t0 = time.perf_counter()
    truth = task.truth(jax.random.fold_in(key, 10_000 + i), target_stderr=c.truth_stderr)
    try:
      rec = run_task(task, names, c.n_train, c.n_test, c.num_seeds, jax.random.fold_in(key, i),
                     ecfg, truth)
    except ValueError as e:
      raise _common.UsageError(f"task {task.name}: {e}") from None
    rec["wall_s"] = time.perf_counter() - t0
    recs.append(rec)
    log(f"[{i + 1}/{len(tasks)}] {task.name}: I = {rec['truth']:.3f}, {rec['wall_s']:.0f} s")
  try:
    curve = learning_curve(c, ecfg, jax.random.fold_in(key, 99_999), log)
  except ValueError as e:
    raise _common.UsageError(f"learning curve: {e}") from None
  wall = time.perf_counter() - t_start
  usage = resource.getrusage(resource.RUSAGE_SELF)
  tally = report.tally(recs)
  record = {"experiment": "mi_benchmark", "tier": c.tier, "config": c.to_dict(),
            "tasks": recs, "learning_curve": curve, "tally": tally,
            "versions": io.versions(), "device": io.device_info(), "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()),
            "wall_time_s": wall, "cpu_time_s": usage.ru_utime + usage.ru_stime}
  io.write_json(output, record, indent=1)
  base = os.path.splitext(output)[0]
  md = render_markdown(record, names)
  with open(base + ".md", "w") as f:
    f.write(md)
  report.plot_estimates(recs, names, base + "_estimates.png",
                        f"{c.tier} tier: estimate vs true I (mean ± std over {c.num_seeds} seeds; grey: "
                        "estimate = truth; red x: some seeds diverged, left out)")
  if curve:
    report.plot_learning_curves(curve, base + "_curve.png")
  print(md)
  print(f"Wrote {output}, {base}.md and the figures ({wall:.0f} s)")
  return record


def render_markdown(record: dict[str, Any], names) -> str:
  """The run's markdown: the tables of ``report.record_tables`` (the docs' tables), then one
  detailed table per task."""
  del names  # the record's config names them
  parts = [f"# MI benchmark, {record['tier']} tier ({record['date_utc']} UTC, "
           f"{record['cpu_model']}, {record['cpu_count']} cores)", "",
           report.record_tables(record), "", "## Per task", ""]
  for t in record["tasks"]:
    parts += [report.markdown_task_table(t), ""]
  return "\n".join(parts) + "\n"


def main() -> None:
  f = flags.FLAGS
  out = f.output or os.path.join("runs", f"mi_benchmark_{f.config.tier}.json")
  benchmark(f.config, output=out)


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Config file (Python, get_config), "
                                  "optionally ':quick' or ':full'; override any field with "
                                  "--config.field=value.", lock_config=True)
  flags.DEFINE_string("output", "", "Results JSON (default runs/mi_benchmark_<tier>.json); the "
                      "markdown tables and figures are written next to it.")


if __name__ == "__main__":
  _common.main(main, define_flags=define_flags, doc=__doc__, default_config=DEFAULT_CONFIG,
               schema=_schema())
