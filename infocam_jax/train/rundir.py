"""The run-directory rule: when a config may resume, skip, or evaluate a run directory.

A run directory (``DIR``: ``checkpoints/``, ``metrics.jsonl``, ``config.json``,
``export/``, results) belongs to one *training* config. Every experiment asks
this module, and only this module, what another config may do with it:

* **resume** (``check_config(..., action="resume")``): a training re-run may
  differ only in ``RESUMABLE`` fields (how the run executes, and the schedule
  length: more epochs continue it) and the experiment's evaluation fields;
* **evaluate** (``action="evaluate"``): an evaluation of the finished model may
  differ only in ``OPERATIONAL`` fields and the evaluation fields. Anything
  that changes what was trained or what data is evaluated (seed, image size,
  crop, dataset, splits, model, loss, schedule) is refused: the record would
  describe a model that does not exist;
* **skip** (``finished``): a finished run's record is reused when its training
  config equals the current one up to ``OPERATIONAL`` fields (and it is only
  re-evaluated when its evaluation settings changed);
* **where an evaluation writes** (``evaluation_dir``): ``DIR`` itself when
  ``DIR/results.json`` is absent or was made with the same evaluation fields,
  else ``DIR/eval/<name>/``: a different evaluation never replaces the run's
  own results.

A refusal is one ``ConfigMismatchError`` (a ``ValueError``; the experiments
exit with status 2) naming every differing field, ``old -> new``.

Evaluation fields are dotted keys, ``"section.*"`` for a whole section::

  >>> differences({"seed": 0, "wsol": {"k": 3}}, {"seed": 1, "wsol": {"k": 4}},
  ...             mutable=frozenset({"wsol.*"}))
  ['seed: 0 -> 1']
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any


class ConfigMismatchError(ValueError):
  """A run directory holds a run with a different (training) config: the action is refused.

  >>> try:
  ...   check_config({"seed": 0}, {"seed": 1}, "runs/a")  # a run trained with another seed
  ... except ConfigMismatchError as e:
  ...   print(str(e).splitlines()[0])
  runs/a holds a run with a different config; refusing to resume it with:
  """


#: How a run executes, never what it computes: free to change for any action.
OPERATIONAL = frozenset({
    "progress_bar", "tensorboard", "log_every_steps", "async_checkpointing", "eval_batch_size",
    "parallelism", "data.data_dir", "data.num_workers", "checkpoint_every_steps",
    "keep_checkpoints", "distributed.*",
})
#: What a training re-run may change besides: the schedule length (continues the run) and
#: how often it is evaluated / how many best checkpoints are kept.
RESUMABLE = OPERATIONAL | frozenset({"num_train_steps", "num_epochs", "eval_every_steps",
                                     "keep_best_checkpoints"})
ACTIONS = {"resume": RESUMABLE, "evaluate": OPERATIONAL}


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{"a": {"b": 1}} -> {"a.b": 1}``."""
  out: dict[str, Any] = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def matches(key: str, fields: frozenset[str]) -> bool:
  """Whether dotted ``key`` is one of ``fields`` (``"section.*"`` covers a section)."""
  return key in fields or key.split(".")[0] + ".*" in fields


def _plain(v: Any) -> Any:
  return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def differences(saved: Mapping[str, Any], current: Mapping[str, Any], *,
                mutable: frozenset[str] = RESUMABLE, only: frozenset[str] | None = None
                ) -> list[str]:
  """``"key: old -> new"`` for every differing dotted key outside ``mutable``
  (inside ``only`` when given); tuples and lists compare equal (a JSON round trip)."""
  a, b = flatten(saved), flatten(current)
  diffs = []
  for k in sorted(set(a) | set(b)):
    if matches(k, mutable) or (only is not None and not matches(k, only)):
      continue
    if _plain(a.get(k)) != _plain(b.get(k)):
      diffs.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
  return diffs


def check_config(saved: Mapping[str, Any] | None, current: Mapping[str, Any], where: str, *,
                 action: str = "resume", evaluation_fields: frozenset[str] = frozenset()) -> None:
  """Raises ``ConfigMismatchError`` when ``current`` may not ``action`` the run in ``where``.

  ``saved``: the run's training config (None: nothing to compare, allowed).
  """
  if saved is None:
    return
  diffs = differences(saved, current, mutable=ACTIONS[action] | evaluation_fields)
  if not diffs:
    return
  if action == "evaluate":
    hint = ("An evaluation may change only "
            + (", ".join(sorted(evaluation_fields)) + " and " if evaluation_fields else "")
            + "how it runs (" + ", ".join(sorted(OPERATIONAL)) + "); evaluate with the run's "
            "own values, or train a new run in a new --workdir.")
  else:
    hint = "Use a new --workdir (or restore the original values)."
  raise ConfigMismatchError(f"{where} holds a run with a different config; refusing to {action} "
                            "it with:\n  " + "\n  ".join(diffs) + "\n" + hint)


def read_json(path: str) -> dict[str, Any] | None:
  """The JSON object in ``path``; None when absent or unreadable (e.g. cut by a crash)."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def trained_config(workdir: str) -> dict[str, Any] | None:
  """The config the finished model in ``DIR/export`` was trained with (None: no export)."""
  meta = read_json(os.path.join(workdir, "export", "export.json"))
  return None if meta is None else meta.get("config")


def finished(path: str, run_config: Mapping[str, Any], eval_settings: Mapping[str, Any]
             ) -> tuple[dict[str, Any] | None, bool]:
  """``(record, needs_evaluation)`` of the result file ``path`` of a finished run.

  ``record`` is None when ``path`` is absent, unreadable, or was made with a
  training config (``record["run_config"]``) other than ``run_config`` up to
  ``OPERATIONAL`` fields: the run must be (re)trained or resumed.
  ``needs_evaluation``: the record's ``eval_settings`` differ from
  ``eval_settings`` (re-evaluate, do not retrain).
  """
  record = read_json(path)
  if record is None or differences(record.get("run_config", {}), run_config,
                                   mutable=OPERATIONAL):
    return None, False
  return record, _plain_dict(record.get("eval_settings")) != _plain_dict(eval_settings)


def _plain_dict(d: Any) -> Any:
  return None if d is None else {k: _plain(v) for k, v in dict(d).items()}


def evaluation_dir(workdir: str, config: Mapping[str, Any], evaluation_fields: frozenset[str], *,
                   name: str = "", overwrite: bool = False,
                   results_file: str = "results.json") -> str:
  """Where an evaluation with ``config`` writes (see the module docstring).

  ``name``: the folder under ``DIR/eval/`` (default: made of the changed
  evaluation fields). Raises ``ConfigMismatchError`` when that folder holds an
  evaluation with other settings; ``overwrite`` writes into ``DIR`` regardless.
  """
  saved = read_json(os.path.join(workdir, results_file))
  if overwrite or saved is None:
    return workdir
  diffs = differences(saved.get("config", {}), config, mutable=frozenset(),
                      only=evaluation_fields)
  if not diffs and not name:
    return workdir
  name = name or "_".join(re.sub(r"[^A-Za-z0-9._=-]+", "-", d.split(":")[0].split(".")[-1] + "="
                                 + d.split("-> ")[-1].strip("'")) for d in diffs)
  out = os.path.join(workdir, "eval", name)
  previous = read_json(os.path.join(out, results_file))
  if previous is not None and differences(previous.get("config", {}), config,
                                          mutable=frozenset(), only=evaluation_fields):
    raise ConfigMismatchError(f"{out} holds an evaluation with other settings; choose another "
                              "--eval_name or pass --overwrite.")
  return out
