"""Run configuration: defaults, schema and validation (before any compilation).

Configs are ``ml_collections.ConfigDict`` objects built by Python config files
(``experiments/configs/*.py::get_config()``), overridable from the command line
with ``--config.section.field=value``, as in the Flax examples and big_vision.

``validate_config(config)`` checks every field against ``TRAIN_SCHEMA``
(types, ranges, choices, known architecture names) and reports *all* problems
in one ``ValueError``; unknown keys are rejected with a "did you mean"
suggestion. ``validate_runtime(config, ...)`` adds the checks that need the
device/process count (global batch divisible by the number of devices, ...).
Experiments extend the schema with their own sections (``extend_schema``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Callable, Mapping, Sequence

from infocam_jax.train.optim import OPTIMIZERS, SCHEDULES
from infocam_jax.train.parallel import PARALLELISMS
from infocam_jax.train.steps import LOSSES

DTYPES = ("float32", "bfloat16", "float16")
CPU_COLLECTIVES = ("", "gloo", "mpi")


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field: accepted Python type(s), a check and documentation."""
  types: tuple[type, ...]
  doc: str
  check: Callable[[Any], str | None] | None = None
  choices: tuple[Any, ...] | Callable[[], tuple[Any, ...]] | None = None

  def validate(self, value: Any) -> str | None:
    if isinstance(value, bool) and bool not in self.types:
      return f"expected {_type_names(self.types)}, got bool {value!r}"
    if not isinstance(value, self.types):
      return f"expected {_type_names(self.types)}, got {type(value).__name__} {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
      return f"must be finite, got {value!r}"
    choices = self.choices() if callable(self.choices) else self.choices
    if choices is not None and value not in choices:
      hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
      extra = f" (did you mean {hint[0]!r}?)" if hint else ""
      return f"must be one of {list(choices)}, got {value!r}{extra}"
    if self.check is not None:
      return self.check(value)
    return None


def _type_names(types: tuple[type, ...]) -> str:
  return " or ".join(t.__name__ for t in types)


def at_least(lo: float) -> Callable[[Any], str | None]:
  return lambda v: None if v >= lo else f"must be >= {lo}, got {v!r}"


def in_range(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
  """A ``Field`` check: ``lo <= v <= hi`` (``lo_open``/``hi_open``: strict)."""
  def check(v):
    ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if ok:
      return None
    return (f"must lie in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
            f"got {v!r}")
  return check


def number_tuple(*, positive: bool = False) -> Callable[[Any], str | None]:
  """A ``Field`` check: a non-empty sequence of finite numbers (``positive``: each > 0)."""
  def check(v):
    if not v or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
      return f"must be a non-empty sequence of numbers, got {v!r}"
    if not all(math.isfinite(float(x)) for x in v):
      return f"must be finite, got {v!r}"
    if positive and any(float(x) <= 0 for x in v):
      return f"must be > 0, got {v!r}"
    return None
  return check


def int_list(v: str) -> str | None:
  """A ``Field`` check: comma-separated positive integers (``"2,5"``)."""
  try:
    out = [int(x) for x in str(v).split(",") if x.strip()]
  except ValueError:
    return f"expected comma-separated integers, got {v!r}"
  return None if out and min(out) >= 1 else f"expected positive integers, got {v!r}"


def subset(choices: Sequence[str]) -> Callable[[Any], str | None]:
  """A ``Field`` check: a comma-separated, duplicate-free, non-empty subset of ``choices``."""
  def check(v: str) -> str | None:
    out = [x.strip() for x in str(v).split(",") if x.strip()]
    if not out or set(out) - set(choices) or len(set(out)) != len(out):
      return f"expected a comma-separated subset of {list(choices)}, got {v!r}"
    return None
  return check


INT, FLOAT, STR, BOOL = (int,), (float, int), (str,), (bool,)


def _archs() -> tuple[str, ...]:
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  return tuple(models.ARCHS)


Schema = Mapping[str, Any]  # name -> Field | nested Schema

TRAIN_SCHEMA: dict[str, Any] = {
    "seed": Field(INT, "PRNG seed (init, ADL, data order).", at_least(0)),
    "batch_size": Field(INT, "global training batch size (all devices, all hosts).", at_least(1)),
    "eval_batch_size": Field(INT, "global eval batch size.", at_least(1)),
    "num_train_steps": Field(INT, "optimizer updates; <= 0 means num_epochs * steps_per_epoch.",
                             at_least(-1)),
    "num_epochs": Field(FLOAT, "epochs when num_train_steps <= 0.", at_least(0)),
    "loss": Field(STR, "training loss.", choices=LOSSES),
    "parallelism": Field(STR, "'jit' (mesh + NamedSharding, default) or 'pmap'.",
                         choices=PARALLELISMS),
    "log_every_steps": Field(INT, "train metrics averaged and written every N steps.", at_least(1)),
    "eval_every_steps": Field(INT, "validation every N steps (0: only at the end).", at_least(0)),
    "checkpoint_every_steps": Field(INT, "checkpoint every N steps (and at the end).",
                                    at_least(1)),
    "keep_checkpoints": Field(INT, "newest checkpoints kept.", at_least(1)),
    "keep_best_checkpoints": Field(INT, "best checkpoints kept by best_metric (0: off).",
                                   at_least(0)),
    "best_metric": Field(STR, "metric for keep-best, e.g. 'val/accuracy'."),
    "best_mode": Field(STR, "'max' or 'min'.", choices=("max", "min")),
    "async_checkpointing": Field(BOOL, "write checkpoints in a background thread."),
    "progress_bar": Field(BOOL, "tqdm progress bar (primary process only)."),
    "tensorboard": Field(BOOL, "TensorBoard summaries when tensorboard is installed."),
    "model": {
        "arch": Field(STR, "backbone.", choices=_archs),
        "dtype": Field(STR, "compute dtype; params and optimizer state stay float32.",
                       choices=DTYPES),
        "layer4_stride": Field(INT, "ResNet layer4 stride (official infoCAM: 1).",
                               choices=(1, 2)),
        "adl_positions": Field(STR, "ADL positions, e.g. '30 40 42' (ResNet), '3M 4M 53' (VGG)."),
        "adl_threshold": Field(FLOAT, "ADL drop threshold (0 = family default).", in_range(0, 1)),
        "adl_drop_rate": Field(FLOAT, "ADL drop rate (0 = family default).", in_range(0, 1)),
        "pretrained": Field(STR, "torchvision weights file ('' = from scratch)."),
    },
    "data": {
        "name": Field(STR, "dataset name."),
        "data_dir": Field(STR, "tfds data dir ('' = default)."),
        "train_split": Field(STR, "training split."),
        "eval_split": Field(STR, "validation split (model/threshold selection)."),
        "test_split": Field(STR, "test split (final numbers only)."),
        "image_size": Field(INT, "network input size (pixels).", at_least(8)),
        "resize_size": Field(INT, "resize before cropping (0 = image_size).", at_least(0)),
        "max_boxes": Field(INT, "boxes per example in a batch.", at_least(1)),
        "synthetic_num_train": Field(INT, "synthetic data: training examples.", at_least(1)),
        "synthetic_num_eval": Field(INT, "synthetic data: eval examples.", at_least(1)),
        "synthetic_num_classes": Field(INT, "synthetic data: classes.", at_least(2)),
    },
    "optimizer": {
        "name": Field(STR, "optimizer.", choices=OPTIMIZERS),
        "learning_rate": Field(FLOAT, "base learning rate.", in_range(0, 10, lo_open=True)),
        "momentum": Field(FLOAT, "SGD momentum.", in_range(0, 1, hi_open=True)),
        "nesterov": Field(BOOL, "Nesterov momentum (SGD)."),
        "weight_decay": Field(FLOAT, "L2 added to the gradient, all params (torch SGD).",
                              at_least(0)),
        "head_lr_multiplier": Field(FLOAT, "LR factor of the head (paper: 10).",
                                    in_range(0, 1e4, lo_open=True)),
        "schedule": Field(STR, "LR schedule.", choices=SCHEDULES),
        "decay_every_epochs": Field(FLOAT, "step schedule: decay period in epochs.",
                                    in_range(0, 1e9, lo_open=True)),
        "decay_every_steps": Field(INT, "step schedule: decay period in steps (> 0 overrides).",
                                   at_least(0)),
        "decay_factor": Field(FLOAT, "step schedule: factor per period.",
                              in_range(0, 1, lo_open=True)),
        "warmup_steps": Field(INT, "linear warm-up steps.", at_least(0)),
        "grad_clip_norm": Field(FLOAT, "clip gradient global norm (0 = off).", at_least(0)),
        "b1": Field(FLOAT, "Adam beta1.", in_range(0, 1, hi_open=True)),
        "b2": Field(FLOAT, "Adam beta2.", in_range(0, 1, hi_open=True)),
        "eps": Field(FLOAT, "Adam epsilon.", in_range(0, 1, lo_open=True)),
    },
    "distributed": {
        "initialize": Field(BOOL, "call jax.distributed.initialize (multi-host)."),
        "coordinator_address": Field(STR, "host:port of process 0 ('' = auto-detect)."),
        "num_processes": Field(INT, "process count (0 = auto-detect).", at_least(0)),
        "process_id": Field(INT, "this process's id (-1 = auto-detect).", at_least(-1)),
        "local_device_ids": Field(STR, "comma-separated local device ids ('' = all)."),
        "cpu_collectives": Field(STR, "CPU cross-process collectives.", choices=CPU_COLLECTIVES),
    },
}

def default_train_config():
  """A ``ConfigDict`` with every engine field at its default.

  >>> config = default_train_config()
  >>> config.batch_size, config.loss, config.optimizer.name
  (64, 'softmax', 'sgd')
  >>> validate_config(config)  # the defaults are valid
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.batch_size = 64
  c.eval_batch_size = 128
  c.num_train_steps = -1
  c.num_epochs = 10.0
  c.loss = "softmax"
  c.parallelism = "jit"
  c.log_every_steps = 50
  c.eval_every_steps = 0
  c.checkpoint_every_steps = 500
  c.keep_checkpoints = 3
  c.keep_best_checkpoints = 1
  c.best_metric = "val/accuracy"
  c.best_mode = "max"
  c.async_checkpointing = True
  c.progress_bar = True
  c.tensorboard = True
  c.model = ml_collections.ConfigDict(dict(
      arch="resnet_tiny", dtype="float32", layer4_stride=2, adl_positions="",
      adl_threshold=0.0, adl_drop_rate=0.0, pretrained=""))
  c.data = ml_collections.ConfigDict(dict(
      name="synthetic", data_dir="", train_split="train", eval_split="validation",
      test_split="test", image_size=32, resize_size=0, max_boxes=4,
      synthetic_num_train=512, synthetic_num_eval=128, synthetic_num_classes=4))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4,
      head_lr_multiplier=10.0, schedule="step", decay_every_epochs=60.0, decay_every_steps=0,
      decay_factor=0.1, warmup_steps=0, grad_clip_norm=0.0, b1=0.9, b2=0.999, eps=1e-8))
  c.distributed = ml_collections.ConfigDict(dict(
      initialize=False, coordinator_address="", num_processes=0, process_id=-1,
      local_device_ids="", cpu_collectives="gloo"))
  return c


def to_dict(config: Any) -> dict[str, Any]:
  """Plain nested dict (JSON-serialisable) of a ConfigDict or mapping."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  return {k: to_dict(v) if isinstance(v, Mapping) or hasattr(v, "to_dict") else v
          for k, v in dict(config).items()}


def extend_schema(base: Schema, extra: Schema) -> dict[str, Any]:
  """``base`` with the sections/fields of ``extra`` added (deep merge).

  >>> schema = extend_schema(TRAIN_SCHEMA, {"my_section": {"alpha": Field((float,), "a weight")}})
  >>> sorted(set(schema) - set(TRAIN_SCHEMA))
  ['my_section']
  """
  out = dict(base)
  for k, v in extra.items():
    if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
      out[k] = extend_schema(out[k], v)
    else:
      out[k] = v
  return out


def _walk(config: Mapping[str, Any], schema: Schema, prefix: str, errors: list[str]) -> None:
  for key, value in config.items():
    name = f"{prefix}{key}"
    spec = schema.get(key)
    if spec is None:
      hint = difflib.get_close_matches(key, list(schema), n=1)
      extra = f" (did you mean {prefix}{hint[0]!r}?)" if hint else ""
      errors.append(f"config.{name}: unknown key{extra}; known keys here: {sorted(schema)}")
      continue
    if isinstance(spec, Mapping):
      if not isinstance(value, Mapping):
        errors.append(f"config.{name}: must be a section (ConfigDict), got {value!r}")
        continue
      _walk(value, spec, name + ".", errors)
      continue
    problem = spec.validate(value)
    if problem:
      errors.append(f"config.{name}: {problem}")
  for key, spec in schema.items():
    if key not in config:
      errors.append(f"config.{prefix}{key}: missing ({spec.doc if isinstance(spec, Field) else 'section'})")


def validate_config(config: Any, schema: Schema = TRAIN_SCHEMA) -> None:
  """Raises one ``ValueError`` listing every problem in ``config``.

  Checks: no unknown or missing keys, types, ranges and choices (including the
  known model architectures), and cross-field constraints of the engine.

  >>> config = default_train_config()
  >>> config.batch_size = 0
  >>> config.optimizer.nme = "adam"  # a typo
  >>> try:
  ...   validate_config(config)
  ... except ValueError as e:
  ...   print(e)  # doctest: +ELLIPSIS
  Invalid config:
    config.batch_size: ...
    config.optimizer.nme: unknown key (did you mean optimizer.'name'?); ...
  """
  cfg = to_dict(config)
  errors: list[str] = []
  _walk(cfg, schema, "", errors)
  if not errors and "optimizer" in schema:
    errors += _cross_checks(cfg)
  if errors:
    raise ValueError("Invalid config:\n  " + "\n  ".join(errors))


def _cross_checks(cfg: Mapping[str, Any]) -> list[str]:
  errors = []
  opt, data, model = cfg["optimizer"], cfg["data"], cfg["model"]
  if cfg["num_train_steps"] <= 0 and cfg["num_epochs"] <= 0:
    errors.append("config.num_train_steps / num_epochs: one of them must be positive")
  if opt["name"] == "sgd" and opt["nesterov"] and opt["momentum"] == 0:
    errors.append("config.optimizer.nesterov: Nesterov momentum requires momentum > 0 "
                  "(as in torch.optim.SGD)")
  if data["resize_size"] and data["resize_size"] < data["image_size"]:
    errors.append(f"config.data.resize_size ({data['resize_size']}) must be 0 or >= "
                  f"image_size ({data['image_size']})")
  if cfg["keep_best_checkpoints"] and not cfg["best_metric"]:
    errors.append("config.best_metric: required when keep_best_checkpoints > 0")
  try:
    from infocam_jax import models  # pylint: disable=g-import-not-at-top
    family = models.arch_family(model["arch"])
    if model["adl_positions"]:
      valid = models.valid_adl_positions(model["arch"])
      bad = [p for p in model["adl_positions"].replace(",", " ").split() if p not in valid]
      if bad:
        errors.append(f"config.model.adl_positions: {bad} not valid for {model['arch']}; "
                      f"valid: {list(valid)}")
    if family != "resnet" and model["layer4_stride"] != 2:
      errors.append(f"config.model.layer4_stride: applies to ResNet only, not {model['arch']}")
  except ValueError as e:
    errors.append(f"config.model.arch: {e}")
  return errors


def validate_runtime(config: Any, *, num_devices: int, process_count: int,
                     num_train_examples: int | None = None) -> None:
  """Checks that need the device/process count (run after jax is initialised).

  >>> config = default_train_config()  # batch_size 64
  >>> validate_runtime(config, num_devices=8, process_count=2)  # fine
  >>> try:
  ...   validate_runtime(config, num_devices=3, process_count=1)
  ... except ValueError as e:
  ...   print(str(e).splitlines()[1])  # doctest: +ELLIPSIS
    config.batch_size (64) must be divisible by the number of devices (3); e.g. 63
  """
  cfg = to_dict(config)
  errors = []
  for key in ("batch_size", "eval_batch_size"):
    if cfg[key] % num_devices:
      errors.append(f"config.{key} ({cfg[key]}) must be divisible by the number of devices "
                    f"({num_devices}); e.g. {max(num_devices, cfg[key] // num_devices * num_devices)}")
    elif cfg[key] % process_count:
      errors.append(f"config.{key} ({cfg[key]}) must be divisible by the process count "
                    f"({process_count})")
  if cfg["parallelism"] == "pmap" and process_count > 1:
    errors.append("config.parallelism: 'pmap' runs on one process; use 'jit' for multi-host")
  if num_train_examples is not None and num_train_examples < cfg["batch_size"]:
    errors.append(f"config.batch_size ({cfg['batch_size']}) exceeds the training split size "
                  f"({num_train_examples})")
  if errors:
    raise ValueError("Invalid config for this run:\n  " + "\n  ".join(errors))
