r"""The result tables of README.md and BUILD_NOTES.md, rendered from the experiments' own JSON.

Every table in the docs that an experiment produced sits between two markers
naming how it is rendered and from which result files (paths relative to the
repository root)::

  <!-- table: pc_softmax runs/pc_softmax/results.json -->
  | objective | ... |
  <!-- /table -->

  python -m experiments.doc_tables --write     # re-render every block whose files exist
  python -m experiments.doc_tables --check     # exit 1 if a block differs from its files

Kinds: ``wsol_seeds`` (run directories of ``experiments.wsol``, one per seed,
mean ± std), ``wsol_run`` (one run directory), ``pc_softmax`` (a
``results.json``), ``synthetic_mi`` (a results JSON). Blocks whose files are
absent are reported and left alone. The test suite renders the smoke runs it
makes with the same functions and compares them with their blocks, so a
documented table cannot drift from the code that CI runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from infocam_jax.evaluators import wsol

from experiments import _common
from experiments import _pc_softmax_results


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ("README.md", "BUILD_NOTES.md")
BLOCK = re.compile(r"<!-- table: (\w+) ([^>]*?) -->\n(.*?)<!-- /table -->", re.S)

WSOL_COLUMNS = (("max_box_acc", "MaxBoxAcc*"), ("max_box_acc_v2", "MaxBoxAccV2*"),
                ("top1_loc_val_selected", "Top-1 Loc @val thr"),
                ("max_box_acc_val_selected", "BoxAcc @val thr"), ("top1_loc", "Top-1 Loc @0.2"))


def _load(path: str) -> dict[str, Any]:
  with open(path) as f:
    return json.load(f)


def _method_title(name: str) -> str:
  return wsol.METHODS[name].title if name in wsol.METHODS else name.replace("_", " ")


def wsol_table(runs: Sequence[Mapping[str, Any]], protocol: str = "") -> str:
  """Mean ± std over runs (one per seed) of the test metrics of every method (percent)."""
  protocol = protocol or runs[0]["primary_protocol"]
  names = list(runs[0]["protocols"][protocol])
  n = len(runs)
  cls = _common.seed_stat([r["classification"]["test"]["accuracy"] for r in runs])
  lines = [f"{protocol} protocol, test split ({runs[0]['dataset']['num_test']:,} images), "
           f"{'mean ± std over ' + str(n) + ' seeds' if n > 1 else 'one run'}, percent; "
           f"Top-1 Cls {_common.pm(cls, 1)}; * maximised over test thresholds by definition:", "",
           "| method | " + " | ".join(h for _, h in WSOL_COLUMNS) + " |",
           "|---|" + "---|" * len(WSOL_COLUMNS)]
  for m in names:
    cells = [_common.pm(_common.seed_stat([r["protocols"][protocol][m][k] for r in runs]), 1)
             for k, _ in WSOL_COLUMNS]
    lines.append(f"| {_method_title(m)} | " + " | ".join(cells) + " |")
  if n > 1 and "cam" in names:
    lines += ["", "Paired difference method − CAM (same seed), mean ± std:", "",
              "| method | MaxBoxAcc* | MaxBoxAccV2* | Top-1 Loc @val thr |", "|---|---|---|---|"]
    for m in names:
      if m == "cam" or m in ("centre_box", "full_image_box"):
        continue
      cells = []
      for k in ("max_box_acc", "max_box_acc_v2", "top1_loc_val_selected"):
        d = [None if r["protocols"][protocol][m][k] is None or r["protocols"][protocol]["cam"][k]
             is None else r["protocols"][protocol][m][k] - r["protocols"][protocol]["cam"][k]
             for r in runs]
        cells.append(_common.pm(_common.seed_stat(d), 1))
      lines.append(f"| {_method_title(m)} | " + " | ".join(cells) + " |")
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


def render(kind: str, paths: Sequence[str]) -> str:
  """The table of ``kind`` from result files/directories ``paths`` (absolute or repo-relative)."""
  full = [p if os.path.isabs(p) else os.path.join(REPO, p) for p in paths]
  if kind in ("wsol_seeds", "wsol_run"):
    return wsol_table([_load(os.path.join(p, "results.json")) for p in full])
  renderers: dict[str, Callable[[Mapping[str, Any]], str]] = {
      "pc_softmax": pc_softmax_table, "synthetic_mi": synthetic_mi_table}
  if kind not in renderers or len(full) != 1:
    raise ValueError(f"unknown table kind {kind!r} or wrong number of files ({paths})")
  return renderers[kind](_load(full[0]))


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


def _available(paths: Sequence[str], kind: str) -> bool:
  files = [os.path.join(REPO, p, "results.json") if kind.startswith("wsol") else
           os.path.join(REPO, p) for p in paths]
  return all(os.path.exists(f) for f in files)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  mode = parser.add_mutually_exclusive_group(required=True)
  mode.add_argument("--write", action="store_true", help="re-render blocks whose files exist")
  mode.add_argument("--check", action="store_true", help="exit 1 when a block is stale")
  args = parser.parse_args(argv)
  stale = 0
  for doc in DOCS:
    path = os.path.join(REPO, doc)
    with open(path) as f:
      text = f.read()

    def replace(m: re.Match) -> str:
      nonlocal stale
      kind, paths = m.group(1), m.group(2).split()
      if not _available(paths, kind):
        print(f"{doc}: {kind} {' '.join(paths)}: result files absent, left as is")
        return m.group(0)
      body = render(kind, paths) + "\n"
      if body != m.group(3):
        stale += 1
        print(f"{doc}: {kind} {' '.join(paths)}: {'rewritten' if args.write else 'STALE'}")
      return f"<!-- table: {kind} {' '.join(paths)} -->\n{body}<!-- /table -->" if args.write \
          else m.group(0)

    new = BLOCK.sub(replace, text)
    if args.write and new != text:
      with open(path, "w") as f:
        f.write(new)
  if args.check and stale:
    print(f"{stale} documented table(s) differ from their result files; run with --write.")
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
