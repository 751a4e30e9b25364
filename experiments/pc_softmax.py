r"""Softmax vs PC-softmax on class-imbalanced data, over several seeds (paper §3.2-3.3).

Usage::

  python -m experiments.pc_softmax --workdir=runs/pc_softmax        # offline default (CPU)
  python -m experiments.pc_softmax --config=experiments/configs/pc_softmax.py:mnist \
      --workdir=runs/pc_mnist --config.data.data_dir=/path/to/tfds
  python -m experiments.pc_softmax --config=experiments/configs/pc_softmax.py:cub \
      --workdir=runs/pc_cub --config.data.data_dir=/path/to/tfds \
      --config.model.pretrained=/path/to/resnet50-0676ba61.pth
  ... --config.experiment.num_seeds=5 --config.optimizer.learning_rate=0.02   # any field

For every seed ``config.seed + i`` (``i < experiment.num_seeds``) and every
objective of ``experiment.objectives`` the same network is trained with the
same data order and initialisation, differing only in the loss:

* ``softmax``: cross-entropy ``-log softmax_y(z)``;
* ``pc_softmax``: ``-log s~_y(z)``, ``s~_y = e^{z_y} / sum_k p_k e^{z_k}`` with
  ``p`` the training class frequencies (paper-spec §1.2).

Both predict with ``argmax z`` (no prior at test time, §1.2): PC-softmax
changes training only. Runs live in ``DIR/<objective>/seed_<n>/`` (the
training engine's checkpoints, ``metrics.jsonl``, ``export/`` and the run's
``result.json``). Re-running the same command resumes an interrupted run from
its newest checkpoint and skips finished ones (a run is finished when its
``result.json`` matches the current config). SIGTERM or Ctrl-C makes the runs in
progress (also those in worker processes) checkpoint at their next step and
stop, leaves runs not yet started for the re-run, and exits with status 75
(a second signal aborts at once); changing only evaluation fields
(``experiment.*``) re-evaluates without retraining. A run directory holding a
different training config is refused before anything is compiled.

Model selection uses the validation split only, never the test split:
``experiment.select='best_val'`` evaluates the checkpoint with the best
``config.best_metric`` (e.g. ``val/mean_per_class_accuracy``, measured every
``eval_every_steps``); ``'last'`` the final parameters (the paper's fixed
schedules; the imbalanced CUB protocol has no validation split).

Outputs in ``DIR``: ``results.json`` (schema below), a markdown table on
stdout (also ``results.md``), and ``per_class_accuracy[_<split>].png``
(per-class test accuracy of both objectives, mean +- std over seeds, classes
labelled with their training counts).

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
  Stat = {"mean": float, "std": float | null, "per_seed": [float, ...]}
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

import dataclasses
import datetime
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax import _io as io
from infocam_jax.train import config as config_lib

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "pc_softmax.py")

OBJECTIVES = ("softmax", "pc_softmax")
SELECTIONS = ("best_val", "last")
RESULT_FILE = "result.json"
RESULTS_FILE = "results.json"
# Exit status after a stop request: runs checkpointed, re-run to continue (sysexits.h EX_TEMPFAIL).
EXIT_INTERRUPTED = 75


class RunInterrupted(Exception):
  """Training stopped early on request (signal); the checkpoints are in place: re-run to continue."""


_F = config_lib.Field


def _float_tuple(v: Any) -> str | None:
  if not v or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
    return f"must be a non-empty sequence of numbers, got {v!r}"
  if not all(math.isfinite(float(x)) for x in v):
    return f"must be finite, got {v!r}"
  return None


def _positive_tuple(v: Any) -> str | None:
  problem = _float_tuple(v)
  if problem is None and any(float(x) <= 0 for x in v):
    return f"must be > 0, got {v!r}"
  return problem


#: The experiment's config schema: the engine's plus the fields below.
SCHEMA = config_lib.extend_schema(config_lib.TRAIN_SCHEMA, {
    "experiment": {
        "num_seeds": _F(config_lib.INT, "runs per objective, seeds config.seed + i.",
                        config_lib.at_least(1)),
        "objectives": _F(config_lib.STR, "comma-separated subset of 'softmax,pc_softmax'."),
        "select": _F(config_lib.STR, "'best_val': checkpoint with the best config.best_metric "
                     "on the validation split; 'last': final parameters.", choices=SELECTIONS),
        "extra_test_splits": _F(config_lib.STR, "comma-separated further test splits (e.g. the "
                                "official balanced MNIST 'test')."),
        "num_workers": _F(config_lib.INT, "grain worker processes of the training pipeline "
                          "(0: threads; use ~cores-1 on an accelerator).",
                          config_lib.at_least(0)),
        "parallel_runs": _F(config_lib.INT, "runs trained at once in worker processes (CPU "
                            "backend only; 1 = in this process).",
                            config_lib.at_least(1)),
        "cache_images": _F(config_lib.BOOL, "decode (and resize) every image once and keep "
                           "them in memory; the batches are bit-identical (small datasets)."),
        "figures": _F(config_lib.BOOL, "write the PNG figures."),
    },
    "model": {
        "last_layer_only": _F(config_lib.BOOL, "train only the classifier head: the backbone is "
                              "frozen (no gradient, BatchNorm in inference mode)."),
    },
    "data": {
        "channels": _F(config_lib.INT, "network input channels.", choices=(1, 3)),
        "mean": _F((tuple, list), "per-channel mean (0-1 scale).", _float_tuple),
        "std": _F((tuple, list), "per-channel std (0-1 scale).", _positive_tuple),
        "flip": _F(config_lib.BOOL, "random horizontal flips in training (off for digits)."),
        "random_crop": _F(config_lib.BOOL, "random crops (resize_size -> image_size) in training."),
    },
})


# -- configuration -------------------------------------------------------------


def objectives_of(config: Any) -> tuple[str, ...]:
  return tuple(s.strip() for s in config.experiment.objectives.split(",") if s.strip())


def seeds_of(config: Any) -> tuple[int, ...]:
  return tuple(int(config.seed) + i for i in range(int(config.experiment.num_seeds)))


def test_splits_of(config: Any) -> tuple[str, ...]:
  extra = [s.strip() for s in config.experiment.extra_test_splits.split(",") if s.strip()]
  return tuple(dict.fromkeys([config.data.test_split, *extra]))


def validate(config: Any) -> None:
  """``ValueError`` listing every problem (schema, then the experiment's own rules)."""
  config_lib.validate_config(config, SCHEMA)
  errors = []
  objs = objectives_of(config)
  bad = [o for o in objs if o not in OBJECTIVES]
  if not objs or bad or len(set(objs)) != len(objs):
    errors.append(f"config.experiment.objectives: a comma-separated, duplicate-free subset of "
                  f"{list(OBJECTIVES)}, got {config.experiment.objectives!r}")
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  if config.data.name.split("/")[0] not in data.BASE_SPLITS:
    errors.append(f"config.data.name: unknown dataset {config.data.name!r}; known: "
                  f"{list(data.BASE_SPLITS)} (optionally with a config, e.g. "
                  "'imbalanced_digits/small')")
  if not config.data.test_split:
    errors.append("config.data.test_split: required (the split the results are reported on)")
  if config.data.eval_split and config.data.eval_split in test_splits_of(config):
    errors.append(f"config.data.eval_split ({config.data.eval_split!r}) is also a test split: "
                  "model selection must not see the test data")
  if config.experiment.select == "best_val":
    if not config.data.eval_split:
      errors.append("config.experiment.select='best_val' needs config.data.eval_split (or use "
                    "'last')")
    if config.keep_best_checkpoints < 1 or not config.best_metric.startswith("val/"):
      errors.append("config.experiment.select='best_val' needs keep_best_checkpoints >= 1 and a "
                    f"validation best_metric ('val/...'), got {config.keep_best_checkpoints} and "
                    f"{config.best_metric!r}")
  for key in ("mean", "std"):
    if len(config.data[key]) not in (1, config.data.channels):
      errors.append(f"config.data.{key}: needs 1 or data.channels ({config.data.channels}) "
                    f"values, got {tuple(config.data[key])}")
  if config.model.last_layer_only and config.optimizer.weight_decay:
    errors.append("config.optimizer.weight_decay must be 0 with model.last_layer_only: the "
                  "engine applies torch-style decay to every parameter, which would shrink the "
                  "frozen backbone (its gradient is zero, its decay term is not)")
  if errors:
    raise ValueError("Invalid config:\n  " + "\n  ".join(errors))


def _plain(obj: Any) -> Any:
  """Nested dicts with lists for tuples (what a JSON round trip gives back)."""
  if isinstance(obj, Mapping):
    return {k: _plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_plain(v) for v in obj]
  return obj


def run_config(config: Any, objective: str, seed: int):
  """The engine config of one run: everything but ``experiment``, with ``loss``/``seed`` set."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  d = _plain(config_lib.to_dict(config))
  d.pop("experiment", None)
  d["loss"] = objective
  d["seed"] = int(seed)
  return ml_collections.ConfigDict(d)


# Fields that change neither the training nor the numbers of a finished run.
_COSMETIC = frozenset({"progress_bar", "tensorboard", "log_every_steps", "async_checkpointing",
                       "eval_batch_size", "parallelism", "data.data_dir", "checkpoint_every_steps",
                       "keep_checkpoints", "distributed.*"})


def _same_run(saved: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
  return not config_lib.config_differences(_plain(saved), _plain(current), mutable=_COSMETIC)


def eval_settings(config: Any) -> dict[str, Any]:
  """What a run's evaluation depends on besides its training config."""
  return {"test_splits": list(test_splits_of(config)), "select": config.experiment.select,
          "best_metric": config.best_metric, "best_mode": config.best_mode}


# -- data ------------------------------------------------------------------------


@dataclasses.dataclass
class Data:
  """The sources of a dataset and the facts derived from them."""
  name: str
  train: Any
  val: Any | None
  tests: dict[str, Any]
  num_classes: int
  class_names: tuple[str, ...]
  class_counts: np.ndarray


def load_data(config: Any) -> Data:
  """Opens every split the experiment needs (raises ``DatasetUnavailableError`` first)."""
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  d = config.data
  data_dir = d.data_dir or None
  train = data.load_source(d.name, d.train_split, data_dir=data_dir)
  val = data.load_source(d.name, d.eval_split, data_dir=data_dir) if d.eval_split else None
  tests = {s: data.load_source(d.name, s, data_dir=data_dir) for s in test_splits_of(config)}
  if config.experiment.cache_images:
    size = d.resize_size or d.image_size
    cache = lambda src: CachedSource(src, size=size, channels=d.channels)
    train, val = cache(train), (cache(val) if val is not None else None)
    tests = {k: cache(v) for k, v in tests.items()}
  counts = np.asarray(train.class_counts, np.int64)
  if np.any(counts == 0):
    raise ValueError(f"{d.name}/{d.train_split}: classes {np.flatnonzero(counts == 0).tolist()} "
                     "have no training examples (the PC-softmax prior needs every class).")
  return Data(name=d.name, train=train, val=val, tests=tests, num_classes=int(train.num_classes),
              class_names=tuple(train.class_names), class_counts=counts)


class CachedSource(Sequence):
  """A source's examples decoded once and kept in memory, resized as the pipeline would.

  ``cached[i]`` is ``source[i]`` with its image converted to ``channels`` and
  resized to ``size`` x ``size`` by the pipeline's own transforms, so a pipeline
  with ``resize_size=size`` and the same ``channels`` finds nothing left to do
  and produces bit-identical batches; only the PNG/JPEG decoding and resizing
  per epoch are saved. ``labels``/``class_counts``/``num_classes`` pass through.
  """

  def __init__(self, source: Any, *, size: int, channels: int):
    from infocam_jax.data import transforms  # pylint: disable=g-import-not-at-top
    self.source = source
    self.num_classes = source.num_classes
    self.class_names = tuple(source.class_names)
    self.labels = np.asarray(source.labels, np.int64)
    self.class_counts = np.asarray(source.class_counts, np.int64)
    self.name, self.split = source.name, source.split
    self._examples = []
    for i in range(len(source)):
      ex = dict(source[i])
      ex["image"] = transforms.resize(transforms.to_channels(ex["image"], channels), size, size)
      self._examples.append(ex)

  def __len__(self) -> int:
    return len(self._examples)

  def __getitem__(self, i):
    return self._examples[i]

  def __repr__(self) -> str:
    return f"CachedSource({self.source!r})"


def make_pipeline(config: Any, source: Any, *, train: bool, seed: int, shard: bool = True,
                  num_workers: int = 0) -> Any:
  """The data module's pipeline with this config's image options."""
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  d = config.data
  sharding = (dict(shard_index=jax.process_index(), num_shards=jax.process_count()) if shard
              else {})
  return data.make_pipeline(
      source, batch_size=config.batch_size if train else config.eval_batch_size, train=train,
      image_size=d.image_size, resize_size=d.resize_size or d.image_size, seed=seed,
      max_boxes=1, random_crop=d.random_crop, flip=d.flip, channels=d.channels,
      mean=tuple(d.mean), std=tuple(d.std), num_workers=num_workers if train else 0, **sharding)


# -- models ----------------------------------------------------------------------


class LastLayerOnly(nn.Module):
  """``inner`` with a frozen backbone: only the top-level params in ``trainable`` learn.

  The variables are exactly ``inner``'s (``nn.share_scope``: same tree, same
  initialisation, loadable by ``inner`` itself). Every other parameter is read
  through ``stop_gradient`` (its gradient is exactly zero, and no backward pass
  is computed for it) and ``inner`` always runs in inference mode (BatchNorm
  uses and keeps its running statistics, ADL is off), as when a fixed
  pretrained network's features feed a trained linear classifier.
  """
  inner: nn.Module
  trainable: tuple[str, ...] = ("fc",)

  def setup(self):
    nn.share_scope(self, self.inner)

  def __call__(self, images: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    del train  # the backbone is always in inference mode
    trainable = self.trainable

    def freeze(variables):
      params = variables.get("params", {})
      params = {k: v if k in trainable else jax.tree.map(jax.lax.stop_gradient, v)
                for k, v in params.items()}
      return {**variables, "params": params}

    frozen = nn.map_variables(lambda m, x: m.inner(x, train=False), ["params"],
                              trans_in_fn=freeze, init=self.is_initializing(), mutable=False)
    return frozen(self, images)


def head_names(arch: str) -> tuple[str, ...]:
  """Top-level params of the last (classifier) layer: ``fc`` (ResNet/VGG), ``fc2`` (LeNet)."""
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  return ("fc2",) if models.arch_family(arch) == "lenet" else ("fc",)


def model_options(config: Any) -> dict[str, Any]:
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  opts: dict[str, Any] = {"dtype": config.model.dtype}
  if models.arch_family(config.model.arch) == "resnet":
    opts["layer4_stride"] = int(config.model.layer4_stride)
  return opts


def build_model(config: Any, num_classes: int, *, for_training: bool) -> nn.Module:
  """The network; for training with ``last_layer_only`` wrapped in ``LastLayerOnly``."""
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  from infocam_jax.train import parallel  # pylint: disable=g-import-not-at-top
  axis = parallel.step_axis_name(config.parallelism) if for_training else None
  model = models.create_model(config.model.arch, num_classes, bn_axis_name=axis,
                              **model_options(config))
  if for_training and config.model.last_layer_only:
    model = LastLayerOnly(model, trainable=head_names(config.model.arch))
  return model


def head_mask_fn(config: Any):
  """params -> bool tree of the ``head_lr_multiplier`` group."""
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  arch = config.model.arch
  if config.model.last_layer_only:
    heads = head_names(arch)
    return lambda params: {k: jax.tree.map(lambda _, v=(k in heads): v, sub)
                           for k, sub in params.items()}
  return lambda params: models.head_param_mask(arch, params)


# -- training and evaluation of one run ----------------------------------------------


def _run_dir(workdir: str, objective: str, seed: int) -> str:
  return os.path.join(workdir, objective, f"seed_{seed}")


def check_resumable(config: Any, workdir: str) -> None:
  """Refuses (ValueError) run directories that hold a different training config."""
  for objective in objectives_of(config):
    for seed in seeds_of(config):
      path = os.path.join(_run_dir(workdir, objective, seed), "config.json")
      if not os.path.exists(path):
        continue
      with open(path) as f:
        saved = json.load(f)
      current = config_lib.to_dict(run_config(config, objective, seed))
      diffs = config_lib.config_differences(saved, current)
      if diffs:
        raise ValueError(
            f"{os.path.dirname(path)} holds a run with a different config; refusing to resume "
            "it with:\n  " + "\n  ".join(diffs) + "\nUse a new --workdir (or restore the "
            "original values).")


def _finished(run_dir: str, rcfg: Any, settings: Mapping[str, Any]) -> dict[str, Any] | None:
  path = os.path.join(run_dir, RESULT_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      result = json.load(f)
  except (OSError, json.JSONDecodeError):
    return None
  if not _same_run(result.get("run_config", {}), config_lib.to_dict(rcfg)):
    return None
  if result.get("eval_settings") != _plain(dict(settings)):
    result["_needs_eval_only"] = True
  return result


def train_run(config: Any, rcfg: Any, run_dir: str, data: Data, *, echo=None,
              stop_requested=None) -> Any:
  """Trains (or resumes) one run with the engine; returns its ``FitResult``."""
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  from infocam_jax import train as engine  # pylint: disable=g-import-not-at-top
  seed = int(rcfg.seed)
  train_pipe = make_pipeline(rcfg, data.train, train=True, seed=seed,
                             num_workers=config.experiment.num_workers)
  val_pipe = (make_pipeline(rcfg, data.val, train=False, seed=seed)
              if data.val is not None else None)
  model = build_model(rcfg, data.num_classes, for_training=True)
  initial = None
  if rcfg.model.pretrained:
    initial = models.load_torchvision_weights(
        rcfg.model.pretrained, rcfg.model.arch, data.num_classes,
        key=jax.random.PRNGKey(seed + 1), strict=False, **model_options(rcfg))
  image_shape = (rcfg.data.image_size, rcfg.data.image_size, rcfg.data.channels)
  return engine.fit(
      rcfg, run_dir, model=model, train_data=train_pipe, eval_data=val_pipe,
      num_classes=data.num_classes, image_shape=image_shape, class_counts=data.class_counts,
      head_mask_fn=head_mask_fn(rcfg), initial_variables=initial, echo=echo,
      stop_requested=stop_requested,
      export_metadata={"arch": rcfg.model.arch, "model_options": model_options(rcfg),
                       "dataset": data.name, "objective": rcfg.loss,
                       "pretrained": rcfg.model.pretrained})


def selected_variables(config: Any, rcfg: Any, run_dir: str) -> tuple[dict[str, Any], int]:
  """``(variables, step)`` of the checkpoint the evaluation uses (see ``experiment.select``)."""
  from infocam_jax import train as engine  # pylint: disable=g-import-not-at-top
  if config.experiment.select == "last":
    variables, meta = engine.load_variables(os.path.join(run_dir, "export"))
    return variables, int(meta["step"])
  best = engine.load_best_variables(os.path.join(run_dir, "checkpoints"),
                                    best_metric=rcfg.best_metric, best_mode=rcfg.best_mode)
  if best is None:
    raise FileNotFoundError(f"no checkpoint in {run_dir}/checkpoints to select from.")
  return best


_FORWARD: dict[Any, Any] = {}


def _forward(model: nn.Module):
  """A jitted ``(variables, images) -> float32 logits``, cached per model definition."""
  key = repr(model)
  fn = _FORWARD.get(key)
  if fn is None:
    fn = jax.jit(lambda v, x: model.apply(v, x, train=False)[0].astype(jnp.float32))
    _FORWARD[key] = fn
  return fn


def predict(model: nn.Module, variables: Mapping[str, Any], pipeline: Any
            ) -> tuple[np.ndarray, np.ndarray]:
  """``(logits [N, K] float32, labels [N])`` over one ordered pass (padding dropped)."""
  fn = _forward(model)
  logits, labels = [], []
  for batch in pipeline.iterate(0):  # one ordered pass, prefetched by grain threads
    z = np.asarray(fn(variables, batch["image"]))
    keep = batch["mask"]
    logits.append(z[keep])
    labels.append(batch["label"][keep])
  return np.concatenate(logits), np.concatenate(labels).astype(np.int64)


def weighted_mean(values: np.ndarray, labels: np.ndarray, weights: np.ndarray
                  ) -> tuple[float, float]:
  """Mean of ``values`` with class ``c`` weighted by ``weights[c]``, and its standard error.

  ``sum_c w_c mean_c / sum_c w_c`` over the classes present (stratified
  estimator), standard error ``sqrt(sum_c w_c^2 var_c / n_c) / sum_c w_c``
  (per-class variances with ddof=1; classes with a single example contribute
  no variance term).
  """
  values = np.asarray(values, np.float64)
  est, var, wsum = 0.0, 0.0, 0.0
  for c, w in enumerate(np.asarray(weights, np.float64)):
    v = values[labels == c]
    if v.size == 0:
      continue
    wsum += w
    est += w * v.mean()
    if v.size > 1:
      var += w * w * v.var(ddof=1) / v.size
  if wsum <= 0:
    raise ValueError("weighted_mean: no class with positive weight is present.")
  return est / wsum, math.sqrt(var) / wsum


def classification_metrics(logits: np.ndarray, labels: np.ndarray, *, objective: str,
                           prior: np.ndarray, class_counts_train: np.ndarray) -> dict[str, Any]:
  """Accuracies (percent), per-class accuracies, the objective's NLL and the MI readings."""
  from infocam_jax import estimators  # pylint: disable=g-import-not-at-top
  k = prior.shape[0]
  pred = np.argmax(logits, axis=-1)  # both objectives: argmax z (paper-spec §1.2)
  correct = (pred == labels)
  test_counts = np.bincount(labels, minlength=k)
  class_correct = np.bincount(labels, weights=correct.astype(np.float64), minlength=k)
  present = test_counts > 0
  per_class = np.where(present, 100.0 * class_correct / np.maximum(test_counts, 1), np.nan)
  minority, majority = minority_majority(class_counts_train)
  group = lambda idx: (float(np.nanmean(per_class[idx]))
                       if np.any(present[idx]) else None)
  confusion = np.zeros((k, k), np.int64)
  np.add.at(confusion, (labels, pred), 1)
  z = jnp.asarray(logits)
  y = jnp.asarray(labels, jnp.int32)
  p = jnp.asarray(prior, jnp.float32)
  if objective == "pc_softmax":
    pmi = estimators.pmi(z, y, p, objective="pc_softmax")
    nll = -pmi
    readings = {"mi": ("mean log s~_y (PC-softmax)", pmi)}
  else:
    nll = -jax.nn.log_softmax(z)[jnp.arange(z.shape[0]), y]
    readings = {
        "mi": ("log K + log softmax_y (the paper's softmax reading; biased when the "
               "training data are imbalanced)", estimators.pmi(z, y)),
        "mi_prior_corrected": ("log softmax_y - log p_y (prior-corrected)",
                               estimators.pmi(z, y, p, objective="softmax")),
    }
  out = {
      "count": int(labels.size),
      "accuracy": 100.0 * float(correct.mean()),
      "mean_per_class_accuracy": float(np.mean(per_class[present])),
      "minority_class_accuracy": group(minority),
      "majority_class_accuracy": group(majority),
      "per_class_accuracy": [None if not present[c] else float(per_class[c]) for c in range(k)],
      "test_class_counts": test_counts.tolist(),
      "confusion": confusion.tolist(),
      "loss": float(np.mean(np.asarray(nll, np.float64))),
  }
  for name, (reading, values) in readings.items():
    v = np.asarray(values, np.float64)
    est, se = weighted_mean(v, labels, prior)
    out[name] = {"estimate": est, "stderr": se, "reading": reading,
                 "test_mean": float(v.mean()),
                 "test_mean_stderr": float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1
                 else 0.0}
  return out


def minority_majority(class_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Class indices with fewer / at least as many training examples as the median class."""
  counts = np.asarray(class_counts)
  med = float(np.median(counts))
  minority = np.flatnonzero(counts < med)
  majority = np.flatnonzero(counts >= med)
  if minority.size == 0:  # balanced: every class is "majority"
    return minority, np.arange(counts.size)
  return minority, majority


def evaluate_run(config: Any, rcfg: Any, run_dir: str, data: Data) -> dict[str, Any]:
  """Evaluates the selected checkpoint of one run on every test split."""
  from infocam_jax.train import writers  # pylint: disable=g-import-not-at-top
  t0, c0 = time.time(), time.process_time()
  variables, step = selected_variables(config, rcfg, run_dir)
  model = build_model(rcfg, data.num_classes, for_training=False)
  prior = data.class_counts / data.class_counts.sum()
  splits = {}
  for name, source in data.tests.items():
    pipe = make_pipeline(rcfg, source, train=False, seed=int(rcfg.seed), shard=False)
    logits, labels = predict(model, variables, pipe)
    splits[name] = classification_metrics(logits, labels, objective=rcfg.loss, prior=prior,
                                          class_counts_train=data.class_counts)
  val = {}
  path = os.path.join(run_dir, "metrics.jsonl")
  if os.path.exists(path):
    for rec in writers.read_metrics(run_dir):
      if rec.get("step") == step:
        val.update({k: v for k, v in rec.items() if k.startswith("val/")})
  return {"selected_step": step, "splits": splits, "val": val,
          "eval_wall_time_s": time.time() - t0, "eval_cpu_time_s": time.process_time() - c0}


# -- aggregation -------------------------------------------------------------------


def stat(values: Sequence[float | None]) -> dict[str, Any]:
  """``{"mean", "std" (ddof=1; None for one value), "per_seed"}`` (None entries ignored)."""
  vals = [float(v) for v in values if v is not None]
  if not vals:
    return {"mean": None, "std": None, "per_seed": list(values)}
  arr = np.asarray(vals, np.float64)
  return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
          "per_seed": [None if v is None else float(v) for v in values]}


_SCALARS = ("accuracy", "mean_per_class_accuracy", "minority_class_accuracy",
            "majority_class_accuracy", "loss")


def aggregate_split(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Mean/std over seeds of one objective's metrics on one split."""
  out: dict[str, Any] = {k: stat([r[k] for r in per_seed]) for k in _SCALARS}
  pcs = np.asarray([[np.nan if v is None else v for v in r["per_class_accuracy"]]
                    for r in per_seed], np.float64)
  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (a class absent)
    mean = np.nanmean(pcs, axis=0)
    std = np.nanstd(pcs, axis=0, ddof=1) if pcs.shape[0] > 1 else np.full(pcs.shape[1], np.nan)
  clean = lambda a: [None if not np.isfinite(x) else float(x) for x in a]
  out["per_class_accuracy"] = {"mean": clean(mean), "std": clean(std),
                               "per_seed": [clean(r) for r in pcs]}
  out["test_class_counts"] = per_seed[0]["test_class_counts"]
  for name in ("mi", "mi_prior_corrected"):
    if name in per_seed[0]:
      s = stat([r[name]["estimate"] for r in per_seed])
      s["stderr_per_seed"] = [r[name]["stderr"] for r in per_seed]
      s["reading"] = per_seed[0][name]["reading"]
      s["test_mean"] = stat([r[name]["test_mean"] for r in per_seed])
      out[name] = s
  return out


def aggregate(config: Any, data: Data, runs: Mapping[tuple[str, int], Mapping[str, Any]]
              ) -> dict[str, Any]:
  """The ``results.json`` content (module docstring) from the per-run results."""
  seeds, objectives, splits = seeds_of(config), objectives_of(config), test_splits_of(config)
  primary = config.data.test_split
  counts = data.class_counts
  prior = counts / counts.sum()
  minority, majority = minority_majority(counts)
  out: dict[str, Any] = {
      "experiment": "pc_softmax",
      "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "dataset": data.name, "train_split": config.data.train_split,
      "eval_split": config.data.eval_split, "test_split": primary, "test_splits": list(splits),
      "protocol": protocol(config, data),
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
    entry = dict(by_split[primary])
    entry["splits"] = by_split
    val_keys = sorted(set().union(*[r["val"].keys() for r in res]))
    entry["val"] = {k: stat([r["val"].get(k) for r in res]) for k in val_keys}
    entry["selected_step"] = [r["selected_step"] for r in res]
    entry["train_steps"] = [r["train_steps"] for r in res]
    entry["wall_time_s"] = [r["train_wall_time_s"] + r["eval_wall_time_s"] for r in res]
    entry["cpu_time_s"] = [r["train_cpu_time_s"] + r["eval_cpu_time_s"] for r in res]
    out[obj] = entry
  if set(OBJECTIVES) <= set(objectives):
    diff = {}
    for sp in splits:
      d = {}
      for k in ("accuracy", "mean_per_class_accuracy", "minority_class_accuracy",
                "majority_class_accuracy"):
        a = [runs[("pc_softmax", s)]["splits"][sp][k] for s in seeds]
        b = [runs[("softmax", s)]["splits"][sp][k] for s in seeds]
        d[k] = stat([None if x is None or y is None else x - y for x, y in zip(a, b)])
      diff[sp] = d
    out["difference_pc_minus_softmax"] = dict(diff[primary], splits=diff)
  return out


def protocol(config: Any, data: Data) -> dict[str, str]:
  sel = config.experiment.select
  if sel == "best_val":
    selection = (f"checkpoint with the best {config.best_metric} ({config.best_mode}) on the "
                 f"validation split {config.data.eval_split!r}, evaluated every "
                 f"{config.eval_every_steps or 'final'} step(s); the test splits are never used "
                 "for selection")
  else:
    selection = ("final parameters after the fixed schedule (no model selection; the test "
                 "splits are never used for selection)")
  tests, all_balanced = [], True
  for name, src in data.tests.items():
    c = np.bincount(np.asarray(src.labels), minlength=data.num_classes)
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


# -- reporting -------------------------------------------------------------------


def _pm(s: Mapping[str, Any] | None, digits: int = 2) -> str:
  if not s or s.get("mean") is None:
    return "-"
  if s.get("std") is None:
    return f"{s['mean']:.{digits}f}"
  return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


_LABELS = {"softmax": "softmax", "pc_softmax": "PC-softmax"}


def markdown_table(results: Mapping[str, Any], split: str | None = None) -> str:
  """The results of one test split as a markdown table (mean ± std over seeds)."""
  split = split or results["test_split"]
  n = len(results["seeds"])
  lines = [f"Test split {split!r} of {results['dataset']} ({n} seed{'s' * (n != 1)}; mean ± std "
           "over seeds; accuracies in %, MI in nats, estimate of I(X;Y) under the training "
           f"prior, H(Y) = {results['entropy_train_prior_nats']:.3f}):", "",
           "| objective | accuracy | mean per-class acc. | minority-class acc. | "
           "majority-class acc. | MI estimate | MI (prior-corrected) |",
           "|---|---|---|---|---|---|---|"]
  for obj in results["objectives"]:
    m = results[obj]["splits"][split]
    lines.append(f"| {_LABELS[obj]} | {_pm(m['accuracy'])} | {_pm(m['mean_per_class_accuracy'])} "
                 f"| {_pm(m['minority_class_accuracy'])} | {_pm(m['majority_class_accuracy'])} "
                 f"| {_pm(m['mi'], 3)} | {_pm(m.get('mi_prior_corrected'), 3)} |")
  diff = results.get("difference_pc_minus_softmax")
  if diff:
    d = diff["splits"][split]
    lines.append(f"| PC − softmax (paired) | {_pm(d['accuracy'])} | "
                 f"{_pm(d['mean_per_class_accuracy'])} | {_pm(d['minority_class_accuracy'])} | "
                 f"{_pm(d['majority_class_accuracy'])} | | |")
  return "\n".join(lines)


def write_figures(results: Mapping[str, Any], workdir: str) -> list[str]:
  from infocam_jax import plotting  # pylint: disable=g-import-not-at-top
  names = []
  counts = results["train_class_counts"]
  cats = [f"{n} (n={c})" for n, c in zip(results["class_names"], counts)]
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
                       title=title)
    names.append(name)
  return names


# -- the experiment ----------------------------------------------------------------


def prepare(config: Any, workdir: str) -> Data:
  """Every check that needs no compilation: config, existing run dirs, datasets.

  Raises ``ValueError`` (bad config, a run directory holding another config)
  or ``DatasetUnavailableError`` (from the data module: what is missing, where
  it looked, how to obtain it). Returns the opened datasets.
  """
  validate(config)
  check_resumable(config, os.path.abspath(workdir))
  return load_data(config)


def execute_run(config: Any, workdir: str, data: Data, objective: str, seed: int, *,
                tag: str = "", echo=None, stop_requested=None) -> dict[str, Any]:
  """Trains (or resumes, or skips) and evaluates one (objective, seed); returns its record.

  The record is also written to ``DIR/<objective>/seed_<n>/result.json``.
  Raises ``RunInterrupted`` when training stopped early (a signal, or
  ``stop_requested()`` became true) after checkpointing.
  """
  echo = echo or io.echo
  tag = tag or f"{objective}, seed {seed}"
  rcfg = run_config(config, objective, seed)
  run_dir = _run_dir(workdir, objective, seed)
  settings = eval_settings(config)
  done = _finished(run_dir, rcfg, settings)
  if done is not None and not done.get("_needs_eval_only"):
    echo(f"{tag}: finished earlier ({run_dir}); skipped.")
    return done
  tr0, trc0 = time.time(), time.process_time()
  if done is None:
    echo(f"{tag}: training in {run_dir}")
    result = train_run(config, rcfg, run_dir, data, echo=echo, stop_requested=stop_requested)
    if result.interrupted or result.export_dir is None:
      raise RunInterrupted(f"{tag}: stopped at step {result.step} of {result.num_train_steps} "
                           "(checkpoint saved)")
    train_steps = int(result.step)
    train_wall, train_cpu = time.time() - tr0, time.process_time() - trc0
  else:
    echo(f"{tag}: trained earlier; re-evaluating (evaluation settings changed).")
    train_steps = int(done["train_steps"])
    train_wall, train_cpu = done["train_wall_time_s"], done["train_cpu_time_s"]
  ev = evaluate_run(config, rcfg, run_dir, data)
  rec = {"objective": objective, "seed": seed, "run_config": config_lib.to_dict(rcfg),
         "eval_settings": _plain(settings), "train_steps": train_steps,
         "train_wall_time_s": train_wall, "train_cpu_time_s": train_cpu, **ev}
  if jax.process_index() == 0:
    io.write_json(os.path.join(run_dir, RESULT_FILE), rec)
  m = ev["splits"][config.data.test_split]
  echo(f"{tag}: {config.data.test_split} accuracy {m['accuracy']:.2f}%, mean per-class "
       f"{m['mean_per_class_accuracy']:.2f}%, MI {m['mi']['estimate']:.3f} nats "
       f"(step {ev['selected_step']}; {train_wall + ev['eval_wall_time_s']:.1f} s)")
  return rec


# -- worker processes (experiments/_workers.py: clean stop, no orphans) ------------


def _worker_run(config_dict: dict[str, Any], workdir: str, objective: str, seed: int, tag: str,
                cache_dir: str | None) -> dict[str, Any]:
  """``execute_run`` in a spawned worker process (``experiment.parallel_runs`` > 1)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from experiments import _workers  # pylint: disable=g-import-not-at-top
  stop = _workers.stop_event()
  try:
    if stop is not None and stop.is_set():
      raise RunInterrupted(f"{tag}: not started")
    if cache_dir:
      enable_compilation_cache(cache_dir)
    config = ml_collections.ConfigDict(config_dict)
    config.progress_bar = False  # interleaved bars from several processes are unreadable
    data = load_data(config)
    with _workers.busy():
      return execute_run(config, workdir, data, objective, seed, tag=tag,
                         echo=_workers.echo,
                         stop_requested=None if stop is None else stop.is_set)
  except RunInterrupted:
    if stop is not None:
      stop.set()  # e.g. this worker was signalled directly: stop the others too
    raise


def _parallel_workers(config: Any, pending: int) -> int:
  n = min(int(config.experiment.parallel_runs), pending)
  if n > 1 and (jax.default_backend() != "cpu" or jax.process_count() > 1):
    return 1  # one accelerator (or a multi-host job) serves one run at a time
  return max(n, 1)


def run(config: Any, workdir: str, *, data: Data | None = None, echo=None) -> dict[str, Any]:
  """Trains/evaluates every (objective, seed) and writes ``DIR/results.json``; returns it.

  ``prepare`` runs first unless its ``data`` is passed, so a bad config, a
  foreign run directory or a missing dataset fail before anything is compiled.
  With ``experiment.parallel_runs`` > 1 (CPU only) the unfinished runs are
  spread over that many spawned processes (XLA:CPU runs these small programs
  on one core each); the results are those of the sequential order.
  """
  import resource  # pylint: disable=g-import-not-at-top
  echo = echo or io.echo
  workdir = os.path.abspath(workdir)
  t0, c0 = time.time(), time.process_time()
  ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
  if data is None:
    data = prepare(config, workdir)
  data_wall = time.time() - t0
  primary = jax.process_index() == 0
  settings = eval_settings(config)
  todo = [(o, s) for s in seeds_of(config) for o in objectives_of(config)]
  tags = {r: f"[{i + 1}/{len(todo)}] {r[0]}, seed {r[1]}" for i, r in enumerate(todo)}
  runs: dict[tuple[str, int], dict[str, Any]] = {}
  pending = []
  for objective, seed in todo:
    done = _finished(_run_dir(workdir, objective, seed), run_config(config, objective, seed),
                     settings)
    if done is not None and not done.get("_needs_eval_only"):
      echo(f"{tags[(objective, seed)]}: finished earlier "
           f"({_run_dir(workdir, objective, seed)}); skipped.")
      runs[(objective, seed)] = done
    else:
      pending.append((objective, seed))
  workers = _parallel_workers(config, len(pending))
  if workers == 1:
    for key in pending:
      runs[key] = execute_run(config, workdir, data, *key, tag=tags[key], echo=echo)
  else:
    import concurrent.futures  # pylint: disable=g-import-not-at-top
    import multiprocessing  # pylint: disable=g-import-not-at-top
    echo(f"Running {len(pending)} runs in {workers} worker processes.")
    cache_dir = (jax.config.jax_compilation_cache_dir
                 or os.environ.get("JAX_COMPILATION_CACHE_DIR") or None)
    config_dict = _plain(config_lib.to_dict(config))
    ctx = multiprocessing.get_context("spawn")
    stop, abort = ctx.Event(), ctx.Event()
    # By module path, also when this file runs as __main__ (python -m ...).
    from experiments import pc_softmax as module  # pylint: disable=g-import-not-at-top,import-self
    from experiments import _workers  # pylint: disable=g-import-not-at-top
    stopped = []
    with _workers.StopOnSignal(stop, abort), concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_workers.init_worker,
        initargs=(os.getpid(), stop, abort)) as pool:
      futures = {pool.submit(module._worker_run, config_dict, workdir, *key, tags[key],  # pylint: disable=protected-access
                             cache_dir): key for key in pending}
      for fut in concurrent.futures.as_completed(futures):
        try:
          runs[futures[fut]] = fut.result()
        except module.RunInterrupted as e:  # the workers' class (this file may be __main__)
          stopped.append(str(e))
    if stopped:
      raise RunInterrupted(f"{len(stopped)} of {len(pending)} runs stopped early ("
                           + "; ".join(sorted(stopped)) + ")")
  ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
  children_cpu = (ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime)
  results = aggregate(config, data, runs)
  results["config"] = _plain(config_lib.to_dict(config))
  results["versions"] = io.versions()
  results["device"] = io.device_info()
  results["timing"] = {
      "wall_time_s": time.time() - t0,
      "cpu_time_s": time.process_time() - c0 + children_cpu,
      "data_wall_time_s": data_wall, "worker_processes": workers,
      "note": "this invocation only, CPU time includes worker processes; runs skipped as "
              "finished keep their own times in 'runs'",
      "runs": {f"{o}/seed_{s}": {"train_wall_time_s": r["train_wall_time_s"],
                                 "train_cpu_time_s": r["train_cpu_time_s"],
                                 "eval_wall_time_s": r["eval_wall_time_s"]}
               for (o, s), r in runs.items()}}
  if primary:
    results["figures"] = write_figures(results, workdir) if config.experiment.figures else []
    tables = "\n\n".join(markdown_table(results, sp) for sp in results["test_splits"])
    notes = (f"Selection: {results['protocol']['selection']}.\nTest sets: "
             f"{results['protocol']['test_set']}.\nPrediction: "
             f"{results['protocol']['prediction']}.")
    with open(os.path.join(workdir, "results.md"), "w") as f:
      f.write(tables + "\n\n" + notes + "\n")
    io.write_json(os.path.join(workdir, RESULTS_FILE), results)
    print("\n" + tables + "\n\n" + notes, flush=True)
    print(f"\nWrote {os.path.join(workdir, RESULTS_FILE)}"
          + "".join(f"\n      {os.path.join(workdir, f)}" for f in results["figures"]),
          flush=True)
  return results


def main(argv: list[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  from infocam_jax.data import DatasetUnavailableError  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise ValueError(f"unexpected positional arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
  if flags.FLAGS.compilation_cache:
    enable_compilation_cache(os.path.join(os.path.abspath(workdir), "xla_cache"))
  try:
    validate(config)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  from infocam_jax import train as engine  # pylint: disable=g-import-not-at-top
  engine.initialize_distributed_from_config(config.distributed)
  try:
    data = prepare(config, workdir)
  except DatasetUnavailableError as e:
    print(f"error: dataset {config.data.name!r} is not available:\n{e}", file=sys.stderr)
    sys.exit(3)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  try:
    run(config, workdir, data=data)
  except RunInterrupted as e:
    print(f"Stopped: {e}. Re-run the same command to continue.", file=sys.stderr, flush=True)
    sys.exit(EXIT_INTERRUPTED)


def enable_compilation_cache(default_dir: str) -> str | None:
  """Turns on JAX's persistent compilation cache (before anything is compiled).

  Uses ``$JAX_COMPILATION_CACHE_DIR`` / ``jax_compilation_cache_dir`` when set,
  else ``default_dir``. The runs of one experiment share most programs (every
  seed compiles the same train and eval steps), so all but the first of each
  kind load from the cache instead of recompiling. Returns the directory.
  """
  path = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
  if not path:
    path = default_dir
    jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  return path


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "Experiment directory (runs, results.json, figures).",
                      required=True)
  flags.DEFINE_bool("compilation_cache", True, "Persistent XLA compilation cache in "
                    "$JAX_COMPILATION_CACHE_DIR or <workdir>/xla_cache (runs reuse programs).")
  config_flags.DEFINE_config_file("config", DEFAULT_CONFIG,
                                  "Config file (Python, get_config), e.g. "
                                  "experiments/configs/pc_softmax.py:mnist.", lock_config=True)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
