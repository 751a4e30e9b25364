r"""The result tables of README.md and BUILD_NOTES.md, rendered from recorded result files.

Every table in the docs that an experiment produced sits between two markers
naming how it is rendered and from which result files (paths relative to the
repository root, as the experiment's command writes them)::

  <!-- table: pc_softmax runs/pc_softmax/results.json -->
  | objective | ... |
  <!-- /table -->

  python -m tools.doc_tables --write     # record runs/ files that exist, re-render every block
  python -m tools.doc_tables --check     # exit 1 if a block or a recorded file is stale

The result files behind every table are committed, as recorded copies under
``docs/results/`` (``runs/wsol_s0/results.json`` ->
``docs/results/runs/wsol_s0/results.json``): a table is always re-rendered
from them, on any machine, so a table can never drift from its data. ``--write``
copies the files of ``runs/`` that exist into the record first. Each table opens
with the machine its runs were made on (CPU model, vector ISA, cores, XLA flags,
jax version), read from the results' ``device`` and ``versions`` records: a
training run's numbers are specific to that machine (XLA's CPU code path and
rounding change with the CPU, and training amplifies rounding), so the test
suite compares a fresh run with a recorded table exactly only on the machine
that recorded it (``same_machine``) and by shape elsewhere (``table_shape``).

Kinds: ``wsol_seeds`` (run directories of ``experiments.wsol``, one per seed,
mean ± std), ``wsol_run`` (one run directory), ``wsol_findings`` (run
directories of one recipe on any seeds and machines: the range of each paired
comparison that README and BUILD_NOTES state, and in how many runs it holds),
``pc_softmax`` (a ``results.json``), ``synthetic_mi`` (a results JSON),
``mi_benchmark`` (the JSON of ``experiments.mi_benchmark``: summary, win / tie /
lose, learning curve), ``mi_benchmark_tally`` (its win / tie / lose table alone).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from infocam_jax.evaluators.cam_methods import METHODS
from infocam_jax.mibench import report as mibench_report
from infocam_jax.seeds import pm, stat as seed_stat

from experiments import _pc_softmax_results
from experiments import wsol_summary


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ("README.md", "BUILD_NOTES.md")
#: Where the result files behind the documented tables are recorded (committed).
RECORD = os.path.join(REPO, "docs", "results")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
BLOCK = re.compile(r"<!-- table: (\w+) ([^>]*?) -->\n(.*?)<!-- /table -->", re.S)

WSOL_COLUMNS = (("max_box_acc", "MaxBoxAcc*"), ("max_box_acc_v2", "MaxBoxAccV2*"),
                ("top1_loc_val_selected", "Top-1 Loc @val thr"),
                ("max_box_acc_val_selected", "BoxAcc @val thr"), ("top1_loc", "Top-1 Loc @0.2"))


def _load(path: str) -> dict[str, Any]:
  with open(path) as f:
    return json.load(f)


def _method_title(name: str) -> str:
  return METHODS[name].title if name in METHODS else name.replace("_", " ")


def wsol_table(runs: Sequence[Mapping[str, Any]], protocol: str = "") -> str:
  """Mean ± std over runs (one per seed) of the test metrics of every method (percent).

  The statistics and paired differences are ``wsol_summary.seed_table``'s (the
  one seeds rule of the WSOL tables).
  """
  protocol = protocol or runs[0]["primary_protocol"]
  n = len(runs)
  stats, diffs = wsol_summary.seed_table(runs, protocol, [k for k, _ in WSOL_COLUMNS])
  cls = seed_stat([r["classification"]["test"]["accuracy"] for r in runs])
  lines = [f"{protocol} protocol, test split ({runs[0]['dataset']['num_test']:,} images), "
           f"{'mean ± std over ' + str(n) + ' seeds' if n > 1 else 'one run'}, percent; "
           f"Top-1 Cls {pm(cls, 1)}; * maximised over test thresholds by definition:", "",
           "| method | " + " | ".join(h for _, h in WSOL_COLUMNS) + " |",
           "|---|" + "---|" * len(WSOL_COLUMNS)]
  for m, row in stats.items():
    lines.append(f"| {_method_title(m)} | " + " | ".join(pm(row[k], 1) for k, _ in WSOL_COLUMNS)
                 + " |")
  if n > 1 and diffs is not None:
    keys = ("max_box_acc", "max_box_acc_v2", "top1_loc_val_selected")
    lines += ["", "Paired difference method − CAM (same seed), mean ± std:", "",
              "| method | MaxBoxAcc* | MaxBoxAccV2* | Top-1 Loc @val thr |", "|---|---|---|---|"]
    for m, row in diffs.items():
      if m not in ("centre_box", "full_image_box"):
        lines.append(f"| {_method_title(m)} | " + " | ".join(pm(row[k], 1) for k in keys) + " |")
  return "\n".join(lines)


#: The paired comparisons (a - b, same run) behind the WSOL findings, in documentation order.
WSOL_COMPARISONS = (("infocam", "cam"), ("infocam_min", "cam"), ("infocam_same", "cam"),
                    ("infocam_min_same", "cam"), ("infocam_min", "infocam"),
                    ("cam_region", "infocam"), ("grad_cam", "cam"), ("infocam", "infocam_same"),
                    ("infocam_min", "infocam_min_same"))
FINDING_METRICS = WSOL_COLUMNS[:3]


def paired_differences(runs: Sequence[Mapping[str, Any]], a: str, b: str, metric: str,
                       protocol: str = "") -> list[float]:
  """``a - b`` of one test metric in each run (percentage points), runs where both exist."""
  out = []
  for r in runs:
    p = r["protocols"][protocol or r["primary_protocol"]]
    if a in p and b in p and p[a][metric] is not None and p[b][metric] is not None:
      out.append(p[a][metric] - p[b][metric])
  return out


def wsol_findings_table(runs: Sequence[Mapping[str, Any]]) -> str:
  """Per paired comparison: its smallest and largest value over the runs, and how many are > 0.

  The runs are one recipe on several seeds and machines (or CPU code-path
  variations); a comparison is a finding only where its sign holds in every run.
  """
  lines = [f"{runs[0]['primary_protocol']} protocol, test split, paired difference a − b in "
           f"each of {len(runs)} runs (percentage points): smallest … largest (runs with a > b):",
           "", "| a − b | " + " | ".join(h for _, h in FINDING_METRICS) + " |",
           "|---|" + "---|" * len(FINDING_METRICS)]
  for a, b in WSOL_COMPARISONS:
    cells = []
    for k, _ in FINDING_METRICS:
      d = paired_differences(runs, a, b, k)
      cells.append(f"{min(d):+.1f} … {max(d):+.1f} ({sum(x > 0 for x in d)}/{len(d)})"
                   if d else "-")
    lines.append(f"| {_method_title(a)} − {_method_title(b)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def pc_softmax_table(results: Mapping[str, Any]) -> str:
  return "\n\n".join(_pc_softmax_results.markdown_table(results, sp)
                     for sp in results["test_splits"])


def synthetic_mi_table(record: Mapping[str, Any]) -> str:
  """Per (setting, objective, reading): the estimation error over dimensions (nats)."""
  rows = record["rows"]
  groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
  for r in rows:
    key = ("balanced" if r["balanced"] else "imbalanced", r["objective"], r["estimator_formula"])
    groups.setdefault(key, []).append(r)
  dims = sorted({r["dim"] for r in rows})
  head = "| data | objective | reading | " + " | ".join(f"error d={d}" for d in dims) + \
      " | within 0.01 |"
  lines = [f"{'QUICK run (1/5 of the data); ' if record.get('quick') else ''}estimate − true MI "
           "on the test sample (nats), seed " + str(rows[0]["seed"]) + ":", "", head,
           "|---|---|---|" + "---|" * (len(dims) + 1)]
  for (setting, obj, formula), rs in groups.items():
    by = {r["dim"]: r for r in rs}
    cells = [f"{by[d]['error']:+.4f}" if d in by else "-" for d in dims]
    within = all(abs(r["error"]) <= record.get("summary", {}).get("target_nats", 0.01) for r in rs)
    target = all(r["target_applies"] for r in rs)
    mark = ("yes" if within else "no") + ("" if target else " (not a target row)")
    lines.append(f"| {setting} | {obj} | {formula} | " + " | ".join(cells) + f" | {mark} |")
  return "\n".join(lines)


def result_files(kind: str, paths: Sequence[str]) -> list[str]:
  """The result files of a block, relative to the repository root."""
  return [os.path.join(p, "results.json") if kind.startswith("wsol") else p for p in paths]


def _records(kind: str, paths: Sequence[str], root: str) -> list[dict[str, Any]]:
  return [_load(os.path.join(root, f)) for f in result_files(kind, paths)]


def machine(record: Mapping[str, Any]) -> dict[str, Any]:
  """What makes a run's numbers specific to a machine: the CPU record, core count, jax version.

  ``XLA_FLAGS`` that only set the host device count to 1 (the default) are left
  out, so a run under the tests' environment and one from the command line compare.
  """
  cpu = dict((record.get("device") or {}).get("host_cpu") or {})
  flags = [f for f in str(cpu.get("xla_flags", "")).split()
           if f != "--xla_force_host_platform_device_count=1"]
  cpu["xla_flags"] = " ".join(sorted(flags))
  versions = record.get("versions") or {}
  return {**cpu, "jax": versions.get("jax"), "jaxlib": versions.get("jaxlib")}


def same_machine(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
  """Whether two result records come from the same CPU, XLA flags and jax (see ``machine``)."""
  ma, mb = machine(a), machine(b)
  return bool(ma.get("model")) and ma == mb


def machine_line(records: Sequence[Mapping[str, Any]]) -> str:
  """``Machine: ...`` naming the machine(s) the records were made on, and when."""
  seen: list[str] = []
  for r in records:
    m = machine(r)
    if not m.get("model"):
      text = "machine not recorded"
    else:
      isa = {"avx512": "AVX-512", "avx2": "AVX2"}.get(m["isa"], m["isa"])
      cores = f"{m['cores']} core{'' if m['cores'] == 1 else 's'}"
      text = (f"{m['model']} ({isa}{', AMX' if m.get('amx') else ''}, {cores}"
              f"{', XLA_FLAGS=' + m['xla_flags'] if m['xla_flags'] else ''}), jax {m['jax']}")
    created = str(r.get("created", ""))[:10]
    text += f", {created}" if created else ""
    if text not in seen:
      seen.append(text)
  return "Machine: " + "; ".join(seen) + "."


def table_shape(table: str) -> str:
  """A rendered table with every number replaced by ``#`` and the machine line dropped."""
  return "\n".join(NUMBER.sub("#", line) for line in table.splitlines()
                   if not line.startswith("Machine: "))


def render_records(kind: str, records: Sequence[Mapping[str, Any]]) -> str:
  """The table of ``kind`` from loaded result records, opening with their machine line."""
  if kind in ("wsol_seeds", "wsol_run"):
    table = wsol_table(records)
  elif kind == "wsol_findings":
    table = wsol_findings_table(records)
  else:
    renderers: dict[str, Callable[[Mapping[str, Any]], str]] = {
        "pc_softmax": pc_softmax_table, "synthetic_mi": synthetic_mi_table,
        "mi_benchmark": mibench_report.record_tables,
        "mi_benchmark_tally": mibench_report.record_tally}
    if kind not in renderers or len(records) != 1:
      raise ValueError(f"unknown table kind {kind!r} or wrong number of files ({len(records)})")
    table = renderers[kind](records[0])
  return machine_line(records) + "\n" + table


def render(kind: str, paths: Sequence[str], root: str = RECORD) -> str:
  """The table of ``kind`` from the result files ``paths`` under ``root`` (default: the record).

  Pass ``root=REPO`` to render a run's own files (``runs/...``).
  """
  return render_records(kind, _records(kind, paths, root))


def compare_fresh(kind: str, paths: Sequence[str],
                  fresh: Sequence[Mapping[str, Any]]) -> str:
  """Checks a fresh run of a documented table's command against the table; ``"exact"``/``"shape"``.

  On the machine that recorded the table (``same_machine`` for every record) the
  fresh table must equal the documented one character for character: the code
  still produces the documented numbers. Elsewhere a training run's numbers
  legitimately differ, and the fresh table must have the documented shape
  (``table_shape``: the same rows, columns and captions). Raises
  ``AssertionError`` saying which rule failed.
  """
  documented_body = documented(kind, paths).rstrip("\n")
  recorded = _records(kind, paths, RECORD)
  table = render_records(kind, fresh)
  if len(recorded) == len(fresh) and all(same_machine(a, b) for a, b in zip(recorded, fresh)):
    # The machines are equal; the Machine line's date is not part of the numbers.
    if table.split("\n", 1)[1] != documented_body.split("\n", 1)[1]:
      raise AssertionError(
          f"the documented table '{kind} {' '.join(paths)}' was recorded on this machine "
          f"({machine_line(fresh)}) but the current code prints other numbers: re-run its "
          f"command and `python -m tools.doc_tables --write`.\n--- documented\n"
          f"{documented_body}\n--- this run\n{table}")
    return "exact"
  if table_shape(table) != table_shape(documented_body):
    raise AssertionError(
        f"the documented table '{kind} {' '.join(paths)}' has another shape than this run's "
        f"(rows, columns or captions changed): re-run its command and --write.\n--- documented"
        f"\n{documented_body}\n--- this run\n{table}")
  return "shape"


def blocks(text: str) -> list[tuple[str, list[str], str]]:
  """``(kind, paths, body)`` of every table block in a document."""
  return [(m.group(1), m.group(2).split(), m.group(3)) for m in BLOCK.finditer(text)]


def documented(kind: str, paths: Sequence[str]) -> str:
  """The body of the block ``kind paths`` in README.md or BUILD_NOTES.md (KeyError if none)."""
  for doc in DOCS:
    with open(os.path.join(REPO, doc)) as f:
      for k, p, body in blocks(f.read()):
        if k == kind and list(p) == list(paths):
          return body
  raise KeyError(f"no documented table '{kind} {' '.join(paths)}' in {DOCS}")


def _have(kind: str, paths: Sequence[str], root: str) -> bool:
  return all(os.path.exists(os.path.join(root, f)) for f in result_files(kind, paths))


def record(kind: str, paths: Sequence[str]) -> bool:
  """Copies a block's result files from the repository (``runs/``) into the record.

  Returns whether the record changed.
  """
  changed = False
  for f in result_files(kind, paths):
    with open(os.path.join(REPO, f), "rb") as src:
      data = src.read()
    dst = os.path.join(RECORD, f)
    if os.path.exists(dst):
      with open(dst, "rb") as old:
        if old.read() == data:
          continue
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as out:
      out.write(data)
    changed = True
  return changed


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  mode = parser.add_mutually_exclusive_group(required=True)
  mode.add_argument("--write", action="store_true",
                    help="record the runs/ files that exist, then re-render every block")
  mode.add_argument("--check", action="store_true",
                    help="exit 1 when a block differs from its recorded files, or a runs/ file "
                    "from its recorded copy")
  args = parser.parse_args(argv)
  stale = 0
  for doc in DOCS:
    path = os.path.join(REPO, doc)
    with open(path) as f:
      text = f.read()

    def replace(m: re.Match) -> str:
      nonlocal stale
      kind, paths = m.group(1), m.group(2).split()
      label = f"{doc}: {kind} {' '.join(paths)}"
      if _have(kind, paths, REPO):
        if args.write:
          if record(kind, paths):
            print(f"{label}: recorded from runs/")
        elif any(_load(os.path.join(REPO, f)) != _load(os.path.join(RECORD, f))
                 if os.path.exists(os.path.join(RECORD, f)) else True
                 for f in result_files(kind, paths)):
          stale += 1
          print(f"{label}: STALE (the run's files differ from the recorded copies)")
      if not _have(kind, paths, RECORD):
        stale += 1
        print(f"{label}: NO RECORD under {os.path.relpath(RECORD, REPO)} (run its command, "
              "then --write)")
        return m.group(0)
      body = render(kind, paths) + "\n"
      if body != m.group(3):
        stale += 1 if args.check else 0
        print(f"{label}: {'rewritten' if args.write else 'STALE'}")
      return f"<!-- table: {kind} {' '.join(paths)} -->\n{body}<!-- /table -->" if args.write \
          else m.group(0)

    new = BLOCK.sub(replace, text)
    if args.write and new != text:
      with open(path, "w") as f:
        f.write(new)
  if args.check and stale:
    print(f"{stale} documented table(s) are stale; run their commands and --write.")
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
