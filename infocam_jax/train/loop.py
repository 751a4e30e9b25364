"""The training loop: resume, train, evaluate, checkpoint, export.

``fit`` drives any model that follows the project's model contract over any
pipeline that follows the data contract (``get_batch(step)`` deterministic in
``(seed, step)``, ``iterate(start_step)``, ``steps_per_epoch``). Because a batch
is a function of the step and the step's randomness is ``fold_in(rng, step)``,
the checkpointed ``TrainState`` *is* the complete position of the run:
restarting the same command after a crash continues from the newest valid
checkpoint and reproduces the uninterrupted run bit for bit (CPU; tested).

Per step the host only dispatches work: metrics of step ``s`` are fetched while
step ``s+1`` runs (at most two steps in flight), so the progress bar's rate is
the real rate and the device never waits for Python.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import jax
import numpy as np

from infocam_jax import estimators, io
from infocam_jax.train import checkpoint as ckpt_lib
from infocam_jax.train.checkpoint import to_host as checkpoint_host
from infocam_jax.train import config as config_lib
from infocam_jax.train import optim, parallel, rundir, steps
from infocam_jax.train.state import TrainState, count_params, init_rng_context, init_train_state
from infocam_jax.train.writers import MetricWriter

log = logging.getLogger(__name__)
PyTree = Any


class BatchPipeline(Protocol):
  """What ``fit`` needs from a data pipeline (see the data contract)."""
  steps_per_epoch: int

  def get_batch(self, step: int) -> Mapping[str, np.ndarray]: ...

  def iterate(self, start_step: int = 0) -> Iterable[Mapping[str, np.ndarray]]: ...


@dataclasses.dataclass
class FitResult:
  """What ``fit`` returns.

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> import tempfile
  >>> from infocam_jax.data.arrays import ArrayPipeline, synthetic_source
  >>> from infocam_jax.train import default_train_config
  >>> source = synthetic_source(8, num_classes=3, image_size=8)
  >>> config = default_train_config()
  >>> config.batch_size, config.num_train_steps, config.eval_batch_size = 4, 1, 4  # one step
  >>> config.progress_bar = config.tensorboard = config.async_checkpointing = False
  >>> result = fit(config, tempfile.mkdtemp(), model=Net(), num_classes=3, image_shape=(8, 8, 3),
  ...              train_data=ArrayPipeline(source, batch_size=4, train=True),
  ...              eval_data=ArrayPipeline(source, batch_size=4, train=False),
  ...              class_counts=source.class_counts, echo=lambda line: None)
  >>> type(result).__name__, result.step, result.num_train_steps, result.interrupted
  ('FitResult', 1, 1, False)
  """
  state: TrainState  # canonical (unreplicated for pmap) final state
  step: int
  num_train_steps: int
  steps_per_epoch: int
  resumed_from: int | None
  skipped_checkpoints: list[tuple[int, str]]
  last_eval: dict[str, float] | None
  export_dir: str | None
  interrupted: bool
  parallel: Any
  wall_time_s: float


def num_train_steps(config: Any, steps_per_epoch: int) -> int:
  """``config.num_train_steps`` if positive, else ``ceil(num_epochs * steps_per_epoch)``.

  >>> from infocam_jax.train import default_train_config
  >>> config = default_train_config()
  >>> config.num_epochs, config.num_train_steps  # -1: derived from the epochs
  (10.0, -1)
  >>> num_train_steps(config, steps_per_epoch=50)
  500
  """
  if config.num_train_steps > 0:
    return int(config.num_train_steps)
  return max(1, int(np.ceil(float(config.num_epochs) * steps_per_epoch)))


STEP_KEYS = ("image", "label", "mask")


def step_inputs(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The batch fields the train/eval steps read (boxes etc. stay on the host)."""
  return {k: batch[k] for k in STEP_KEYS if k in batch}


def evaluate_classification(par: Any, state: Any, pipeline: BatchPipeline,
                            eval_step: Callable | None = None) -> dict[str, float]:
  """One ordered pass over an eval pipeline; means over unmasked examples.

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> import optax
  >>> from infocam_jax.data.arrays import ArrayPipeline, synthetic_source
  >>> from infocam_jax.train import init_train_state, make_parallel
  >>> pipe = ArrayPipeline(synthetic_source(6, num_classes=3, image_size=8), batch_size=4,
  ...                      train=False)  # one ordered pass, the last batch padded
  >>> par = make_parallel("jit")
  >>> par.compile(None, steps.make_eval_step(Net(), num_classes=3))
  >>> state = par.put_state(init_train_state(Net(), optax.sgd(0.1), jax.random.PRNGKey(0), (8, 8, 3)))
  >>> metrics = evaluate_classification(par, state, pipe)
  >>> metrics["count"], sorted(metrics)
  (6.0, ['accuracy', 'count', 'loss', 'mean_per_class_accuracy', 'mi'])
  """
  step_fn = eval_step or par.eval_step
  total = None
  for i in range(pipeline.steps_per_epoch):
    batch = par.shard_batch(step_inputs(pipeline.get_batch(i)))
    total = steps.accumulate(total, step_fn(state, batch))
  assert total is not None, "an eval pipeline with no batches"
  return steps.finalize_eval(total)


class _Preemption:
  """When to checkpoint and stop early: a signal, or JAX's preemption sync point.

  One process: SIGTERM/SIGINT set a flag and the loop checkpoints at the next
  step boundary, then stops (a second signal aborts at once).

  Several processes: a signal reaches the hosts at different steps, and a
  checkpoint is a collective save that every host must enter at the same step.
  JAX's preemption service (started by ``jax.distributed.initialize``; it
  catches SIGTERM itself) propagates the notice and agrees on a step: every host
  calls ``reached_preemption_sync_point(step)`` at every step and gets True at
  the same one. SIGINT is not intercepted there (Ctrl-C kills the run; resume
  then starts from the last periodic checkpoint).
  """

  def __init__(self, external: Callable[[], bool] | None = None):
    self.requested = False
    self._external = external
    self._old: dict[int, Any] = {}
    self._multihost = jax.process_count() > 1
    self._sync_point = None
    if self._multihost:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      self._sync_point = multihost_utils.reached_preemption_sync_point
    elif threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if self.requested:  # second signal: give up immediately
      raise KeyboardInterrupt
    self.requested = True
    print(f"\nSignal {signum}: checkpointing at the next step boundary, then stopping "
          "(send again to abort).", file=sys.stderr, flush=True)

  def stop_at(self, step: int) -> bool:
    """Whether to checkpoint and stop after ``step``; call once per step on every host."""
    if self._external is not None and not self.requested and self._external():
      self.requested = True  # one process: a stop asked for by the caller (not a signal)
    if self._sync_point is not None and not self.requested:
      try:
        self.requested = bool(self._sync_point(int(step)))
      except RuntimeError as e:  # preemption service disabled (jax_enable_preemption_service)
        log.warning("Multi-host preemption handling is off: %s", e)
        self._sync_point = None
      if self.requested:
        print(f"\nPreemption notice: all {jax.process_count()} processes checkpoint at step "
              f"{step}, then stop.", file=sys.stderr, flush=True)
    return self.requested

  def restore(self):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def _versions() -> dict[str, str]:
  return {**io.versions(), "backend": jax.default_backend(),
          "device_kind": jax.devices()[0].device_kind}


def fit(config: Any, workdir: str | os.PathLike, *, model: Any, train_data: BatchPipeline,
        num_classes: int, image_shape: tuple[int, int, int], eval_data: BatchPipeline | None = None,
        class_counts: np.ndarray | None = None, class_prior: np.ndarray | None = None,
        head_mask_fn: Callable[[PyTree], PyTree] | None = None,
        export_metadata: Mapping[str, Any] | None = None,
        initial_variables: Mapping[str, PyTree] | None = None,
        echo: Callable[[str], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
        evaluation_fields: frozenset[str] = frozenset()) -> FitResult:
  """Trains (or resumes) a run in ``workdir`` and exports the final variables.

  Args:
    config: validated run config (``config.default_train_config`` fields).
    workdir: run directory (``checkpoints/``, ``metrics.jsonl``, ``export/``).
    model: Linen module; with ``parallelism='pmap'`` built with
      ``bn_axis_name='data'``.
    train_data: training pipeline; its batches are this process's rows of the
      global batch of ``config.batch_size`` examples.
    num_classes: K.
    image_shape: (H, W, C) of the network input.
    eval_data: validation pipeline (one ordered, padded pass), or None.
    class_counts: [K] training counts (recorded in the export).
    class_prior: [K] training class frequencies (PC-softmax prior; softmax: extra
      metric), as ``build.Data.prior``; default ``estimators.prior_from_counts(
      class_counts)``.
    head_mask_fn: params -> bool pytree of the 10x-LR parameters.
    export_metadata: stored in ``export/export.json`` (arch, options, ...).
    initial_variables: ``{'params', ['batch_stats']}`` replacing the random
      initialisation of a *new* run (pretrained weights); ignored on resume.
    echo: line printer for metrics (default: tqdm-safe print).
    stop_requested: polled once per step (one process only); True acts like a
      SIGTERM: checkpoint after this step, stop, ``FitResult.interrupted``. For
      drivers that run ``fit`` in worker processes (``experiments.pc_softmax``).
    evaluation_fields: dotted config keys (``"wsol.*"`` for a whole section)
      that only the evaluation reads: a resumed run may differ in them.

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> import tempfile
  >>> from infocam_jax.data.arrays import ArrayPipeline, synthetic_source
  >>> from infocam_jax.train import default_train_config
  >>> source = synthetic_source(8, num_classes=3, image_size=8)
  >>> config = default_train_config()
  >>> config.batch_size, config.num_train_steps, config.eval_batch_size = 4, 1, 4  # one step
  >>> config.progress_bar = config.tensorboard = config.async_checkpointing = False
  >>> result = fit(config, tempfile.mkdtemp(), model=Net(), num_classes=3, image_shape=(8, 8, 3),
  ...              train_data=ArrayPipeline(source, batch_size=4, train=True),
  ...              eval_data=ArrayPipeline(source, batch_size=4, train=False),
  ...              class_counts=source.class_counts, echo=lambda line: None)
  >>> result.step, result.steps_per_epoch, os.path.basename(result.export_dir)
  (1, 2, 'export')
  >>> sorted(result.last_eval)[:3]  # the validation metrics of the last evaluation
  ['val/accuracy', 'val/count', 'val/loss']
  """
  t_start = time.time()
  workdir = os.path.abspath(os.fspath(workdir))
  primary = jax.process_index() == 0
  cfg_dict = config_lib.to_dict(config)
  if stop_requested is not None and jax.process_count() > 1:
    raise ValueError("stop_requested is for one process; multi-host runs stop at JAX's "
                     "preemption sync point.")
  par, axis = _parallel_for(config, model)
  spe = int(train_data.steps_per_epoch)
  if spe < 1:
    raise ValueError("train_data.steps_per_epoch must be >= 1.")
  total = num_train_steps(config, spe)
  prior = class_prior
  if prior is None and class_counts is not None:
    prior = np.asarray(estimators.prior_from_counts(class_counts))

  rng = jax.random.PRNGKey(config.seed)
  abstract_vars = jax.eval_shape(
      lambda: model.init(rng, np.zeros((1, *image_shape), np.float32), train=False))
  head_mask = head_mask_fn(abstract_vars["params"]) if head_mask_fn else None
  tx, lr_fn = optim.optimizer_from_config(config.optimizer, total_steps=total,
                                          steps_per_epoch=spe, head_mask=head_mask)
  shape3 = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
  init_fn = lambda: init_train_state(model, tx, rng, shape3)
  store, restored, state, start = _restore_or_init(config, workdir, par, init_fn, cfg_dict,
                                                   evaluation_fields, initial_variables)
  echo = echo or io.echo
  writer = MetricWriter(workdir, enabled=primary, resume_step=start,
                        tensorboard=config.tensorboard, echo=echo)
  if primary:
    io.write_json(os.path.join(workdir, "config.json"), cfg_dict, sort_keys=True)
    msg = (f"Resuming {workdir} from step {start}" if restored else f"Starting {workdir}")
    if restored and restored.skipped:
      msg += " (skipped corrupt checkpoints: " + ", ".join(
          f"{s}: {r}" for s, r in restored.skipped) + ")"
    echo(f"{msg}: {total} steps ({spe}/epoch), global batch {config.batch_size} on "
         f"{par.num_devices} device(s) x {jax.process_count()} process(es), "
         f"parallelism={par.kind}, {count_params(abstract_vars['params']):,} parameters.")
  par.compile(
      steps.make_train_step(model, tx, num_classes=num_classes, loss=config.loss,
                            class_prior=prior, learning_rate_fn=lr_fn, axis_name=axis),
      steps.make_eval_step(model, num_classes=num_classes, loss=config.loss,
                           class_prior=prior, axis_name=axis))
  preempt = _Preemption(stop_requested)
  try:
    if start < total:
      state, step, last_eval, interrupted = _train_steps(
          config, par, state, store, writer, preempt, train_data, eval_data,
          start=start, total=total, spe=spe, cfg_dict=cfg_dict, restored=restored,
          echo=echo, primary=primary)
    else:
      step, last_eval, interrupted = start, None, False
      if primary:
        echo(f"{workdir} already finished ({start}/{total} steps); nothing to train.")
  finally:
    preempt.restore()
    store.close()
    writer.close()

  export_dir = None
  if step >= total and not interrupted:
    export_dir = _export(workdir, par.host_state(state), step=step, num_classes=num_classes,
                         image_shape=image_shape, cfg_dict=cfg_dict, class_counts=class_counts,
                         last_eval=last_eval, export_metadata=export_metadata)
  return FitResult(state=par.host_state(state), step=int(step), num_train_steps=total,
                   steps_per_epoch=spe, resumed_from=start if restored else None,
                   skipped_checkpoints=restored.skipped if restored else [],
                   last_eval=last_eval, export_dir=export_dir, interrupted=interrupted,
                   parallel=par, wall_time_s=time.time() - t_start)


def _parallel_for(config: Any, model: Any) -> tuple[Any, str | None]:
  """The data-parallel strategy of ``config`` (checked against the devices and the model)."""
  par = parallel.make_parallel(config.parallelism)
  config_lib.validate_runtime(config, num_devices=par.num_devices,
                              process_count=jax.process_count())
  axis = parallel.step_axis_name(config.parallelism)
  if axis and getattr(model, "bn_axis_name", axis) != axis:
    raise ValueError(f"parallelism='pmap' needs the model built with bn_axis_name={axis!r} "
                     f"(got {getattr(model, 'bn_axis_name', None)!r}).")
  return par, axis


def _restore_or_init(config: Any, workdir: str, par: Any, init_fn: Callable[[], TrainState],
                     cfg_dict: Mapping[str, Any], evaluation_fields: frozenset[str],
                     initial_variables: Mapping[str, PyTree] | None):
  """``(store, restored, state, start_step)``: the newest valid checkpoint of a run with the
  same training config (``rundir.check_config``), else a new state (pretrained weights)."""
  store = ckpt_lib.CheckpointStore(
      os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints,
      keep_best=config.keep_best_checkpoints, best_metric=config.best_metric,
      best_mode=config.best_mode, async_save=config.async_checkpointing)
  restored = store.restore(par.abstract_state(jax.eval_shape(init_fn)))
  if restored is not None:
    try:
      rundir.check_config(restored.config, cfg_dict, workdir, action="resume",
                          evaluation_fields=evaluation_fields)
    except rundir.ConfigMismatchError:
      store.close()
      raise
    state = par.put_state(restored.state)
    start = int(restored.step)
    if int(jax.device_get(par.host_state(state).step)) != start:
      raise RuntimeError(f"checkpoint {start} holds state.step != {start}")
    return store, restored, state, start
  with init_rng_context():
    state = par.init(init_fn)
  if initial_variables is not None:
    host = checkpoint_host(par.host_state(state))
    state = par.put_state(with_initial_variables(host, initial_variables))
  return store, None, state, 0


def _train_steps(config: Any, par: Any, state: Any, store: Any, writer: MetricWriter,
                 preempt: _Preemption, train_data: BatchPipeline,
                 eval_data: BatchPipeline | None, *, start: int, total: int, spe: int,
                 cfg_dict: Mapping[str, Any], restored: Any, echo: Callable[[str], None],
                 primary: bool):
  """Steps ``start+1 .. total``: log, evaluate, checkpoint; ``(state, step, last_eval,
  interrupted)`` (interrupted: stopped early by a request, after a checkpoint)."""
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  def progress(step: int, eval_metrics, pending) -> dict[str, Any]:
    return {"step": int(step), "epoch": step / spe, "num_train_steps": int(total),
            "data": {"seed": int(config.seed), "next_step": int(step),
                     "steps_per_epoch": spe, "epoch": int(step // spe),
                     "position_in_epoch": int(step % spe)},
            # Per-step train metrics since the last log line: a resumed run writes
            # the same averaged metrics.jsonl records as an uninterrupted one.
            "pending_train_metrics": pending,
            "eval": eval_metrics, "time": time.time(), "versions": _versions()}

  def save(step: int, eval_metrics, pending) -> list[dict[str, float]]:
    pending = _host_metrics(pending)
    metrics = None
    if eval_metrics is not None:
      metrics = {k: float(v) for k, v in eval_metrics.items()}
    store.save(step, par.host_state(state), progress=progress(step, eval_metrics, pending),
               config=cfg_dict, metrics=metrics)
    return pending

  last_eval, interrupted, step = None, False, start
  eval_every = int(config.eval_every_steps)
  bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
             disable=not (primary and config.progress_bar), smoothing=0.1, desc="train")
  batches = iter(train_data.iterate(start))
  pending: list[dict[str, Any]] = list(
      restored.progress.get("pending_train_metrics") or []) if restored else []
  previous = None
  for step in range(start + 1, total + 1):
    state, metrics = par.train_step(state, par.shard_batch(step_inputs(next(batches))))
    if previous is not None:
      jax.block_until_ready(previous)  # keep <= 2 steps in flight
    previous = metrics
    pending.append(metrics)
    bar.update(1)
    if step % config.log_every_steps == 0 or step == total:
      means = _mean_metrics(pending)
      pending = []
      bar.set_postfix(loss=f"{means['loss']:.4f}", acc=f"{means['accuracy']:.1f}%",
                      refresh=False)
      writer.write(step, {f"train/{k}": v for k, v in means.items()},
                   epoch=round(step / spe, 4))
    do_eval = eval_data is not None and (
        step == total or (eval_every > 0 and step % eval_every == 0))
    eval_metrics = None
    if do_eval:
      eval_metrics = {f"val/{k}": v for k, v in
                      evaluate_classification(par, state, eval_data).items()}  # type: ignore[arg-type]
      last_eval = eval_metrics
      writer.write(step, eval_metrics, epoch=round(step / spe, 4))
    stop = preempt.stop_at(step) and step < total
    if step % config.checkpoint_every_steps == 0 or step == total or do_eval or stop:
      pending = save(step, eval_metrics, pending)
    if stop:
      interrupted = True
      echo(f"Stopped at step {step} after a stop request; checkpoint saved. Re-run the same "
           "command to continue.")
      break
  bar.close()
  return state, step, last_eval, interrupted


def _export(workdir: str, host_state: TrainState, *, step: int, num_classes: int,
            image_shape: tuple[int, int, int], cfg_dict: Mapping[str, Any],
            class_counts: np.ndarray | None, last_eval: Mapping[str, float] | None,
            export_metadata: Mapping[str, Any] | None) -> str:
  """Writes ``DIR/export`` (variables + ``export.json``: the model spec and the config)."""
  export_dir = os.path.join(workdir, "export")
  meta = {"step": int(step), "num_classes": int(num_classes),
          "image_shape": list(image_shape), "config": cfg_dict,
          "class_counts": None if class_counts is None else
          [int(c) for c in np.asarray(class_counts)],
          "versions": _versions(), **dict(export_metadata or {})}
  if last_eval is not None:
    meta["val_metrics"] = last_eval
  ckpt_lib.export_variables(export_dir, host_state.variables, metadata=meta)
  return export_dir


def with_initial_variables(state: TrainState, variables: Mapping[str, PyTree]) -> TrainState:
  """``state`` with params (and batch_stats) taken from ``variables``.

  The structures and shapes must match exactly (ValueError otherwise). The
  optimizer state is kept: a fresh one holds only zeros (momentum, moments),
  which do not depend on the parameter values.
  """
  out = {}
  for name in ("params", "batch_stats"):
    current = getattr(state, name)
    if name not in variables:
      if name == "params":
        raise ValueError("`initial_variables` needs a 'params' entry.")
      out[name] = current
      continue
    new = variables[name]
    if jax.tree.structure(new) != jax.tree.structure(current):  # type: ignore[operator]
      raise ValueError(f"initial_variables[{name!r}] does not match the model's {name} tree.")
    for path, a, b in zip(jax.tree_util.tree_leaves_with_path(current),
                          jax.tree.leaves(current), jax.tree.leaves(new)):
      if np.shape(a) != np.shape(b):
        raise ValueError(f"initial_variables[{name!r}] {jax.tree_util.keystr(path[0])}: shape "
                         f"{np.shape(b)} != the model's {np.shape(a)}.")
    out[name] = jax.tree.map(lambda a, b: np.asarray(b, a.dtype), current, new)
  return state.replace(**out)


def _host_metrics(history: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
  return [{k: float(v) for k, v in h.items()} for h in jax.device_get(history)]


def _mean_metrics(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
  host = _host_metrics(history)
  return {k: float(np.mean([h[k] for h in host])) for k in host[0]}
