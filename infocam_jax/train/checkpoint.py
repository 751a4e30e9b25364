"""Checkpoints (orbax ``CheckpointManager``) with verified restore, and exports.

Layout of a run directory::

  DIR/checkpoints/<step>/state/       TrainState (StandardSave): step, params,
                                       batch_stats, opt_state, rng
  DIR/checkpoints/<step>/progress/    JSON: step, epoch, data-iterator position,
                                       per-array CRC-32 checksums, eval metrics
  DIR/checkpoints/<step>/config/      JSON: the full run config
  DIR/corrupt_checkpoints/<step>[-N]/ checkpoints found corrupt (moved aside)
  DIR/export/variables/               {params, batch_stats} only (StandardSave)
  DIR/export/export.json              model spec + provenance for the loader

Any step can be read without this package::

  import orbax.checkpoint as ocp
  tree = ocp.StandardCheckpointer().restore("DIR/checkpoints/120/state")
  tree["params"]            # nested dict of arrays

Arrays are saved as host NumPy copies (no device or mesh metadata: a
checkpoint written on 8 GPUs restores on one CPU, with or without a target).
Saves are asynchronous (the host copy is made first, then orbax writes
on a background thread and renames the temporary directory into place only
when complete, so a killed writer leaves no half-written ``<step>/``).
Retention: the newest ``max_to_keep`` steps plus the ``keep_best`` best by
``best_metric`` (among steps saved with metrics).

Restore tries the newest step first and verifies it: a read error, missing
item or checksum mismatch (a flipped byte restores silently otherwise) marks it
corrupt; it is reported, moved to ``corrupt_checkpoints/`` and the next older
step is tried.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from infocam_jax import io
from infocam_jax.train.state import state_checksums

PyTree = Any
log = logging.getLogger(__name__)

STATE, PROGRESS, CONFIG = "state", "progress", "config"


class _DropExpectedOrbaxWarnings(logging.Filter):
  """Orbax warns on every save without metrics when keep-best is on; that is by design."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "did not provide metrics" not in record.getMessage()


logging.getLogger("absl").addFilter(_DropExpectedOrbaxWarnings())
EXPORT_VARIABLES, EXPORT_META = "variables", "export.json"


def to_host(tree: PyTree) -> PyTree:
  """NumPy copy of a tree of replicated arrays (this process's replica)."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      shard = x.addressable_shards[0]
      if shard.data.shape != x.shape:
        raise ValueError(f"checkpointing expects replicated arrays; got a sharded array of "
                         f"shape {x.shape} with local shard {shard.data.shape}.")
      return np.asarray(shard.data)
    return np.asarray(x)
  return jax.tree.map(get, tree)


class CorruptCheckpointError(RuntimeError):
  """A checkpoint's contents do not match what was written.

  >>> issubclass(CorruptCheckpointError, RuntimeError)  # see CheckpointStore.restore
  True
  """


@dataclasses.dataclass
class Restored:
  """A verified checkpoint."""
  step: int
  state: PyTree
  progress: dict[str, Any]
  config: dict[str, Any] | None
  skipped: list[tuple[int, str]]  # (step, reason) of newer corrupt checkpoints


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


class CheckpointStore:
  """Periodic, retained, verified checkpoints of a training run.

  Args:
    directory: ``DIR/checkpoints`` (created if missing).
    max_to_keep: newest checkpoints kept (>= 1).
    keep_best: additionally keep this many best checkpoints by ``best_metric``
      (0 disables); only saves given ``metrics`` compete.
    best_metric: key into the ``metrics`` dict passed to ``save``.
    best_mode: ``"max"`` or ``"min"``.
    async_save: write in a background thread (default).

  >>> import os, tempfile
  >>> run = tempfile.mkdtemp()
  >>> state = {"params": {"w": np.arange(3.0, dtype=np.float32)}, "step": np.int32(5)}
  >>> store = CheckpointStore(os.path.join(run, "checkpoints"), best_metric="val/accuracy",
  ...                         async_save=False)
  >>> store.save(5, state, progress={"epoch": 1}, metrics={"val/accuracy": 0.5})
  True
  >>> store.all_steps(), store.best_step()
  ([5], 5)
  >>> restored = store.restore(jax.eval_shape(lambda: state))  # verified against its checksums
  >>> restored.step, restored.state["params"]["w"].tolist()
  (5, [0.0, 1.0, 2.0])
  >>> store.close()
  """

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3, keep_best: int = 1,
               best_metric: str = "", best_mode: str = "max", async_save: bool = True):
    if max_to_keep < 1:
      raise ValueError(f"`max_to_keep` must be >= 1, got {max_to_keep}.")
    if keep_best < 0:
      raise ValueError(f"`keep_best` must be >= 0, got {keep_best}.")
    if best_mode not in ("max", "min"):
      raise ValueError(f"`best_mode` must be 'max' or 'min', got {best_mode!r}.")
    self.directory = os.path.abspath(os.fspath(directory))
    self.quarantine_dir = os.path.join(os.path.dirname(self.directory), "corrupt_checkpoints")
    self.max_to_keep, self.keep_best = max_to_keep, keep_best
    self.best_metric, self.best_mode = best_metric, best_mode
    self.async_save = async_save
    self._manager = self._make_manager()

  def _make_manager(self) -> ocp.CheckpointManager:
    policies = [pp.LatestN(self.max_to_keep)]
    best_fn = None
    if self.keep_best and self.best_metric:
      metric = self.best_metric
      best_fn = lambda m: float(m[metric])
      policies.append(pp.BestN(get_metric_fn=best_fn, reverse=self.best_mode == "min",
                               n=self.keep_best, keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=pp.AnyPreservationPolicy(policies),
        best_fn=best_fn, best_mode=self.best_mode,
        cleanup_tmp_directories=True, enable_async_checkpointing=self.async_save,
        create=True)
    return ocp.CheckpointManager(self.directory, options=options)

  # -- queries ---------------------------------------------------------------

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """Best step by ``best_metric`` (latest if none was saved with metrics)."""
    return self._manager.best_step()

  # -- save ------------------------------------------------------------------

  def save(self, step: int, state: PyTree, *, progress: Mapping[str, Any],
           config: Mapping[str, Any] | None = None,
           metrics: Mapping[str, float] | None = None) -> bool:
    """Saves ``state`` at ``step`` (async); returns whether a save started.

    ``progress`` (JSON-serialisable) is stored with the per-array checksums
    added; ``metrics`` (if any) compete for ``keep_best``.
    """
    if step in self._manager.all_steps():
      return False
    # Host NumPy copies: a checkpoint of NumPy arrays carries no device/mesh
    # metadata, so it restores anywhere (any device count, no target needed);
    # orbax writes NumPy leaves from the primary process only.
    state = to_host(state)
    # Snapshot the JSON items now: orbax serialises them on a background thread,
    # and the caller may keep mutating what it passed in.
    record: dict[str, Any] = _json_copy(dict(progress), "progress")
    record["checksums"] = state_checksums(state)
    items = {STATE: ocp.args.StandardSave(state), PROGRESS: ocp.args.JsonSave(record)}
    if config is not None:
      items[CONFIG] = ocp.args.JsonSave(_json_copy(dict(config), "config"))
    if metrics is not None and self.best_metric and self.best_metric not in metrics:
      metrics = None
    if metrics is not None:
      metrics = _json_copy(dict(metrics), "metrics")
    return self._manager.save(step, args=ocp.args.Composite(**items), metrics=metrics,
                              force=True)

  def wait(self) -> None:
    """Blocks until pending async saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  # -- restore ---------------------------------------------------------------

  def restore(self, abstract_state: PyTree, step: int | None = None) -> Restored | None:
    """The newest verifiable checkpoint (or ``step``), or ``None`` if none.

    ``abstract_state``: ``jax.ShapeDtypeStruct`` tree (with shardings) of the
    state. Corrupt checkpoints are reported (log ERROR), moved to
    ``corrupt_checkpoints/`` and skipped; with an explicit ``step`` a corrupt
    checkpoint raises ``CorruptCheckpointError`` instead.
    """
    self._manager.reload()
    steps = sorted(self._manager.all_steps(), reverse=True)
    if step is not None:
      if step not in steps:
        raise ValueError(f"no checkpoint for step {step} in {self.directory}; have {steps}.")
      return self._restore_verified(abstract_state, step, [])
    skipped: list[tuple[int, str]] = []
    for s in steps:
      try:
        return self._restore_verified(abstract_state, s, skipped)
      except CorruptCheckpointError as e:
        reason = str(e)
        skipped.append((s, reason))
        where = self._quarantine(s)
        log.error("Checkpoint %s is corrupt (%s). Moved it to %s; trying the previous one.",
                  os.path.join(self.directory, str(s)), reason, where)
    return None

  def _restore_verified(self, abstract_state: PyTree, step: int,
                        skipped: list[tuple[int, str]]) -> Restored:
    args = {STATE: ocp.args.StandardRestore(abstract_state), PROGRESS: ocp.args.JsonRestore()}
    has_config = os.path.isdir(os.path.join(self.directory, str(step), CONFIG))
    if has_config:
      args[CONFIG] = ocp.args.JsonRestore()
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as e:  # orbax/tensorstore raise assorted types  # pylint: disable=broad-except
      raise CorruptCheckpointError(f"read failed: {type(e).__name__}: {str(e)[:300]}") from e
    progress = out[PROGRESS]
    if not isinstance(progress, dict) or "checksums" not in progress:
      raise CorruptCheckpointError("progress item missing or without checksums")
    got = state_checksums(out[STATE])
    want = progress["checksums"]
    bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    if bad:
      raise CorruptCheckpointError(
          f"checksum mismatch in {len(bad)} array(s), e.g. {bad[:3]}")
    return Restored(step=step, state=out[STATE], progress=progress,
                    config=out[CONFIG] if has_config else None, skipped=list(skipped))

  def _quarantine(self, step: int) -> str:
    src = os.path.join(self.directory, str(step))
    dst = os.path.join(self.quarantine_dir, str(step))
    if jax.process_index() == 0:
      os.makedirs(self.quarantine_dir, exist_ok=True)
      n = 1
      while os.path.exists(dst):
        dst = os.path.join(self.quarantine_dir, f"{step}-{n}")
        n += 1
      shutil.move(src, dst)
    _barrier(f"quarantine_{step}")
    self._manager.reload()
    return dst


# -- exported artefacts --------------------------------------------------------


def export_variables(directory: str | os.PathLike, variables: Mapping[str, PyTree], *,
                     metadata: Mapping[str, Any]) -> str:
  """Writes ``{params, batch_stats}`` and ``export.json`` to ``directory``.

  ``metadata`` should name the model (``arch``, ``num_classes``, model options,
  class prior, ...) so that ``train.build.load_for_evaluation`` can rebuild it. Overwrites.

  >>> import tempfile
  >>> variables = {"params": {"fc": {"kernel": np.ones((4, 3), np.float32)}}}
  >>> path = export_variables(tempfile.mkdtemp(), variables, metadata={"arch": "resnet_tiny"})
  >>> sorted(os.listdir(path))
  ['export.json', 'variables']
  """
  directory = os.path.abspath(os.fspath(directory))
  os.makedirs(directory, exist_ok=True)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(directory, EXPORT_VARIABLES), to_host(dict(variables)), force=True)
    ckptr.wait_until_finished()
  if jax.process_index() == 0:
    meta = dict(metadata)
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    tmp = os.path.join(directory, EXPORT_META + ".tmp")
    with open(tmp, "w") as f:
      json.dump(meta, f, indent=2, sort_keys=True, default=io.json_default)
    os.replace(tmp, os.path.join(directory, EXPORT_META))
  _barrier("export_variables")
  return directory


def load_variables(directory: str | os.PathLike) -> tuple[dict[str, PyTree], dict[str, Any]]:
  """``(variables, metadata)`` from an export (no optimizer state, no project code).

  ``variables`` is ``{'params': ..., 'batch_stats': ...}`` of host arrays,
  ready for ``model.apply(variables, images, train=False)``.

  >>> import tempfile
  >>> variables = {"params": {"fc": {"kernel": np.ones((4, 3), np.float32)}}}
  >>> path = export_variables(tempfile.mkdtemp(), variables, metadata={"arch": "resnet_tiny"})
  >>> loaded, metadata = load_variables(path)
  >>> loaded["params"]["fc"]["kernel"].shape, metadata["arch"]
  ((4, 3), 'resnet_tiny')
  """
  directory = os.path.abspath(os.fspath(directory))
  path = os.path.join(directory, EXPORT_VARIABLES)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"no exported variables at {path}")
  with ocp.StandardCheckpointer() as ckptr:
    variables = ckptr.restore(path)
  variables = jax.tree.map(np.asarray, variables)
  with open(os.path.join(directory, EXPORT_META)) as f:
    meta = json.load(f)
  return dict(variables), meta


def load_best_variables(checkpoint_dir: str | os.PathLike, *, best_metric: str,
                        best_mode: str = "max") -> tuple[dict[str, PyTree], int] | None:
  """``(variables, step)`` of the best checkpoint in ``DIR/checkpoints`` by ``best_metric``.

  The model variables only (``params`` and, when present, ``batch_stats``, as host
  arrays), without the optimizer state. The best step is the one orbax's manager
  reports (the latest step when no checkpoint was saved with metrics); ``None``
  when the directory is missing or holds no checkpoint (nothing is created).

  >>> import os, tempfile
  >>> run = tempfile.mkdtemp()
  >>> state = {"params": {"w": np.arange(3.0, dtype=np.float32)}, "step": np.int32(5)}
  >>> store = CheckpointStore(os.path.join(run, "checkpoints"), best_metric="val/accuracy",
  ...                         async_save=False)
  >>> store.save(5, state, progress={"epoch": 1}, metrics={"val/accuracy": 0.5})
  True
  >>> store.close()
  >>> variables, step = load_best_variables(os.path.join(run, "checkpoints"),
  ...                                       best_metric="val/accuracy")
  >>> step, sorted(variables)
  (5, ['params'])
  """
  if not os.path.isdir(checkpoint_dir):
    return None
  store = CheckpointStore(checkpoint_dir, max_to_keep=1, keep_best=1, best_metric=best_metric,
                          best_mode=best_mode, async_save=False)
  try:
    step = store.best_step()
  finally:
    store.close()
  if step is None:
    return None
  with ocp.StandardCheckpointer() as ckptr:
    state = ckptr.restore(os.path.join(os.fspath(checkpoint_dir), str(step), "state"))
  variables = {"params": state["params"]}
  if state.get("batch_stats"):
    variables["batch_stats"] = state["batch_stats"]
  return jax.tree.map(np.asarray, variables), int(step)


def _json_copy(obj: Any, name: str) -> Any:
  """A deep, JSON-only copy (NumPy scalars/arrays converted); TypeError names ``name``."""
  try:
    return json.loads(json.dumps(obj, default=io.json_default))
  except TypeError as e:
    raise TypeError(f"checkpoint item {name!r} is not JSON-serialisable: {e}") from None
