"""Training engine: state, optimiser recipes, steps, data parallelism, checkpoints, loop.

* ``TrainState`` / ``init_train_state`` (``state``): one pytree (params,
  batch_stats, opt_state, step, rng).
* ``make_optimizer`` / ``sgd_torch`` / ``step_decay_schedule`` (``optim``): the
  paper's SGD with PyTorch semantics, head 10x LR, Adam.
* ``make_train_step`` / ``make_eval_step`` (``steps``): pure steps with
  softmax / PC-softmax losses and MI metrics (nats).
* ``DataParallel`` (jit + mesh, default) / ``PmapDataParallel`` (``parallel``).
* ``CheckpointStore`` / ``export_variables`` / ``load_variables`` (``checkpoint``).
* ``fit`` (``loop``): resume, train, evaluate, checkpoint, export.
* ``validate_config`` / ``default_train_config`` (``config``).
* ``rundir``: when a config may resume, skip or evaluate a run directory
  (``ConfigMismatchError`` otherwise) and where an evaluation writes.
* ``build``: data, pipelines, model, weights and the checkpoint to evaluate,
  from a config (``build.open_data``, ``build.fit``, ``build.load_for_evaluation``).
* ``cli``: the command line of a config-driven experiment (``--config`` files and
  overrides, ``--help``, one-line errors, exit statuses); ``workers``: a pool of
  spawned worker processes that stops cleanly and leaves no orphans.

Names are resolved lazily (on first attribute access), so importing one
submodule (``from infocam_jax.train import steps``) pulls in neither orbax nor
ml_collections; nothing here imports tensorflow-datasets or grain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infocam_jax import _deps, _lazy

_deps.require("train", "infocam_jax.train")

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "CheckpointStore": "checkpoint",
    "CorruptCheckpointError": "checkpoint",
    "export_variables": "checkpoint",
    "load_variables": "checkpoint",
    "load_best_variables": "checkpoint",
    "ConfigMismatchError": "rundir",
    "TRAIN_SCHEMA": "config",
    "default_train_config": "config",
    "extend_schema": "config",
    "validate_config": "config",
    "validate_runtime": "config",
    "FitResult": "loop",
    "evaluate_classification": "loop",
    "fit": "loop",
    "num_train_steps": "loop",
    "adam_torch": "optim",
    "make_optimizer": "optim",
    "make_schedule": "optim",
    "optimizer_from_config": "optim",
    "sgd_torch": "optim",
    "step_decay_schedule": "optim",
    "warmup_cosine_decay": "optim",
    "DATA_AXIS": "parallel",
    "DataParallel": "parallel",
    "PmapDataParallel": "parallel",
    "initialize_distributed": "parallel",
    "initialize_distributed_from_config": "parallel",
    "make_data_mesh": "parallel",
    "make_parallel": "parallel",
    "TrainState": "state",
    "init_train_state": "state",
    "state_checksums": "state",
    "LOSSES": "steps",
    "finalize_eval": "steps",
    "make_eval_step": "steps",
    "make_train_step": "steps",
    "MetricWriter": "writers",
    "read_metrics": "writers",
}
_SUBMODULES = ("build", "checkpoint", "config", "loop", "optim", "parallel", "state", "steps",
               "writers")

__all__ = sorted(_EXPORTS)

if not TYPE_CHECKING:
  __getattr__, __dir__ = _lazy.lazy_exports(__name__, globals(), _EXPORTS, __all__,
                                            _SUBMODULES)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily
  from infocam_jax.train import (build, checkpoint, config, loop, optim, parallel, state, steps,
                                 writers)
  from infocam_jax.train.checkpoint import (CheckpointStore, CorruptCheckpointError,
                                            export_variables, load_best_variables, load_variables)
  from infocam_jax.train.rundir import ConfigMismatchError
  from infocam_jax.train.config import (TRAIN_SCHEMA, default_train_config,
                                        extend_schema, validate_config, validate_runtime)
  from infocam_jax.train.loop import (FitResult, evaluate_classification, fit, num_train_steps)
  from infocam_jax.train.optim import (adam_torch, make_optimizer, make_schedule,
                                       optimizer_from_config, sgd_torch, step_decay_schedule,
                                       warmup_cosine_decay)
  from infocam_jax.train.parallel import (DATA_AXIS, DataParallel, PmapDataParallel,
                                          initialize_distributed,
                                          initialize_distributed_from_config, make_data_mesh,
                                          make_parallel)
  from infocam_jax.train.state import (TrainState, init_train_state, state_checksums)
  from infocam_jax.train.steps import (LOSSES, finalize_eval, make_eval_step, make_train_step)
  from infocam_jax.train.writers import (MetricWriter, read_metrics)

