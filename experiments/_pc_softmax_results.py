r"""The results of ``experiments.pc_softmax``: aggregation over seeds, tables, figures.

``results.json`` schema (accuracies in percent, MI in nats; ``std`` is the
sample standard deviation over seeds, ddof=1, ``null`` for one seed)::

  {
    "experiment": "pc_softmax", "created": ISO time,
    "dataset": str, "train_split": str, "eval_split": str, "test_split": str,
    "test_splits": [str, ...],               # test_split first, then extra_test_splits
    "protocol": {"prediction": ..., "selection": ..., "test_set": ..., "mi": ...},
    "num_classes": K, "class_names": [K], "train_class_counts": [K],
    "train_prior": [K], "minority_classes": [...], "majority_classes": [...],
    "entropy_train_prior_nats": H(Y), "log_num_classes_nats": log K,
    "seeds": [int], "objectives": [str],
    "<objective>": {                          # "softmax" and/or "pc_softmax"
      "accuracy": Stat, "mean_per_class_accuracy": Stat,      # on test_split
      "minority_class_accuracy": Stat, "majority_class_accuracy": Stat,
      "per_class_accuracy": {"mean": [K], "std": [K], "per_seed": [[K], ...]},
      "loss": Stat,                           # the objective's NLL on test_split, nats
      "mi": MI,                               # pc_softmax: mean log s~_y;
                                              # softmax: log K + log softmax_y (the paper's reading)
      "mi_prior_corrected": MI,               # softmax only: log softmax_y - log p_y
      "splits": {split: {the metrics above}}, # every test split (test_split included)
      "val": {metric: Stat},                  # validation metrics of the selected checkpoints
      "selected_step": [int per seed], "train_steps": [int per seed],
      "wall_time_s": [per seed], "cpu_time_s": [per seed]},
    "difference_pc_minus_softmax": {metric: Stat, ...},   # paired by seed (both objectives run)
    "config": {...}, "versions": {...}, "device": {...},
    "timing": {"wall_time_s", "cpu_time_s", "data_wall_time_s", "runs": {...}},
    "figures": [file names]
  }
  Stat = {"mean": float, "std": float | null, "per_seed": [float, ...],
          "missing": int}                    # seeds whose value is null (left out)
  MI   = Stat + {"stderr_per_seed": [...], "reading": str,
                 "test_mean": Stat}           # unweighted mean over the test split

The MI estimate refers to the *training* distribution (the one the prior
``p`` describes): per-example PMIs on the test split are averaged with each
class weighted by its training frequency (class means weighted by ``p_y``, the
standard error from the per-class variances), which is the plain mean when
the test split has the training proportions. ``test_mean`` is the unweighted
mean. Both are variational lower-bound estimates (up to sampling error) of
I(X;Y) <= H(Y).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from infocam_jax import plotting
from infocam_jax import seeds as seed_rule
from infocam_jax.evaluators import classification
from infocam_jax.train import build



OBJECTIVES = ("softmax", "pc_softmax")

_SCALARS = ("accuracy", "mean_per_class_accuracy", "minority_class_accuracy",
            "majority_class_accuracy", "loss")
_GROUPS = _SCALARS[:4]
stat = seed_rule.stat


def aggregate_split(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Mean/std over seeds of one objective's metrics on one split."""
  out: dict[str, Any] = {k: stat([r[k] for r in per_seed]) for k in _SCALARS}
  per_class = [stat(vals) for vals in zip(*[r["per_class_accuracy"] for r in per_seed])]
  out["per_class_accuracy"] = {"mean": [s["mean"] for s in per_class],
                               "std": [s["std"] for s in per_class],
                               "per_seed": [list(r["per_class_accuracy"]) for r in per_seed]}
  out["test_class_counts"] = per_seed[0]["test_class_counts"]
  for name in ("mi", "mi_prior_corrected"):
    if name in per_seed[0]:
      s = stat([r[name]["estimate"] for r in per_seed])
      s["stderr_per_seed"] = [r[name]["stderr"] for r in per_seed]
      s["reading"] = per_seed[0][name]["reading"]
      s["test_mean"] = stat([r[name]["test_mean"] for r in per_seed])
      out[name] = s
  return out


def aggregate(config: Any, data: build.Data, runs: Mapping[tuple[str, int], Mapping[str, Any]],
              *, seeds: Sequence[int], objectives: Sequence[str], splits: Sequence[str]
              ) -> dict[str, Any]:
  """The ``results.json`` content (module docstring) from the per-run results."""
  primary = config.data.test_split
  counts, prior = data.class_counts, data.prior
  minority, majority = classification.minority_majority(counts)
  out: dict[str, Any] = {
      "experiment": "pc_softmax",
      "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "dataset": data.name, "train_split": config.data.train_split,
      "eval_split": config.data.eval_split, "test_split": primary, "test_splits": list(splits),
      "protocol": protocol(config, data, splits),
      "num_classes": data.num_classes, "class_names": list(data.class_names),
      "train_class_counts": counts.tolist(), "train_prior": prior.tolist(),
      "minority_classes": minority.tolist(), "majority_classes": majority.tolist(),
      "entropy_train_prior_nats": float(-np.sum(prior * np.log(prior))),
      "log_num_classes_nats": float(np.log(data.num_classes)),
      "seeds": list(seeds), "objectives": list(objectives),
  }
  for obj in objectives:
    res = [runs[(obj, s)] for s in seeds]
    by_split = {sp: aggregate_split([r["splits"][sp] for r in res]) for sp in splits}
    val_keys = sorted(set().union(*[r["val"].keys() for r in res]))
    out[obj] = dict(by_split[primary], splits=by_split,
                    val={k: stat([r["val"].get(k) for r in res]) for k in val_keys},
                    selected_step=[r["selected_step"] for r in res],
                    train_steps=[r["train_steps"] for r in res],
                    wall_time_s=[r["train_wall_time_s"] + r["eval_wall_time_s"] for r in res],
                    cpu_time_s=[r["train_cpu_time_s"] + r["eval_cpu_time_s"] for r in res])
  if set(OBJECTIVES) <= set(objectives):
    diff = {}
    for sp in splits:
      per = lambda o, k: [runs[(o, s)]["splits"][sp][k] for s in seeds]
      diff[sp] = {k: seed_rule.paired_differences(per("pc_softmax", k), per("softmax", k))
                  for k in _GROUPS}
    out["difference_pc_minus_softmax"] = dict(diff[primary], splits=diff)
  return out


def protocol(config: Any, data: build.Data, splits: Sequence[str]) -> dict[str, str]:
  if config.experiment.select == "best_val":
    selection = (f"checkpoint with the best {config.best_metric} ({config.best_mode}) on the "
                 f"validation split {config.data.eval_split!r}, evaluated every "
                 f"{config.eval_every_steps or 'final'} step(s); the test splits are never used "
                 "for selection")
  else:
    selection = ("final parameters after the fixed schedule (no model selection; the test "
                 "splits are never used for selection)")
  tests, all_balanced = [], True
  for name in splits:
    c = np.bincount(np.asarray(data.sources[name].labels), minlength=data.num_classes)
    balanced = c.min() == c.max()
    all_balanced &= bool(balanced)
    kind = "balanced" if balanced else f"imbalanced ({int(c.min())}-{int(c.max())} per class)"
    tests.append(f"{name!r}: {int(c.sum())} images, {kind}")
  tests_text = "; ".join(tests)
  if all_balanced:
    tests_text += " (on a balanced test set accuracy equals mean per-class accuracy)"
  return {
      "prediction": "argmax of the logits z for both objectives (paper-spec §1.2); PC-softmax "
                    "changes training only",
      "selection": selection,
      "test_set": tests_text,
      "mi": "per-example PMI on the test split, classes weighted by their training frequency "
            "(estimate of I(X;Y) under the training distribution; <= H(Y)); 'test_mean' is the "
            "unweighted test mean",
      "prior": f"training class frequencies of {config.data.train_split!r}",
  }


_LABELS = {"softmax": "softmax", "pc_softmax": "PC-softmax"}


def markdown_table(results: Mapping[str, Any], split: str | None = None) -> str:
  """The results of one test split as a markdown table (mean ± std over seeds)."""
  split = split or results["test_split"]
  n = len(results["seeds"])
  pm = seed_rule.pm
  lines = [f"Test split {split!r} of {results['dataset']} ({n} seed{'s' * (n != 1)}; mean ± std "
           "over seeds; accuracies in %, MI in nats, estimate of I(X;Y) under the training "
           f"prior, H(Y) = {results['entropy_train_prior_nats']:.3f}):", "",
           "| objective | accuracy | mean per-class acc. | minority-class acc. | "
           "majority-class acc. | MI estimate | MI (prior-corrected) |",
           "|---|---|---|---|---|---|---|"]
  for obj in results["objectives"]:
    m = results[obj]["splits"][split]
    lines.append(f"| {_LABELS[obj]} | {pm(m['accuracy'])} | {pm(m['mean_per_class_accuracy'])} "
                 f"| {pm(m['minority_class_accuracy'])} | {pm(m['majority_class_accuracy'])} "
                 f"| {pm(m['mi'], 3)} | {pm(m.get('mi_prior_corrected'), 3)} |")
  diff = results.get("difference_pc_minus_softmax")
  if diff:
    d = diff["splits"][split]
    lines.append(f"| PC − softmax (paired) | {pm(d['accuracy'])} | "
                 f"{pm(d['mean_per_class_accuracy'])} | {pm(d['minority_class_accuracy'])} | "
                 f"{pm(d['majority_class_accuracy'])} | | |")
  return "\n".join(lines)


def write_figures(results: Mapping[str, Any], workdir: str) -> list[str]:
  """``per_class_accuracy[_<split>].png``: per-class test accuracy of both objectives."""
  names = []
  cats = [f"{n} (n={c})" for n, c in zip(results["class_names"], results["train_class_counts"])]
  for split in results["test_splits"]:
    series, errors = {}, {}
    for obj in results["objectives"]:
      pc = results[obj]["splits"][split]["per_class_accuracy"]
      series[_LABELS[obj]] = [np.nan if v is None else v for v in pc["mean"]]
      if len(results["seeds"]) > 1:
        errors[_LABELS[obj]] = [0.0 if v is None else v for v in pc["std"]]
    name = ("per_class_accuracy.png" if split == results["test_split"]
            else f"per_class_accuracy_{split}.png")
    title = (f"{results['dataset']} '{split}': per-class accuracy, mean ± std over "
             f"{len(results['seeds'])} seeds (argmax z)")
    plotting.plot_bars(os.path.join(workdir, name), cats, series, errors=errors or None,
                       xlabel="class (training examples)", ylabel="test accuracy (%)",
                       title=title, value_format="{:.0f}")
    names.append(name)
  return names
