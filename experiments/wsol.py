r"""Weakly supervised object localisation: train a backbone, then evaluate it.

Usage::

  python -m experiments.wsol --workdir=runs/wsol                       # offline default
  python -m experiments.wsol --config=experiments/configs/smoke.py --workdir=/tmp/smoke
  python -m experiments.wsol --config=experiments/configs/paper.py:cub_resnet50_adl \
      --workdir=runs/cub_r50_adl --config.data.data_dir=/data/tfds
  python -m experiments.wsol --config=... --workdir=DIR --config.optimizer.learning_rate=0.02
  python -m experiments.wsol --config=... --workdir=DIR --mode=evaluate    # from DIR/export

Re-running the same command on an existing ``--workdir`` resumes from its newest
valid checkpoint. All local devices are used (data parallel, ``jax.jit`` over a
mesh); multi-host runs set ``--config.distributed.initialize=True`` (plus the
coordinator fields where the cluster is not auto-detected).

Structure (for the CAM/infoCAM evaluation added on top):
``build_data``/``build_model`` -> ``train`` (engine: ``infocam_jax.train.fit``)
-> ``evaluate`` (classification on the test split; CAM metrics hook in here)
-> ``train_and_evaluate``. Metrics go to stdout and ``DIR/metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import jax
import numpy as np

from infocam_jax import train as engine
from infocam_jax.train import config as config_lib
from infocam_jax.train import synthetic

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "default.py")

# The experiment's config schema: the engine's fields (extend here for CAM evaluation).
SCHEMA = config_lib.TRAIN_SCHEMA

SYNTHETIC = "synthetic"


@dataclasses.dataclass
class DataBundle:
  """Pipelines and facts about the dataset of a run."""
  train: Any
  eval: Any | None
  test: Any | None
  num_classes: int
  class_counts: np.ndarray
  image_shape: tuple[int, int, int]
  name: str


def _dataset_names() -> tuple[str, ...]:
  """Known dataset names (a tfds config may follow a slash: "cluttered_digits/small")."""
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  return (SYNTHETIC, *tuple(data.BASE_SPLITS))


def check_dataset_name(name: str) -> None:
  """ValueError (with the known names) unless ``name``'s dataset is known."""
  names = _dataset_names()
  if name.split("/")[0] not in names:
    raise ValueError(f"Invalid config:\n  config.data.name: unknown dataset {name!r}; known: "
                     f"{list(names)} (optionally with a tfds config, e.g. "
                     "'cluttered_digits/small')")


def build_data(config: Any) -> DataBundle:
  """Train/val/test pipelines for ``config.data`` (this process's shard)."""
  d = config.data
  shard = dict(shard_index=jax.process_index(), num_shards=jax.process_count())
  size = d.image_size
  if d.name == SYNTHETIC:
    k = d.synthetic_num_classes
    train_src = synthetic.synthetic_source(d.synthetic_num_train, num_classes=k, image_size=size,
                                           seed=1000 + config.seed)
    eval_src = synthetic.synthetic_source(d.synthetic_num_eval, num_classes=k, image_size=size,
                                          seed=2000 + config.seed)
    test_src = synthetic.synthetic_source(d.synthetic_num_eval, num_classes=k, image_size=size,
                                          seed=3000 + config.seed)
    mk = lambda src, train, bs: synthetic.ArrayPipeline(src, batch_size=bs, train=train,
                                                        seed=config.seed, **shard)
    return DataBundle(
        train=mk(train_src, True, config.batch_size),
        eval=mk(eval_src, False, config.eval_batch_size),
        test=mk(test_src, False, config.eval_batch_size),
        num_classes=k, class_counts=train_src.class_counts, image_shape=(size, size, 3),
        name=SYNTHETIC)
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  data_dir = d.data_dir or None
  common = dict(image_size=size, resize_size=d.resize_size or size, seed=config.seed,
                max_boxes=d.max_boxes, **shard)

  def pipeline(split, train, batch_size):
    if not split:
      return None, None
    src = data.load_source(d.name, split, data_dir=data_dir)
    return src, data.make_pipeline(src, batch_size=_pipeline_batch(batch_size), train=train,
                                   **common)
  train_src, train_pipe = pipeline(d.train_split, True, config.batch_size)
  _, eval_pipe = pipeline(d.eval_split, False, config.eval_batch_size)
  _, test_pipe = pipeline(d.test_split, False, config.eval_batch_size)
  return DataBundle(train=train_pipe, eval=eval_pipe, test=test_pipe,
                    num_classes=int(train_src.num_classes),
                    class_counts=np.asarray(train_src.class_counts, np.int64),
                    image_shape=(size, size, 3), name=d.name)


def _pipeline_batch(global_batch: int) -> int:
  """The data contract's ``batch_size`` is the global batch (sharded by the pipeline)."""
  return global_batch


def model_options(config: Any) -> dict[str, Any]:
  """Keyword options of ``models.create_model`` from ``config.model``."""
  m = config.model
  opts: dict[str, Any] = {"dtype": m.dtype}
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  if models.arch_family(m.arch) == "resnet":
    opts["layer4_stride"] = m.layer4_stride
  if m.adl_positions:
    opts["adl_positions"] = m.adl_positions
    if m.adl_threshold:
      opts["adl_threshold"] = m.adl_threshold
    if m.adl_drop_rate:
      opts["adl_drop_rate"] = m.adl_drop_rate
  return opts


def build_model(config: Any, num_classes: int, *, for_training: bool = True) -> Any:
  """The Linen module of ``config.model`` (``bn_axis_name`` set for pmap)."""
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  axis = engine.parallel.step_axis_name(config.parallelism) if for_training else None
  return models.create_model(config.model.arch, num_classes, bn_axis_name=axis,
                             **model_options(config))


def train(config: Any, workdir: str, *, bundle: DataBundle | None = None) -> engine.FitResult:
  """Trains (or resumes) the backbone; returns the engine's ``FitResult``."""
  bundle = bundle or build_data(config)
  model = build_model(config, bundle.num_classes)
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  initial = None
  if config.model.pretrained:
    # torchvision/timm weights (.pth or .safetensors); a new head of K classes.
    initial = models.load_torchvision_weights(
        config.model.pretrained, config.model.arch, bundle.num_classes,
        key=jax.random.PRNGKey(config.seed + 1), strict=False, **model_options(config))
  return engine.fit(
      config, workdir, model=model, train_data=bundle.train, eval_data=bundle.eval,
      num_classes=bundle.num_classes, image_shape=bundle.image_shape,
      class_counts=bundle.class_counts,
      head_mask_fn=lambda params: models.head_param_mask(config.model.arch, params),
      export_metadata={"arch": config.model.arch, "model_options": model_options(config),
                       "dataset": bundle.name, "pretrained": config.model.pretrained},
      initial_variables=initial)


def load_exported(workdir: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
  """``(model, variables, metadata)`` of ``DIR/export`` (no optimizer state).

  The model is rebuilt from the export's metadata (arch, options, classes),
  for inference (``model.apply(variables, images, train=False)``).
  """
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  variables, meta = engine.load_variables(os.path.join(workdir, "export"))
  model = models.create_model(meta["arch"], int(meta["num_classes"]), **meta["model_options"])
  return model, variables, meta


def evaluate(config: Any, workdir: str, *, bundle: DataBundle | None = None,
             parallel: Any = None) -> dict[str, Any]:
  """Classification metrics of the exported model on the test split.

  Returns ``{'test/accuracy', 'test/mean_per_class_accuracy', 'test/loss',
  'test/mi', ...}`` (accuracies as fractions, loss and MI in nats); also
  appended to ``DIR/metrics.jsonl``. CAM/infoCAM localisation plugs in here.
  ``parallel``: a ``DataParallel`` whose ``eval_step`` is already compiled for
  this model (reused from training to skip a recompilation).
  """
  bundle = bundle or build_data(config)
  if bundle.test is None:
    raise ValueError("config.data.test_split is empty: nothing to evaluate.")
  model, variables, meta = load_exported(workdir)
  par = parallel
  if par is None or par.kind != "jit" or par.eval_step is None:
    par = engine.DataParallel()
    config_lib.validate_runtime(config, num_devices=par.num_devices,
                                process_count=jax.process_count())
    prior = np.asarray(bundle.class_counts, np.float64)
    prior = prior / prior.sum()
    par.compile(None, engine.make_eval_step(model, num_classes=bundle.num_classes,
                                            loss=config.loss, class_prior=prior))
  state = engine.TrainState(step=np.int32(meta["step"]), params=variables["params"],
                            batch_stats=variables.get("batch_stats", {}), opt_state=(),
                            rng=np.zeros(2, np.uint32))
  state = par.put_state(state)
  metrics = {f"test/{k}": v for k, v in
             engine.evaluate_classification(par, state, bundle.test).items()}
  writer = engine.MetricWriter(workdir, enabled=jax.process_index() == 0, tensorboard=False)
  writer.write(int(meta["step"]), metrics)
  return metrics


def train_and_evaluate(config: Any, workdir: str) -> dict[str, Any]:
  """Train (or resume), then evaluate; returns a summary dict."""
  bundle = build_data(config)
  result = train(config, workdir, bundle=bundle)
  summary: dict[str, Any] = {"step": result.step, "num_train_steps": result.num_train_steps,
                             "val": result.last_eval, "interrupted": result.interrupted}
  if result.export_dir is not None:
    summary["test"] = evaluate(config, workdir, bundle=bundle, parallel=result.parallel)
  return summary


def main(argv: list[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise ValueError(f"unexpected positional arguments: {argv[1:]}")
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  config = flags.FLAGS.config
  workdir = flags.FLAGS.workdir
  mode = flags.FLAGS.mode
  try:
    config_lib.validate_config(config, SCHEMA)
    check_dataset_name(config.data.name)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  d = config.distributed
  if d.initialize:
    engine.initialize_distributed(
        coordinator_address=d.coordinator_address, num_processes=d.num_processes,
        process_id=d.process_id, local_device_ids=d.local_device_ids,
        cpu_collectives=d.cpu_collectives)
  if mode == "evaluate":
    out = evaluate(config, workdir)
  elif mode == "train":
    result = train(config, workdir)
    out = {"step": result.step, "val": result.last_eval}
  else:
    out = train_and_evaluate(config, workdir)
  if jax.process_index() == 0:
    print(_summary_line(out), flush=True)


def _summary_line(out: dict[str, Any]) -> str:
  import json  # pylint: disable=g-import-not-at-top
  return "summary: " + json.dumps(out, sort_keys=True, default=float)


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, export).",
                      required=True)
  flags.DEFINE_enum("mode", "train_and_evaluate", ["train_and_evaluate", "train", "evaluate"],
                    "What to run.")
  config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Config file (Python, get_config).",
                                  lock_config=True)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
