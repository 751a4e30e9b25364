"""Benchmark bookkeeping: per-estimator statistics, win/tie/lose verdicts, tables, figures.

Conventions (nats): ``bias = mean_s(est_s) - I``; ``std`` over seeds (ddof 1); ``rmse =
sqrt(mean_s (est_s - I)^2)``; ``err_test = mean_s(est_s - mean exact PMI of seed s's test
sample)`` (the error with the test sample's own sampling noise removed); a seed is
*diverged* when its estimate is not finite or lies outside [-1, log K + 1] nats (no
estimator of an I in [0, log K] should land there); the statistics use the other seeds.
Verdict of the reference estimator (the classifier) against another, per task: paired
per-seed absolute errors ``a_s = |ref_s - I| - |other_s - I|``; *tie* when
``|mean a| <= 2 std(a)/sqrt(S)`` (two standard errors), else *win* (mean a < 0) or *lose*;
an estimator with diverged seeds loses to one without.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np


def diverged_mask(values: np.ndarray, log_k: float) -> np.ndarray:
  v = np.asarray(values, np.float64)
  return ~np.isfinite(v) | (v < -1.0) | (v > log_k + 1.0)


def estimator_row(name: str, values: Sequence[float], stderrs: Sequence[float], wall_s: float,
                  truth: float, test_pmi: Sequence[float], log_k: float) -> dict[str, Any]:
  """The statistics of one estimator on one task (see the module docstring)."""
  v = np.asarray(values, np.float64)
  bad = diverged_mask(v, log_k)
  good = v[~bad]
  tp = np.asarray(test_pmi, np.float64)[~bad]
  row = {"estimator": name, "per_seed": [None if not np.isfinite(x) else float(x) for x in v],
         "stderr_per_seed": [None if not np.isfinite(x) else float(x) for x in stderrs],
         "diverged": int(bad.sum()), "wall_s": float(wall_s)}
  if good.size:
    row.update(mean=float(good.mean()), bias=float(good.mean() - truth),
               std=float(good.std(ddof=1)) if good.size > 1 else None,
               rmse=float(np.sqrt(np.mean((good - truth) ** 2))),
               err_test=float(np.mean(good - tp)))
  else:
    row.update(mean=None, bias=None, std=None, rmse=None, err_test=None)
  return row


def verdict(ref: Sequence[float], other: Sequence[float], truth: float, log_k: float) -> str:
  """'win' / 'tie' / 'lose' of ``ref`` against ``other`` (per-seed estimates, paired)."""
  r, o = np.asarray(ref, np.float64), np.asarray(other, np.float64)
  br, bo = diverged_mask(r, log_k).any(), diverged_mask(o, log_k).any()
  if br or bo:
    return "tie" if br and bo else ("lose" if br else "win")
  a = np.abs(r - truth) - np.abs(o - truth)
  se = a.std(ddof=1) / math.sqrt(a.size) if a.size > 1 else 0.0
  if abs(a.mean()) <= 2 * se:
    return "tie"
  return "win" if a.mean() < 0 else "lose"


def samples_needed(curve: Sequence[tuple[int, float | None]], truth: float) -> int | None:
  """Smallest n on a learning curve [(n, bias)] from which |bias| <= max(0.05, 5 % of I)
  holds for every larger n too (None when it never does)."""
  tol = max(0.05, 0.05 * abs(truth))
  pts = sorted(curve)
  for i, (n, _) in enumerate(pts):
    if all(b is not None and abs(b) <= tol for _, b in pts[i:]):
      return n
  return None


def _f(v, digits=3):
  return "-" if v is None else f"{v:.{digits}f}"


ORACLE_OF = {
    "classifier": "oracle:infonce/label", "classifier_t": "oracle:infonce/label",
    "infonce/label": "oracle:infonce/label", "nwj/label": "oracle:nwj/label",
    "dv/label": "oracle:dv/label", "mine/label": "oracle:mine/label",
    "smile/label": "oracle:smile/label",
    "demi/label": "oracle:demi/label", "infonce/concat": "oracle:infonce/concat",
    "nwj/concat": "oracle:nwj/concat", "dv/concat": "oracle:dv/concat",
    "mine/concat": "oracle:mine/concat",
    "smile/concat": "oracle:smile/concat", "demi/concat": "oracle:demi/concat",
}


def markdown_task_table(task_rec: Mapping[str, Any]) -> str:
  """One task's table: the truth line, then one line per estimator."""
  t = task_rec
  lines = [f"**{t['task']}**: I = {t['truth']:.3f} ± {t['truth_stderr']:.3f}, "
           f"H(Y) = {t['label_entropy']:.3f}, log K = {t['log_k']:.3f}, "
           f"n_train = {t['n_train']}, n_test = {t['n_test']}, {t['num_seeds']} seeds",
           "",
           "| estimator | mean | bias | std | RMSE | err vs test PMI | oracle | diverged | "
           "wall s | classifier is |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  by_name = {r["estimator"]: r for r in t["rows"]}
  for r in t["rows"]:
    o = by_name.get(ORACLE_OF.get(r["estimator"], ""), {})
    lines.append(
        f"| {r['estimator']} | {_f(r['mean'])} | {_f(r['bias'])} | {_f(r['std'])} | "
        f"{_f(r['rmse'])} | {_f(r['err_test'])} | {_f(o.get('mean'))} | "
        f"{r['diverged']}/{t['num_seeds']} | {r['wall_s']:.1f} | "
        f"{t['verdicts'].get(r['estimator'], '')} |")
  return "\n".join(lines)


def summary_table(task_recs: Sequence[Mapping[str, Any]], estimators: Sequence[str]) -> str:
  """One line per task: the truth and each estimator's bias ± std (RMSE leader in bold)."""
  shown = [e for e in estimators if not e.startswith("oracle:")]
  head = "| task | I | " + " | ".join(shown) + " |"
  lines = [head, "|" + "---|" * (len(shown) + 2)]
  for t in task_recs:
    by = {r["estimator"]: r for r in t["rows"]}
    rmses = {e: by[e]["rmse"] for e in shown if e in by and by[e]["rmse"] is not None
             and not by[e]["diverged"]}
    best = min(rmses, key=lambda e: rmses[e]) if rmses else None
    cells = []
    for e in shown:
      r = by.get(e)
      if r is None or r["bias"] is None:
        cells.append("-")
        continue
      c = f"{r['bias']:+.2f}±{(r['std'] or 0):.2f}"
      if r["diverged"]:
        c += f" ({r['diverged']} div)"
      cells.append(f"**{c}**" if e == best else c)
    lines.append(f"| {t['task']} | {t['truth']:.2f} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def tally_table(counts: Mapping[str, Mapping[str, int]]) -> str:
  """The classifier's win / tie / lose counts per opponent (from :func:`tally`)."""
  lines = ["| estimator | win | tie | lose |", "|---|---|---|---|"]
  lines += [f"| {e} | {t['win']} | {t['tie']} | {t['lose']} |" for e, t in counts.items()]
  return "\n".join(lines)


def curve_table(curve: Mapping[str, Any]) -> str:
  """The learning curve: mean ± std over seeds per training size, and the samples needed."""
  k = curve["points"][0]["num_classes"]
  lines = ["| estimator | " + " | ".join(f"{p['n_train'] // k}/class" for p in curve["points"])
           + " | samples needed (n_train) |", "|---|" + "---|" * (len(curve["points"]) + 1)]
  for e, pts in curve["estimators"].items():
    cells = [("-" if p["mean"] is None else f"{p['mean']:.3f}±{(p['std'] or 0):.3f}")
             for p in pts]
    lines.append(f"| {e} | " + " | ".join(cells) + f" | {curve['samples_needed'][e]} |")
  return "\n".join(lines)


def record_tables(record: Mapping[str, Any]) -> str:
  """The benchmark's three tables from its results record (``experiments.mi_benchmark``'s
  JSON): the summary, the classifier's win / tie / lose tally, the learning curve; each
  under a bold caption. This is what ``tools.doc_tables`` renders into the docs."""
  c = record["config"]
  names = [n.strip() for n in str(c["estimators"]).split(",") if n.strip()]
  cpu = record.get("cpu_time_s")
  parts = [f"{record['tier']} tier: {len(record['tasks'])} tasks, {c['num_seeds']} seeds, "
           f"n_train {c['n_train']} ({c['val_fraction']:.0%} held out), n_test {c['n_test']}, "
           f"MLP ({c['hidden']}), {c['steps']} Adam steps, B = {c['batch_size']}; "
           f"wall {record['wall_time_s'] / 60:.1f} min"
           + (f", CPU (user+sys) {cpu / 60:.1f} min" if cpu is not None else "") + ".", "",
           "**Summary: bias ± std over seeds (nats); bold = lowest RMSE**", "",
           summary_table(record["tasks"], names), "",
           "**The classifier against each estimator (tasks won / tied / lost)**", "",
           tally_table(record["tally"])]
  curve = record.get("learning_curve")
  if curve:
    parts += ["", f"**Learning curve: {curve['task']} (I = {curve['truth']:.3f}), estimate "
              "mean ± std over seeds (nats)**", "", curve_table(curve)]
  return "\n".join(parts)


def record_tally(record: Mapping[str, Any]) -> str:
  """The win / tie / lose table alone, captioned (the README's short table)."""
  return (f"The classifier against each estimator over the {record['tier']} tier's "
          f"{len(record['tasks'])} tasks (won / tied / lost; tie = within 2 standard errors "
          "of the paired per-seed errors):\n\n" + tally_table(record["tally"]))


def tally(task_recs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
  """Per opponent: how many tasks the classifier wins / ties / loses."""
  out: dict[str, dict[str, int]] = {}
  for t in task_recs:
    for e, v in t["verdicts"].items():
      out.setdefault(e, {"win": 0, "tie": 0, "lose": 0})[v] += 1
  return out


def plot_estimates(task_recs: Sequence[Mapping[str, Any]], estimators: Sequence[str], path: str,
                   title: str = "") -> str:
  """Estimate vs truth: one panel per estimator, one point per task (mean ± std over seeds)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  shown = [e for e in estimators if not e.startswith("oracle:")]
  cols = min(4, len(shown))
  rows = -(-len(shown) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
  top = max(max(t["truth"], t["log_k"]) for t in task_recs) * 1.05 + 0.1
  for ax, e in zip(axes.flat, shown):
    ax.plot([0, top], [0, top], color="0.6", lw=1)
    for t in task_recs:
      r = next((r for r in t["rows"] if r["estimator"] == e), None)
      if r is None or r["mean"] is None:
        continue
      ax.errorbar(t["truth"], r["mean"], yerr=r["std"] or 0, fmt="o" if not r["diverged"] else "x",
                  ms=4, capsize=2, color="C3" if r["diverged"] else "C0")
    ax.set_title(e, fontsize=9)
    ax.set_xlim(-0.1, top)
    ax.set_ylim(-0.5, top)
    ax.set_xlabel("true I (nats)", fontsize=8)
    ax.set_ylabel("estimate (nats)", fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in list(axes.flat)[len(shown):]:
    ax.axis("off")
  fig.suptitle(title or "estimate vs truth (mean ± std over seeds; x = some seeds diverged)",
               fontsize=10)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_learning_curves(curves: Mapping[str, Any], path: str, title: str = "") -> str:
  """|bias| (mean ± std over seeds) against samples per class, one line per estimator."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for e, pts in curves["estimators"].items():
    xs = [p["per_class"] for p in pts if p["mean"] is not None]
    ys = [p["mean"] for p in pts if p["mean"] is not None]
    es = [p["std"] or 0 for p in pts if p["mean"] is not None]
    ax.errorbar(xs, ys, yerr=es, marker="o", ms=3, capsize=2, label=e)
  ax.axhline(curves["truth"], color="k", lw=1, ls="--", label="true I")
  ax.set_xscale("log")
  ax.set_xlabel("training samples per class")
  ax.set_ylabel("estimate (nats)")
  ax.set_title(title or curves["task"], fontsize=8)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
