"""Synthetic Gaussian study: softmax / PC-softmax classifiers as MI estimators.

Reproduces the synthetic experiment of Qin, Kim & Gedeon (arXiv 1911.10688)
and goes further. Data: K = 5 classes, ``x|y ~ N(mu_y, I_d)`` with means
``0, +2·1, -2·1, +4·1, -4·1``, d in {1, 2, 5, 10}. Balanced training set:
10,000 per class; imbalanced: 5k/10k/15k/20k/25k. Validation (model selection)
and test (reporting) splits each hold training/5 per class; train, val and
test are disjoint draws, and the test split is never used for selection.

For every (d, balanced/imbalanced, objective) an MLP d->100->100->100->5 is
trained with Adam (warm-up + cosine decay) on

* ``softmax``: plain softmax cross-entropy, read as ``log softmax_y + log K``
  (and, for imbalanced data, also as the prior-corrected ``log softmax_y -
  log p_y``);
* ``pc_softmax``: the NLL of PC-softmax with the training class prior, read as
  ``log s~_y``.

The checkpoint with the best validation NLL is kept. Each row reports the true
MI (Monte Carlo, >= 10^6 draws, with standard error), the true MI on the test
sample itself (mean exact PMI), the estimate on the test sample with its
standard error, and test accuracy. The target: for balanced+softmax and every
PC-softmax row, ``|estimate - true MI on the same test sample| <= 0.01`` nats.
``log K + log softmax_y`` on imbalanced data is reported to show the failure
PC-softmax fixes; it is not held to the target.

Usage::

    python -m experiments.synthetic_mi                          # -> runs/synthetic_mi.json + .png
    python -m experiments.synthetic_mi --quick                  # -> runs/synthetic_mi_quick.json
    python -m experiments.synthetic_mi --config.dims=2,5 --config.epochs=30 --output=PATH.json

The study's knobs are the fields of ``experiments/configs/synthetic_mi.py``
(variants ``default`` and ``quick``; ``--quick`` is short for the latter).
Prints a markdown table on stdout (progress bars on stderr) and always writes
the results: ``--output`` (default ``runs/synthetic_mi.json``, or
``runs/synthetic_mi_quick.json`` for quick runs, so a quick run never
replaces the full study) and the figure next to it. The JSON holds
``{"experiment", "quick", "config", "rows": [...], "summary", "versions",
"device", "wall_time_s"}``; quick results say so in the file and the figure.
Same seed, same numbers (bitwise on CPU). Exit statuses as every experiment:
0 done, 2 bad input.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import sys
import time
from typing import Any, Callable, Sequence

import jax
from absl import flags
from ml_collections import config_flags
from tqdm.auto import tqdm

from infocam_jax import plotting
from infocam_jax import io
# The study's data and classifiers live in the library (class_counts, eval_counts: re-exported).
from infocam_jax.gaussian_study import (Config, class_counts, eval_counts,  # pylint: disable=unused-import
                                        make_data, study_functions, train_model)
from infocam_jax.train import config as config_lib
from infocam_jax.train import workers as _workers

from experiments import _common
from experiments.configs import synthetic_mi as configs


TARGET_NATS = 0.01


DEFAULT_CONFIG = os.path.join(_common.CONFIG_DIR, "synthetic_mi.py")
def _schema() -> dict[str, Any]:
  F, at_least = config_lib.Field, config_lib.at_least
  positive = lambda v: None if v > 0 else f"must be > 0, got {v!r}"
  return {
      "quick": F((bool,), "quick variant (fewer samples/epochs); marked in the results."),
      "seed": F((int,), "PRNG seed of data, initialisation and order.", at_least(0)),
      "dims": F((str,), "input dimensions d, comma-separated.", config_lib.int_list),
      "settings": F((str,), "'balanced', 'imbalanced' or both, comma-separated.",
                    config_lib.subset(("balanced", "imbalanced"))),
      "objectives": F((str,), "'softmax', 'pc_softmax' or both, comma-separated.",
                      config_lib.subset(("softmax", "pc_softmax"))),
      "train_per_class": F((int,), "balanced training examples per class (imbalanced: x "
                           "(1..5)/2).", at_least(1)),
      "eval_fraction": F((float,), "validation/test size per class relative to training.",
                         lambda v: None if 0 < v <= 1 else f"must lie in (0, 1], got {v!r}"),
      "mc_samples": F((int,), "Monte-Carlo draws of the true MI.", at_least(2)),
      "hidden_sizes": F((str,), "MLP widths, comma-separated.", config_lib.int_list),
      "epochs": F((int,), "training epochs.", at_least(1)),
      "batch_size": F((int,), "minibatch size.", at_least(1)),
      "learning_rate": F((float,), "peak Adam learning rate.", positive),
      "warmup_epochs": F((int,), "linear warm-up epochs.", at_least(0)),
      "final_lr_fraction": F((float,), "cosine decay to learning_rate x this.", at_least(0)),
      "patience": F((int,), "early-stopping patience in epochs (0: off; best-val selection).",
                    at_least(0)),
      "prng_impl": F((str,), "JAX PRNG implementation.",
                     choices=("rbg", "threefry2x32", "unsafe_rbg")),
  }


def study_config(config: Any) -> Config:
  """The validated ``Config`` of a ``ConfigDict`` (``experiments/configs/synthetic_mi.py``)."""
  _common.validate(config, _schema())
  ints = lambda s: tuple(int(x) for x in str(s).split(",") if x.strip())
  names = lambda s: tuple(x.strip() for x in str(s).split(",") if x.strip())
  c = dict(config.to_dict() if hasattr(config, "to_dict") else config)
  c.update(dims=ints(c["dims"]), hidden_sizes=ints(c["hidden_sizes"]),
           settings=names(c["settings"]), objectives=names(c["objectives"]),
           patience=int(c["patience"]) or None)
  return Config(**c)


# ----------------------------------------------------------------------------
# The study.
# ----------------------------------------------------------------------------

ESTIMATOR_LABELS = {
    "log_k": "log K + log softmax_y",
    "pc": "log s̃_y (PC)",
    "prior_corrected": "log softmax_y − log p_y",
}


def run_dimension(cfg: Config, dim: int, *, progress: bool = True,
                  on_cell_done: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
  """Every cell of one dimension; rows depend only on (cfg, dim)."""
  root = jax.random.key(cfg.seed, impl=cfg.prng_impl)
  rows: list[dict[str, Any]] = []
  config = dataclasses.asdict(cfg)
  config.update(jax_version=jax.__version__, backend=jax.default_backend(),
                machine=platform.machine(), python=platform.python_version())
  _, _, evaluate = study_functions(cfg)
  key_dim = jax.random.fold_in(root, dim)
  t0 = time.perf_counter()
  data_by_setting = make_data(cfg, dim, jax.random.fold_in(key_dim, 2))
  data_s = (time.perf_counter() - t0) / len(cfg.settings)
  for setting in cfg.settings:
    balanced = setting == "balanced"
    data = data_by_setting[setting]
    if data.train.n < cfg.batch_size:  # bad input (exit status 2), not a bug
      raise _common.UsageError(f"config.batch_size {cfg.batch_size} exceeds the training set "
                               f"({data.train.n}).")
    k_mc, k_model = jax.random.split(jax.random.fold_in(key_dim, int(balanced)))
    t0 = time.perf_counter()
    true_mi = jax.device_get(data.mixture.mutual_information(k_mc, cfg.mc_samples))
    ground_truth_s = time.perf_counter() - t0 + data_s
    for objective in cfg.objectives:
      t0 = time.perf_counter()
      # The same init/shuffle key for both objectives: paired comparison.
      params, log = train_model(cfg, data, objective, k_model, progress=progress,
                                desc=f"d={dim} {setting} {objective}")
      true_mi_test, evaluated, accuracy, balanced_accuracy = jax.device_get(
          evaluate(params, data.mixture, data.test, data.prior))
      runtime = time.perf_counter() - t0
      if objective == "pc_softmax":
        names = ["pc"]
      else:
        names = ["log_k"] + ([] if balanced else ["prior_corrected"])
      for name in names:
        est, diff = evaluated[name]
        target_applies = name == "pc" or (balanced and name == "log_k")
        error = float(est.estimate) - float(true_mi_test.estimate)
        rows.append(dict(
            dim=dim, balanced=balanced, objective=objective, estimator=name,
            estimator_formula=ESTIMATOR_LABELS[name],
            true_mi=float(true_mi.estimate), true_mi_stderr=float(true_mi.stderr),
            true_mi_test=float(true_mi_test.estimate),
            true_mi_test_stderr=float(true_mi_test.stderr),
            estimate=float(est.estimate), stderr=float(est.stderr),
            error=error, error_stderr=float(diff.stderr),
            accuracy=float(accuracy), balanced_accuracy=float(balanced_accuracy),
            label_entropy=float(data.mixture.label_entropy()),
            val_nll=log["val_nll"], best_epoch=log["best_epoch"], epochs_run=log["epochs_run"],
            n_train=data.train.n, n_val=data.val.n, n_test=data.test.n,
            runtime_s=runtime, ground_truth_runtime_s=ground_truth_s,
            target_applies=target_applies,
            within_target=(abs(error) <= TARGET_NATS) if target_applies else None,
            seed=cfg.seed, config=config))
      if on_cell_done is not None:
        on_cell_done(f"d={dim} {setting} {objective}")
  return rows


def _worker(cfg: Config, dim: int) -> list[dict[str, Any]]:
  return run_dimension(cfg, dim, progress=False, on_cell_done=_workers.send)


def run(cfg: Config, *, progress: bool = True, workers: int = 1) -> list[dict[str, Any]]:
  """Runs every cell of the study; returns the JSON rows (ordered by dim).

  ``workers > 1`` runs the dimensions in that many spawned processes (the
  rows are identical: each depends only on (cfg, dim)); XLA:CPU compilation
  and these small MLPs are mostly single-threaded, so 2 workers on 2 cores
  nearly halve the wall time.
  """
  num_cells = len(cfg.dims) * len(cfg.settings) * len(cfg.objectives)
  outer = tqdm(total=num_cells, desc="synthetic MI", disable=not progress, file=sys.stderr)

  def done(cell: str) -> None:
    outer.update(1)
    outer.set_postfix_str(f"done: {cell}")

  workers = max(1, min(workers, len(cfg.dims)))
  try:
    if workers == 1:
      return [row for dim in cfg.dims
              for row in run_dimension(cfg, dim, progress=progress, on_cell_done=done)]
    # By module path, also when this file runs as __main__ (python -m ...).
    from experiments import synthetic_mi as module  # pylint: disable=g-import-not-at-top,import-self
    worker = module._worker  # pylint: disable=protected-access
    per_dim = _workers.map_in_workers(worker, [(cfg, dim) for dim in cfg.dims], workers,
                                      on_message=done)
    return [row for rows in per_dim for row in rows]
  finally:
    outer.close()


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
  head = ("| d | data | objective | estimator | true MI (MC) | true MI (test) | estimate ± se "
          "| error | acc | bal. acc | best/run ep. | time (s) | ≤ 0.01 |")
  lines = [head, "|" + "---|" * 13]
  for r in rows:
    mark = "—" if not r["target_applies"] else ("✓" if r["within_target"] else "✗")
    lines.append(
        f"| {r['dim']} | {'balanced' if r['balanced'] else 'imbalanced'} | {r['objective']} "
        f"| {r['estimator_formula']} | {r['true_mi']:.4f} ± {r['true_mi_stderr']:.4f} "
        f"| {r['true_mi_test']:.4f} | {r['estimate']:.4f} ± {r['stderr']:.4f} "
        f"| {r['error']:+.4f} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} "
        f"| {r['best_epoch']}/{r['epochs_run']} | {r['runtime_s']:.1f} | {mark} |")
  return "\n".join(lines)


def summary(rows: Sequence[dict[str, Any]], wall_s: float, workers: int = 1) -> str:
  target = [r for r in rows if r["target_applies"]]
  failure = [r for r in rows if r["estimator"] == "log_k" and not r["balanced"]]
  parts = []
  if target:
    worst = max(abs(r["error"]) for r in target)
    ok = all(r["within_target"] for r in target)
    parts.append(f"Target rows (balanced softmax, all PC-softmax): "
                 f"max |estimate − true MI (test)| = {worst:.4f} nats -> "
                 f"{'PASS' if ok else 'FAIL'} (target {TARGET_NATS}).")
  if failure:
    parts.append("Plain softmax + log K on imbalanced data: errors " +
                 ", ".join(f"d={r['dim']}: {r['error']:+.3f}" for r in failure) + " nats.")
  parts.append(f"Wall time {wall_s:.1f} s ({jax.default_backend()}, {workers} worker process"
               f"{'es' if workers > 1 else ''}).")
  return "\n".join(parts)


# ----------------------------------------------------------------------------
# Results and command line.
# ----------------------------------------------------------------------------


def default_output(cfg: Config) -> str:
  return os.path.join("runs", "synthetic_mi_quick.json" if cfg.quick else "synthetic_mi.json")


def study(cfg: Config, *, output: str, figure: str = "", workers: int = 1,
          progress: bool = True) -> dict[str, Any]:
  """Runs the study, prints the table, writes ``output`` (JSON) and the figure; returns the record."""
  t0 = time.perf_counter()
  rows = run(cfg, progress=progress, workers=workers)
  wall = time.perf_counter() - t0
  workers = max(1, min(workers, len(cfg.dims)))
  text = summary(rows, wall, workers)
  print(markdown_table(rows))
  print()
  print(text)
  target = [r for r in rows if r["target_applies"]]
  record = {"experiment": "synthetic_mi", "quick": cfg.quick, "config": dataclasses.asdict(cfg),
            "rows": rows,
            "summary": {"max_abs_error_target_rows": max((abs(r["error"]) for r in target),
                                                         default=None),
                        "target_nats": TARGET_NATS, "text": text},
            "versions": io.versions(), "device": io.device_info(), "wall_time_s": wall,
            "workers": workers}
  io.write_json(output, record, indent=1)
  print(f"Wrote {len(rows)} rows to {output}")
  figure = figure or os.path.splitext(output)[0] + ".png"
  print(f"Wrote the figure {plot_errors(rows, figure, quick=cfg.quick)}")
  return record


def main() -> None:
  """The command line (flags parsed by ``_common.main``)."""
  f = flags.FLAGS
  config = f.config
  if f.quick and not config.quick:
    quick = configs.get_config("quick")
    base = configs.get_config("default")
    with config.unlocked():
      for key in quick:  # the quick values, except fields the command line overrode
        if config[key] == base[key]:
          config[key] = quick[key]
  if f.workers < 1:
    raise _common.UsageError(f"--workers must be >= 1, got {f.workers}")
  cfg = study_config(config)
  study(cfg, output=f.output or default_output(cfg), figure=f.figure, workers=f.workers,
        progress=f.progress)


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Config file (Python, get_config), "
                                  "optionally ':quick'; override any field with "
                                  "--config.field=value.", lock_config=True)
  flags.DEFINE_bool("quick", False, "Short for --config=experiments/configs/synthetic_mi.py:quick "
                    "(1/5 of the data, fewer epochs; < 2 min on 2 cores).")
  flags.DEFINE_string("output", "", "Results JSON (default runs/synthetic_mi.json, or "
                      "runs/synthetic_mi_quick.json for quick runs); always written.")
  flags.DEFINE_string("figure", "", "Figure path (default: next to --output, .png).")
  flags.DEFINE_integer("workers", min(2, os.cpu_count() or 1), "Processes, one dimension each "
                       "(default min(2, cores)); the results do not depend on it.")
  flags.DEFINE_bool("progress", True, "Progress bars on stderr (--noprogress: none).")


def plot_errors(rows: Sequence[dict[str, Any]], path: str, *, quick: bool = False) -> str:
  """Estimate - true MI on the test sample (nats, ± paired standard error) against d."""
  dims = sorted({r["dim"] for r in rows})
  series: dict[str, list[float]] = {}
  errors: dict[str, list[float]] = {}
  for r in rows:
    label = (f"{'balanced' if r['balanced'] else 'imbalanced'}: {r['objective']}, "
             f"{r['estimator_formula']}")
    series.setdefault(label, [math.nan] * len(dims))[dims.index(r["dim"])] = r["error"]
    errors.setdefault(label, [0.0] * len(dims))[dims.index(r["dim"])] = r["error_stderr"]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  return str(plotting.plot_mi_errors(
      path, dims, series, errors=errors, target=TARGET_NATS,
      error_label="error bars: ± 1 paired standard error over the test sample",
      xlabel="dimension d", ylabel="estimate − true MI on the test sample (nats)",
      title=(f"{'QUICK run (1/5 data): ' if quick else ''}Softmax / PC-softmax MI estimates "
             f"(target |error| ≤ {TARGET_NATS} nats, shaded)")))


if __name__ == "__main__":
  _common.main(main, define_flags=define_flags, doc=__doc__, default_config=DEFAULT_CONFIG, schema=_schema())
