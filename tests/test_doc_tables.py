"""The documented tables: each is rendered from committed result files, names its machine, and
a fresh run is compared with it by a rule that holds on every CPU.

These checks run on any machine in milliseconds: they read the recorded result
files under ``docs/results/`` (never a training run's rounding on this CPU).
The slow suite adds the fresh smoke runs (``test_wsol_experiment``,
``test_pc_softmax_experiment``), compared through ``doc_tables.compare_fresh``.
"""

from __future__ import annotations

import copy
import os

import pytest

from tools import doc_tables


def _all_blocks():
  out = []
  for doc in doc_tables.DOCS:
    with open(os.path.join(doc_tables.REPO, doc)) as f:
      out += [(doc, kind, paths, body) for kind, paths, body in doc_tables.blocks(f.read())]
  return out


BLOCKS = _all_blocks()


def test_the_docs_have_tables():
  kinds = {kind for _, kind, _, _ in BLOCKS}
  assert {"wsol_seeds", "wsol_run", "pc_softmax", "synthetic_mi", "mi_benchmark",
          "mi_benchmark_tally"} <= kinds


@pytest.mark.parametrize("doc, kind, paths, body", BLOCKS,
                         ids=[f"{d}:{k}:{' '.join(p)}" for d, k, p, _ in BLOCKS])
def test_every_documented_table_is_rendered_from_its_recorded_files(doc, kind, paths, body):
  for f in doc_tables.result_files(kind, paths):
    assert os.path.exists(os.path.join(doc_tables.RECORD, f)), (
        f"{doc}: the result file {f} behind '{kind}' is not recorded under docs/results/: run "
        "the table's command, then `python -m tools.doc_tables --write`")
  assert doc_tables.render(kind, paths) + "\n" == body, (
      f"{doc}: table '{kind} {' '.join(paths)}' differs from its recorded files: "
      "`python -m tools.doc_tables --write`")


@pytest.mark.parametrize("doc, kind, paths, body", BLOCKS,
                         ids=[f"{d}:{k}:{' '.join(p)}" for d, k, p, _ in BLOCKS])
def test_every_documented_table_names_its_machine(doc, kind, paths, body):
  first = body.splitlines()[0]
  assert first.startswith("Machine: ") and "not recorded" not in first, (doc, kind, first)
  assert " core" in first and "jax " in first, first


def _smoke_record():
  return doc_tables._records("wsol_run", ["runs/smoke_wsol"], doc_tables.RECORD)[0]  # pylint: disable=protected-access


def _with_cpu(record, **cpu):
  out = copy.deepcopy(record)
  out["device"]["host_cpu"].update(cpu)
  return out


def test_same_machine_is_cpu_isa_flags_and_jax():
  rec = _smoke_record()
  assert doc_tables.same_machine(rec, copy.deepcopy(rec))
  assert not doc_tables.same_machine(rec, _with_cpu(rec, isa="avx2"))
  assert not doc_tables.same_machine(rec, _with_cpu(rec, model="AMD EPYC 9B14"))
  assert not doc_tables.same_machine(rec, _with_cpu(rec, amx=not rec["device"]["host_cpu"]["amx"]))
  assert not doc_tables.same_machine(rec, _with_cpu(rec, cores=rec["device"]["host_cpu"]["cores"] + 2))
  flags = rec["device"]["host_cpu"]["xla_flags"]
  assert not doc_tables.same_machine(rec, _with_cpu(rec, xla_flags=flags + " --xla_cpu_max_isa=AVX2"))
  # A device count of 1 is the default: the tests' environment and the command line compare.
  assert doc_tables.same_machine(rec, _with_cpu(
      rec, xla_flags="--xla_force_host_platform_device_count=1 " + flags))
  other_jax = copy.deepcopy(rec)
  other_jax["versions"]["jax"] = "0.0.1"
  assert not doc_tables.same_machine(rec, other_jax)
  unknown = copy.deepcopy(rec)
  del unknown["device"]["host_cpu"]
  assert not doc_tables.same_machine(unknown, copy.deepcopy(unknown))


def test_compare_fresh_is_exact_on_the_recording_machine_and_by_shape_elsewhere():
  rec = _smoke_record()
  key = ("wsol_run", ["runs/smoke_wsol"])
  assert doc_tables.compare_fresh(*key, [copy.deepcopy(rec)]) == "exact"
  later = copy.deepcopy(rec)
  later["created"] = "2031-01-01T00:00:00+0000"  # the same machine on another day
  assert doc_tables.compare_fresh(*key, [later]) == "exact"
  moved = copy.deepcopy(rec)
  protocol = moved["primary_protocol"]
  moved["protocols"][protocol]["cam"]["max_box_acc"] += 1.25  # another number, same machine
  with pytest.raises(AssertionError, match="recorded on this machine"):
    doc_tables.compare_fresh(*key, [moved])
  # Another CPU: other numbers are expected, the table's shape is what must hold.
  elsewhere = _with_cpu(moved, isa="avx2", model="AMD EPYC 7B13")
  assert doc_tables.compare_fresh(*key, [elsewhere]) == "shape"
  dropped = copy.deepcopy(elsewhere)
  del dropped["protocols"][protocol]["grad_cam"]
  with pytest.raises(AssertionError, match="another shape"):
    doc_tables.compare_fresh(*key, [dropped])


def test_table_shape_keeps_rows_and_columns_and_drops_numbers_and_machine():
  a = "Machine: X (AVX2, 2 cores), jax 1\ncap (80 images) 6.2:\n| m | a |\n|---|---|\n| CAM | 2.5 ± 0.1 |"
  b = "Machine: Y (AVX-512, 4 cores), jax 2\ncap (80 images) 5.0:\n| m | a |\n|---|---|\n| CAM | -3.75 ± 1.0 |"
  assert doc_tables.table_shape(a) == doc_tables.table_shape(b)
  assert doc_tables.table_shape(a) != doc_tables.table_shape(a.replace("| CAM", "| infoCAM"))
  assert doc_tables.table_shape(a) != doc_tables.table_shape(a + "\n| Grad-CAM | 1.0 |")


def test_machine_line_names_each_machine_once():
  rec = _smoke_record()
  line = doc_tables.machine_line([rec, copy.deepcopy(rec)])
  cpu = rec["device"]["host_cpu"]
  assert line.startswith("Machine: " + cpu["model"]) and line.count(cpu["model"]) == 1
  two = doc_tables.machine_line([rec, _with_cpu(rec, model="AMD EPYC 7B13", isa="avx2")])
  assert cpu["model"] in two and "AMD EPYC 7B13 (AVX2" in two


def test_readme_states_no_test_count_that_goes_stale():
  """The README's test paragraph points at BUILD_NOTES' dated runs instead of a count."""
  import re  # pylint: disable=g-import-not-at-top
  with open(os.path.join(doc_tables.REPO, "README.md")) as f:
    text = f.read()
  assert not re.search(r"\b\d{3} (tests|passed)\b", text), "a test count in README.md goes stale"


def test_host_cpu_names_what_changes_rounding():
  from infocam_jax import io  # pylint: disable=g-import-not-at-top
  cpu = io.host_cpu()
  assert set(cpu) == {"model", "isa", "amx", "cores", "xla_flags"}
  assert cpu["model"] and cpu["cores"] == len(os.sched_getaffinity(0))
  assert cpu["xla_flags"] == os.environ.get("XLA_FLAGS", "")
