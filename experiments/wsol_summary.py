r"""Mean ± std over seeds of several ``experiments.wsol`` runs, with paired differences.

Usage::

  for s in 0 1 2; do python -m experiments.wsol --workdir=runs/wsol_s$s --config.seed=$s; done
  python -m experiments.wsol_summary runs/wsol_s0 runs/wsol_s1 runs/wsol_s2 \
      --output=runs/wsol_seeds.json

Reads each run's ``results.json`` and writes (``--output``) a JSON file and
prints markdown tables, one per protocol: for every method and baseline the
mean ± sample standard deviation (ddof=1) over the runs of the test-split
metrics (percent), and the per-seed paired difference of each method minus
``--reference`` (``cam`` by default). The runs must share their config except
for the seed (checked; pass ``--allow_different_configs`` to compare anyway).
Statistics over seeds follow the one rule of every table
(``infocam_jax.seeds``: a metric a run could not compute is left out and
counted as missing). Unlike the experiments this tool takes no config
file, only run directories, so it keeps a plain argparse command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from infocam_jax import io
from infocam_jax import seeds

from experiments import _common

# Metrics of one method's entry in results.json, in table order (percent).
METRICS = ("top1_cls", "top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2",
           "top1_loc_val_selected", "max_box_acc_val_selected", "max_box_acc_v2_val_selected")
HEADERS = ("Top-1 Cls", "Top-1 Loc@.2", "GT-k Loc@.2", "MaxBoxAcc*", "MaxBoxAccV2*",
           "Top-1 Loc@val", "BoxAcc@val", "BoxAccV2@val")


stat, _pm = seeds.stat, lambda s: seeds.pm(s, 1)


def _config_without_seed(results: Mapping[str, Any]) -> dict[str, Any]:
  cfg = dict(results.get("config") or {})
  cfg.pop("seed", None)
  return cfg


def load_runs(workdirs: Sequence[str], *, allow_different_configs: bool = False
              ) -> list[dict[str, Any]]:
  """The ``results.json`` of every workdir; ValueError naming what is wrong."""
  if len(workdirs) < 1:
    raise ValueError("`workdirs`: give at least one experiments.wsol run directory.")
  runs = []
  for d in workdirs:
    path = os.path.join(d, "results.json")
    if not os.path.isfile(path):
      raise ValueError(f"`workdirs`: {path} does not exist; run `python -m experiments.wsol "
                       f"--workdir={d}` first (or it is still running).")
    with open(path) as f:
      r = json.load(f)
    if r.get("experiment") != "wsol":
      raise ValueError(f"`workdirs`: {path} is not an experiments.wsol result.")
    runs.append(r)
  seeds = [r["seed"] for r in runs]
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"`workdirs`: the runs must have distinct seeds, got {seeds}.")
  if not allow_different_configs:
    ref = _config_without_seed(runs[0])
    for d, r in zip(workdirs[1:], runs[1:]):
      if _config_without_seed(r) != ref:
        diff = sorted(k for k in set(ref) | set(_config_without_seed(r))
                      if ref.get(k) != _config_without_seed(r).get(k))
        raise ValueError(f"`workdirs`: {d} differs from {workdirs[0]} in more than the seed "
                         f"(fields {diff}); pass --allow_different_configs to compare anyway.")
  return runs


def seed_table(runs: Sequence[Mapping[str, Any]], protocol: str, metrics: Sequence[str],
               reference: str = "cam") -> tuple[dict[str, Any], dict[str, Any] | None]:
  """The one seeds rule of the WSOL tables: ``(stats, differences)`` for ``protocol``.

  ``stats[method][metric]``: ``seeds.stat`` over the runs (one per seed) of
  every method all runs hold; ``differences[method][metric]``:
  ``seeds.paired_differences`` of method - ``reference`` (same run), None when
  ``reference`` is not among the methods.
  """
  names = [m for m in runs[0]["protocols"][protocol]
           if all(m in r["protocols"][protocol] for r in runs)]
  values = lambda m, k: [r["protocols"][protocol][m].get(k) for r in runs]
  stats = {m: {k: stat(values(m, k)) for k in metrics} for m in names}
  if reference not in names:
    return stats, None
  diffs = {m: {k: seeds.paired_differences(values(m, k), values(reference, k))
               for k in metrics} for m in names if m != reference}
  return stats, diffs


def summarize(runs: Sequence[Mapping[str, Any]], reference: str = "cam") -> dict[str, Any]:
  """Per protocol, method and metric: mean ± std over runs and the paired difference."""
  out: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "reference": reference,
                         "protocols": {}, "differences": {}}
  for p in runs[0]["protocols"]:
    if any(p not in r["protocols"] for r in runs):
      continue
    out["protocols"][p], diffs = seed_table(runs, p, METRICS, reference)
    if diffs is not None:
      out["differences"][p] = diffs
  out["classification"] = {
      split: {k: stat([r["classification"][split][k] for r in runs])
              for k in ("accuracy", "mean_per_class_accuracy", "mi")}
      for split in ("val", "test")}
  first = runs[0]
  out["dataset"] = first["dataset"]
  out["selection"] = first["selection"]
  out["config"] = _config_without_seed(first)
  out["wall_time_s"] = stat([(r.get("wall_time_s") or {}).get("total_s") for r in runs])
  out["device"] = first.get("device")
  out["versions"] = first.get("versions")
  return out


def markdown(summary: Mapping[str, Any]) -> str:
  """One markdown table per protocol (mean ± std), then the paired differences."""
  n = len(summary["seeds"])
  lines = []
  for p, rows in summary["protocols"].items():
    lines += [f"**{p} protocol**, test split, mean ± std over {n} seeds "
              f"({', '.join(map(str, summary['seeds']))}), percent; * = maximised over "
              "thresholds on test by definition, @val = at the threshold chosen on validation",
              "", "| method | " + " | ".join(HEADERS) + " |",
              "|---|" + "---|" * len(HEADERS)]
    for m, row in rows.items():
      lines.append(f"| {m} | " + " | ".join(_pm(row[k]) for k in METRICS) + " |")
    diffs = summary["differences"].get(p)
    if diffs:
      ref = summary["reference"]
      lines += ["", f"Paired difference method − {ref} (same seed), mean ± std:", "",
                "| method | " + " | ".join(HEADERS[1:]) + " |",
                "|---|" + "---|" * (len(HEADERS) - 1)]
      for m, row in diffs.items():
        lines.append(f"| {m} | " + " | ".join(_pm(row[k]) for k in METRICS[1:]) + " |")
    lines.append("")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("workdirs", nargs="+", help="experiments.wsol run directories")
  parser.add_argument("--output", default="", help="write the summary JSON here")
  parser.add_argument("--reference", default="cam", help="method the differences refer to")
  parser.add_argument("--allow_different_configs", action="store_true")
  args = parser.parse_args(argv)
  try:
    runs = load_runs(args.workdirs, allow_different_configs=args.allow_different_configs)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return _common.EXIT_BAD_INPUT
  summary = summarize(runs, args.reference)
  table = markdown(summary)
  print(table)
  if args.output:
    io.write_json(args.output, {**summary, "markdown": table}, indent=1)
    print(f"Wrote {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
