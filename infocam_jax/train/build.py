"""Everything an experiment builds from a config: data, pipelines, model, initial variables.

One place for what the experiments used to write each in their own way:

* ``open_data(config, splits)`` -> ``Data``: the sources of the named splits
  (tfds-backed, or the in-memory ``data.name = "synthetic"`` set), their class
  counts and names; a missing dataset raises ``data.DatasetUnavailableError``.
* ``make_pipeline(config, source, train=...)``: the batch pipeline with the
  config's image options (size, crop, flip, channels, normalisation, boxes).
* ``model_options`` / ``build_model`` / ``head_mask_fn``: the Linen module of
  ``config.model`` (every option passed on, ADL included; ``last_layer_only``
  wraps it in ``models.LastLayerOnly`` for training).
* ``check_pretrained`` / ``initial_variables``: torchvision weights, or a clear
  error saying where to get them (``--config.model.pretrained=none`` trains
  from scratch on purpose).
* ``load_for_evaluation(workdir, rule, ...)``: the one rule for which
  checkpoint an evaluation reads (``"last"``: the export; ``"best"``: the
  keep-best checkpoint by the validation metric).

Example::

  data = build.open_data(config, [config.data.train_split, config.data.eval_split])
  pipe = build.make_pipeline(config, data.sources[config.data.train_split], train=True)
  model = build.build_model(config, data.num_classes)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import numpy as np

from infocam_jax import models
from infocam_jax.train import checkpoint as ckpt_lib
from infocam_jax.train import parallel
from infocam_jax.train import writers

#: ``config.data.name`` of the in-memory toy set (``data.arrays.synthetic_source``).
SYNTHETIC = "synthetic"
#: ``config.model.pretrained`` values meaning "train from scratch".
NO_PRETRAINED = ("", "none")

TORCHVISION_FILES = {
    "resnet50": "https://download.pytorch.org/models/resnet50-19c8e357.pth, the file the "
                "official code loaded (torchvision 0.4); resnet50-0676ba61.pth holds the same "
                "IMAGENET1K_V1 weights",
    "vgg16_gap": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
}


# -- data ----------------------------------------------------------------------------


@dataclasses.dataclass
class Data:
  """The opened splits of one dataset and the facts derived from the training split."""
  name: str
  sources: dict[str, Any]  # split -> source (random access, ``class_counts``, ``labels``)
  num_classes: int
  class_names: tuple[str, ...]
  class_counts: np.ndarray  # int64 [K] of the training split

  @property
  def prior(self) -> np.ndarray:
    """float64 [K] training class frequencies (the PC-softmax prior)."""
    return self.class_counts / self.class_counts.sum()


def dataset_names() -> tuple[str, ...]:
  """Known ``config.data.name`` bases (a tfds config may follow a slash)."""
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  return (SYNTHETIC, *tuple(data.BASE_SPLITS))


def check_dataset_name(name: str) -> str | None:
  """None if ``name``'s dataset is known, else the problem (for a config error)."""
  names = dataset_names()
  if name.split("/")[0] in names:
    return None
  return (f"config.data.name: unknown dataset {name!r}; known: {list(names)} (optionally with "
          "a tfds config, e.g. 'cluttered_digits/small')")


def open_data(config: Any, splits: Sequence[str], *, cache_images: bool = False) -> Data:
  """Opens ``splits`` (empty names skipped; the first is the training split).

  ``cache_images``: decode (and resize) every image once and keep it in memory
  (``data.arrays.CachedSource``; the batches are bit-identical). Raises
  ``data.DatasetUnavailableError`` (what is missing, where it was looked for,
  how to obtain it) and ``ValueError`` when a class has no training example.
  """
  from infocam_jax.data import arrays  # pylint: disable=g-import-not-at-top
  d = config.data
  splits = [s for s in dict.fromkeys(splits) if s]
  sources: dict[str, Any]
  if d.name == SYNTHETIC:
    k = d.synthetic_num_classes
    offsets = {d.train_split: 1000, d.eval_split: 2000, d.test_split: 3000}
    sizes = {d.train_split: d.synthetic_num_train}
    sources = {s: arrays.synthetic_source(sizes.get(s, d.synthetic_num_eval), num_classes=k,
                                          image_size=d.image_size,
                                          seed=offsets[s] + config.seed) for s in splits}
    names = tuple(str(c) for c in range(k))
  else:
    from infocam_jax import data  # pylint: disable=g-import-not-at-top
    data_dir = d.data_dir or None
    sources = {s: data.load_source(d.name, s, data_dir=data_dir) for s in splits}
    if cache_images:
      size = d.resize_size or d.image_size
      sources = {s: arrays.CachedSource(src, size=size, channels=_data_option(d, "channels", 3))
                 for s, src in sources.items()}
    names = tuple(sources[splits[0]].class_names)
  train = sources[splits[0]]
  counts = np.asarray(train.class_counts, np.int64)
  if np.any(counts == 0):
    raise ValueError(f"{d.name}/{splits[0]}: classes {np.flatnonzero(counts == 0).tolist()} "
                     "have no training examples (the PC-softmax prior needs every class).")
  return Data(name=d.name, sources=sources, num_classes=int(train.num_classes),
              class_names=names, class_counts=counts)


def _data_option(d: Any, key: str, default: Any) -> Any:
  return d[key] if key in d else default


def make_pipeline(config: Any, source: Any, *, train: bool, seed: int | None = None,
                  shard: bool = True, num_workers: int | None = None) -> Any:
  """The batch pipeline of ``source`` with ``config.data``'s image options.

  ``shard``: this process's rows of every global batch (training); False gives
  every process whole batches (evaluations that run the full split on each
  process). ``num_workers``: input worker processes (default
  ``config.data.num_workers`` when the schema has it, else threads).
  Options the config does not have (``channels``, ``mean``, ``std``) keep the
  pipeline's defaults (RGB, ImageNet statistics).
  """
  from infocam_jax.data import arrays  # pylint: disable=g-import-not-at-top
  d = config.data
  seed = int(config.seed if seed is None else seed)
  batch_size = config.batch_size if train else config.eval_batch_size
  sharding = (dict(shard_index=jax.process_index(), num_shards=jax.process_count()) if shard
              else dict(shard_index=0, num_shards=1))
  if isinstance(source, arrays.ArraySource):
    return arrays.ArrayPipeline(source, batch_size=batch_size, train=train, seed=seed,
                                **sharding)
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  if num_workers is None:
    num_workers = _data_option(d, "num_workers", 0)
  options: dict[str, Any] = {k: (tuple(d[k]) if k in ("mean", "std") else d[k])
             for k in ("channels", "mean", "std", "flip", "random_crop") if k in d}
  return data.make_pipeline(source, batch_size=batch_size, train=train,
                            image_size=d.image_size, resize_size=d.resize_size or d.image_size,
                            seed=seed, max_boxes=d.max_boxes, num_workers=num_workers,
                            **sharding, **options)


def image_shape(config: Any) -> tuple[int, int, int]:
  """``(S, S, C)`` of the network input."""
  s = int(config.data.image_size)
  return (s, s, int(_data_option(config.data, "channels", 3)))


# -- model ---------------------------------------------------------------------------


def model_options(config: Any) -> dict[str, Any]:
  """Keyword options of ``models.create_model`` from ``config.model`` (ADL included)."""
  m = config.model
  opts: dict[str, Any] = {"dtype": m.dtype}
  if models.arch_family(m.arch) == "resnet":
    opts["layer4_stride"] = int(m.layer4_stride)
  if m.adl_positions:
    opts["adl_positions"] = m.adl_positions
    if m.adl_threshold:
      opts["adl_threshold"] = m.adl_threshold
    if m.adl_drop_rate:
      opts["adl_drop_rate"] = m.adl_drop_rate
  return opts


def _last_layer_only(config: Any) -> bool:
  return bool(config.model.get("last_layer_only", False))


def build_model(config: Any, num_classes: int, *, for_training: bool = True) -> Any:
  """The Linen module of ``config.model`` (for training: the step's BN axis, frozen backbone)."""
  axis = parallel.step_axis_name(config.parallelism) if for_training else None
  model = models.create_model(config.model.arch, num_classes, bn_axis_name=axis,
                              **model_options(config))
  if for_training and _last_layer_only(config):
    model = models.LastLayerOnly(model, trainable=models.head_names(config.model.arch))
  return model


def head_mask_fn(config: Any) -> Callable[[Any], Any]:
  """params -> bool tree of the ``optimizer.head_lr_multiplier`` group."""
  arch = config.model.arch
  if _last_layer_only(config):
    heads = models.head_names(arch)
    return lambda params: {k: jax.tree.map(lambda _, v=(k in heads): v, sub)
                           for k, sub in params.items()}
  return lambda params: models.head_param_mask(arch, params)


def pretrained_path(config: Any) -> str:
  """``config.model.pretrained`` with ``~`` expanded; '' when training from scratch."""
  p = config.model.pretrained
  return "" if p in NO_PRETRAINED else os.path.expanduser(p)


def check_pretrained(config: Any) -> None:
  """FileNotFoundError (what, where, how to obtain) if the pretrained weights file is missing."""
  path = pretrained_path(config)
  if not path or os.path.isfile(path):
    return
  arch = config.model.arch
  hint = TORCHVISION_FILES.get(arch)
  how = (f"Download torchvision's ImageNet weights for {arch} ({hint}) on a machine with "
         "internet access and copy the file there" if hint else
         "Point it at a torchvision-format .pth or .safetensors file")
  raise FileNotFoundError(
      f"Pretrained weights for {arch} not found.\nLooked for: {path} "
      f"(config.model.pretrained).\n{how}, or pass --config.model.pretrained=/path/to/file "
      "(--config.model.pretrained=none trains from scratch, which does not reproduce the "
      "paper).")


def initial_variables(config: Any, num_classes: int) -> dict[str, Any] | None:
  """torchvision/timm weights with a new head of ``num_classes`` (None: from scratch)."""
  if not pretrained_path(config):
    return None
  check_pretrained(config)
  return models.load_torchvision_weights(
      pretrained_path(config), config.model.arch, num_classes,
      key=jax.random.PRNGKey(config.seed + 1), strict=False, **model_options(config))


def export_metadata(config: Any, dataset: str) -> dict[str, Any]:
  """What ``DIR/export`` records so that the model can be rebuilt without the config."""
  return {"arch": config.model.arch, "model_options": model_options(config),
          "dataset": dataset, "objective": config.loss, "pretrained": config.model.pretrained}


def fit(config: Any, workdir: str, data: Data, *, train_split: str, eval_split: str = "",
        num_workers: int | None = None, **kwargs) -> Any:
  """``loop.fit`` with everything built from ``config`` (model, pipelines, weights, prior)."""
  from infocam_jax.train import loop  # pylint: disable=g-import-not-at-top
  train_pipe = make_pipeline(config, data.sources[train_split], train=True,
                             num_workers=num_workers)
  eval_pipe = (make_pipeline(config, data.sources[eval_split], train=False)
               if eval_split else None)
  return loop.fit(
      config, workdir, model=build_model(config, data.num_classes), train_data=train_pipe,
      eval_data=eval_pipe, num_classes=data.num_classes, image_shape=image_shape(config),
      class_counts=data.class_counts, class_prior=data.prior, head_mask_fn=head_mask_fn(config),
      initial_variables=initial_variables(config, data.num_classes),
      export_metadata=export_metadata(config, data.name), **kwargs)


# -- which checkpoint to evaluate ------------------------------------------------------

CHECKPOINT_RULES = ("last", "best")


def require_export(workdir: str) -> str:
  """``DIR/export``, the finished run's model; FileNotFoundError saying what to do when absent.

  Cheap (no data, no compilation): an evaluation checks it before anything else.
  """
  export = os.path.join(workdir, "export")
  if not os.path.isdir(os.path.join(export, ckpt_lib.EXPORT_VARIABLES)):
    state = ("has not finished training (re-run the same command without --mode=evaluate to "
             "resume it)" if os.path.isdir(os.path.join(workdir, "checkpoints")) else
             "holds no training run (train it first: the same command without --mode=evaluate)")
    raise FileNotFoundError(f"No exported model in {export}: {workdir} {state}.")
  return export


def load_for_evaluation(workdir: str, rule: str = "last", *, best_metric: str = "",
                        best_mode: str = "max", eval_split: str = "",
                        eval_every_steps: int = 0) -> tuple[Any, dict[str, Any], dict[str, Any]]:
  """``(model, variables, selection)`` of the checkpoint an evaluation reads.

  ``rule="last"``: ``DIR/export`` (the final step). ``"best"``: the keep-best
  checkpoint by ``best_metric`` (measured on ``eval_split``), read without its
  optimizer state. The model is rebuilt for inference from the export's
  metadata; ``selection`` records the step and the rule (for results.json).
  """
  if rule not in CHECKPOINT_RULES:
    raise ValueError(f"checkpoint rule must be one of {CHECKPOINT_RULES}, got {rule!r}")
  export = require_export(workdir)
  variables, meta = ckpt_lib.load_variables(export)
  model = models.create_model(meta["arch"], int(meta["num_classes"]), **meta["model_options"])
  selection: dict[str, Any] = {"checkpoint": rule, "final_step": int(meta["step"])}
  if rule == "last":
    selection.update(step=int(meta["step"]), selected_on=None,
                     rule="the last training step (DIR/export); no checkpoint selection")
    return model, variables, selection
  best = ckpt_lib.load_best_variables(os.path.join(workdir, "checkpoints"),
                                      best_metric=best_metric, best_mode=best_mode)
  if best is None:
    raise FileNotFoundError(f"checkpoint rule 'best' but {workdir}/checkpoints holds no "
                            "checkpoint.")
  variables, step = best
  value = metrics_at(workdir, step, prefix=best_metric).get(best_metric)
  selection.update(
      step=int(step), selected_on=eval_split, metric=best_metric, metric_value=value,
      rule=f"keep-best checkpoint by {best_metric} ({best_mode}) on the '{eval_split}' split, "
           f"evaluated every {eval_every_steps} steps and at the end")
  return model, variables, selection


def metrics_at(workdir: str, step: int, prefix: str = "val/") -> dict[str, Any]:
  """The ``prefix`` metrics that ``DIR/metrics.jsonl`` recorded at ``step``."""
  out: dict[str, Any] = {}
  if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    for rec in writers.read_metrics(workdir):
      if rec.get("step") == step:
        out.update({k: v for k, v in rec.items() if k.startswith(prefix)})
  return out


def plain(obj: Any) -> Any:
  """Nested dicts with lists for tuples (what a JSON round trip gives back)."""
  if isinstance(obj, Mapping):
    return {k: plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [plain(v) for v in obj]
  return obj
