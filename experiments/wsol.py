r"""Weakly supervised object localisation: train a backbone, then evaluate CAM and infoCAM.

Usage::

  python -m experiments.wsol --workdir=runs/wsol                       # offline default
  python -m experiments.wsol --config=experiments/configs/smoke.py --workdir=/tmp/smoke
  python -m experiments.wsol --config=experiments/configs/paper.py:cub_resnet50 \
      --workdir=runs/cub_r50 --config.data.data_dir=/data/tfds \
      --config.model.pretrained=/weights/resnet50-19c8e357.pth
  python -m experiments.wsol --config=... --workdir=DIR --config.optimizer.learning_rate=0.02
  python -m experiments.wsol --config=... --workdir=DIR --mode=evaluate    # from DIR/export

Re-running the same command on an existing ``--workdir`` resumes from its newest
valid checkpoint. A run stopped early by SIGTERM/SIGINT (or, multi-host, by JAX's
preemption notice) checkpoints first and exits with status 75 (``EX_TEMPFAIL``:
re-run to continue), so a wrapper can tell it from a finished run (0) and from
bad input (2). Training uses all local devices (data parallel, ``jax.jit``
over a mesh); multi-host runs set ``--config.distributed.initialize=True``.

What a run does
---------------
``build_data`` -> ``train`` (``infocam_jax.train.fit``: checkpoints, metrics,
``DIR/export``) -> ``evaluate``: one ordered pass over the validation split and
one over the test split; per batch one forward pass gives the logits and the
feature map, every method's map is formed from those features and streamed
through one ``infocam_jax.localization`` evaluator per protocol
(``experiments/_wsol_eval.py``). Then the thresholds are selected on the
validation split, the tables are printed and ``results.json``,
``curves.json`` and the figures are written.

Methods (``config.wsol.methods``): ``cam``, ``infocam`` (mean of the other
classes, full padding), ``infocam_min`` (lowest-scoring class), ``infocam_same``,
``infocam_min_same`` (aligned region sum), ``grad_cam``; baselines (always):
``centre_box`` (centred box, size chosen on validation) and ``full_image_box``.
Protocols (``config.wsol.protocols``): ``clean`` (default and primary),
``paper`` (the official infoCAM evaluation with its quirks; on CUB and
Tiny-ImageNet also the official GT-box transforms), ``wsolevaluation``.

Selection, never on the test split
----------------------------------
* Checkpoint (``config.wsol.checkpoint``): ``"last"`` (the final step, as
  wsolevaluation recommends) or ``"best"`` (the keep-best checkpoint by
  ``config.best_metric`` = validation accuracy, evaluated every
  ``config.eval_every_steps`` on ``config.data.eval_split``).
* Threshold: each method's (and the centred box's) threshold maximises its
  validation curve (V1 box accuracy at IoU 0.5); test metrics at that
  threshold are the ``*_val_selected`` keys. ``max_box_acc`` and
  ``max_box_acc_v2`` are the definitional MaxBoxAcc / MaxBoxAccV2 of the test
  split, which maximise over thresholds on test *by definition* (marked ``*``
  in the printed tables); ``top1_loc`` / ``gt_known_loc`` are read at the fixed
  ``config.wsol.loc_threshold`` (0.2, the official default).

``DIR/results.json`` (top-level keys)
-------------------------------------
* ``methods``: name -> metrics of the primary protocol (``clean`` when
  evaluated) on the test split, in percent: ``top1_cls``, ``top1_loc``,
  ``gt_known_loc``, ``max_box_acc``, ``max_box_acc_v2`` (the contract's five),
  plus ``val_threshold``, ``top1_loc_val_selected``,
  ``gt_known_loc_val_selected``, ``max_box_acc_val_selected``,
  ``max_box_acc_v2_val_selected``, ``val_thresholds_v2`` and details. Includes
  the baselines ``centre_box`` and ``full_image_box``.
* ``baselines``: the two baseline entries again (same values as in ``methods``).
* ``primary_protocol``; ``protocols``: protocol -> name -> the same metrics;
  ``protocol_notes`` (what each protocol does, which GT transform was used).
* ``classification``: ``val`` / ``test`` accuracy and mean per-class accuracy
  (percent), loss and MI estimate (nats).
* ``selection``: which checkpoint (step, rule, split) and how thresholds were
  chosen.
* ``dataset``, ``config``, ``seed``, ``mode``, ``versions`` (python, jax,
  jaxlib, flax, optax, orbax-checkpoint, numpy, ...), ``device`` (platform,
  kind, counts), ``wall_time_s`` / ``cpu_time_s`` (data, train, eval, figures,
  total; train is null in evaluation-only mode), ``figures`` (PNG paths),
  ``curves_file`` (``curves.json``: every threshold curve, val and test).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any

import jax
import numpy as np

from infocam_jax import _io as io
from infocam_jax import train as engine
from infocam_jax.train import config as config_lib
from infocam_jax.train import synthetic

from experiments import _wsol_eval as wsol_eval

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "default.py")
# Exit status of a run stopped early with a checkpoint (sysexits.h EX_TEMPFAIL).
EXIT_INTERRUPTED = 75

SYNTHETIC = "synthetic"
Field = config_lib.Field


def _names_check(known, field):
  def check(v):
    try:
      wsol_eval.parse_names(v, known, field)
    except ValueError as e:
      return str(e).split(": ", 1)[1]
    return None
  return check


def _unit_interval(v):
  return None if 0.0 <= v < 1.0 else f"must lie in [0, 1), got {v!r}"


def _step_check(v):
  if not 0.0 < v <= 0.5:
    return f"must lie in (0, 0.5], got {v!r}"
  return None


# The experiment's additions to the engine's schema.
WSOL_SCHEMA: dict[str, Any] = {
    "data": {
        "flip": Field((bool,), "random horizontal flip in training (False for digits: a "
                      "mirrored digit is another shape)."),
        "random_crop": Field((bool,), "random crop in training (else the centre crop)."),
        "num_workers": Field((int,), "input worker processes (0: threads; GPUs need ~8-14).",
                             lambda v: None if v >= 0 else f"must be >= 0, got {v!r}"),
    },
    "wsol": {
        "methods": Field((str,), "maps to evaluate, comma-separated.",
                         _names_check(tuple(wsol_eval.METHODS), "methods")),
        "protocols": Field((str,), "evaluation protocols, comma-separated (first = primary).",
                           _names_check(wsol_eval.PROTOCOLS, "protocols")),
        "region_size": Field((int,), "infoCAM region-sum window k (paper: 4 on CUB's 14x14, "
                             "3 on Tiny's 4x4 maps).",
                             lambda v: None if v >= 1 else f"must be >= 1, got {v!r}"),
        "loc_threshold": Field((float, int), "map threshold of the fixed-threshold Top-1 / "
                               "GT-known Loc (official 0.2).", _unit_interval),
        "threshold_step": Field((float,), "threshold grid step of clean/wsolevaluation (the "
                                "paper protocol uses the official 0.05 grid).", _step_check),
        "checkpoint": Field((str,), "'last' or 'best' (keep-best by best_metric on the "
                            "validation split).", choices=("last", "best")),
        "paper_gt": Field((str,), "GT boxes of the paper protocol: 'auto' (CUB: official "
                          "transform, Tiny-ImageNet: official mis-parse, else exact).",
                          choices=wsol_eval.PAPER_GT),
        "num_figure_images": Field((int,), "test images in the localisation grid (0: none).",
                                   lambda v: None if 0 <= v <= 64 else
                                   f"must lie in [0, 64], got {v!r}"),
        "official_method": Field((str,), "the method the official script's CAM flags evaluate "
                                 "('' = none): compared with paper_top1_loc.",
                                 choices=("", *wsol_eval.METHODS)),
        "paper_top1_loc": Field((float, int), "the paper's Top-1 Loc for this run (0 = none).",
                                lambda v: None if 0 <= v <= 100 else
                                f"must lie in [0, 100], got {v!r}"),
    },
}

SCHEMA = config_lib.extend_schema(config_lib.TRAIN_SCHEMA, WSOL_SCHEMA)


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


def build_data(config: Any, *, sharded: bool = True) -> DataBundle:
  """Train/val/test pipelines for ``config.data``.

  ``sharded``: this process's rows of every global batch (training); False
  gives every process the whole batches (the localisation evaluation runs the
  full split on each process). Raises ``data.DatasetUnavailableError`` (what is
  missing, where it was looked for, how to obtain it) for a missing dataset.
  """
  d = config.data
  shard = (dict(shard_index=jax.process_index(), num_shards=jax.process_count()) if sharded
           else dict(shard_index=0, num_shards=1))
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
                max_boxes=d.max_boxes, num_workers=d.num_workers, **shard)

  def pipeline(split, train, batch_size):
    if not split:
      return None, None
    src = data.load_source(d.name, split, data_dir=data_dir)
    extra = dict(flip=d.flip, random_crop=d.random_crop) if train else {}
    return src, data.make_pipeline(src, batch_size=batch_size, train=train, **common, **extra)
  train_src, train_pipe = pipeline(d.train_split, True, config.batch_size)
  _, eval_pipe = pipeline(d.eval_split, False, config.eval_batch_size)
  _, test_pipe = pipeline(d.test_split, False, config.eval_batch_size)
  return DataBundle(train=train_pipe, eval=eval_pipe, test=test_pipe,
                    num_classes=int(train_src.num_classes),
                    class_counts=np.asarray(train_src.class_counts, np.int64),
                    image_shape=(size, size, 3), name=d.name)


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


def pretrained_path(config: Any) -> str:
  """``config.model.pretrained`` with ``~`` expanded ('' when training from scratch)."""
  return os.path.expanduser(config.model.pretrained) if config.model.pretrained else ""


def check_pretrained(config: Any) -> None:
  """FileNotFoundError (what, where, how to obtain) if the pretrained weights file is missing."""
  path = pretrained_path(config)
  if not path or os.path.isfile(path):
    return
  arch = config.model.arch
  hint = _TORCHVISION_FILES.get(arch)
  how = (f"Download torchvision's ImageNet weights for {arch} ({hint}) on a machine with "
         "internet access and copy the file there" if hint else
         "Point it at a torchvision-format .pth or .safetensors file")
  raise FileNotFoundError(
      f"Pretrained weights for {arch} not found.\nLooked for: {path} "
      f"(config.model.pretrained).\n{how}, or pass --config.model.pretrained=/path/to/file "
      "(--config.model.pretrained='' trains from scratch, which does not reproduce the paper).")


_TORCHVISION_FILES = {
    "resnet50": "https://download.pytorch.org/models/resnet50-19c8e357.pth, the file the "
                "official code loaded (torchvision 0.4); resnet50-0676ba61.pth holds the same "
                "IMAGENET1K_V1 weights",
    "vgg16_gap": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
}


def train(config: Any, workdir: str, *, bundle: DataBundle | None = None) -> engine.FitResult:
  """Trains (or resumes) the backbone; returns the engine's ``FitResult``."""
  bundle = bundle or build_data(config)
  model = build_model(config, bundle.num_classes)
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  initial = None
  if config.model.pretrained:
    check_pretrained(config)
    # torchvision/timm weights (.pth or .safetensors); a new head of K classes.
    initial = models.load_torchvision_weights(
        pretrained_path(config), config.model.arch, bundle.num_classes,
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
  export = os.path.join(workdir, "export")
  if not os.path.isdir(os.path.join(export, "variables")):
    raise FileNotFoundError(
        f"No exported model in {export}: the run in {workdir} has not finished training "
        "(re-run the same command without --mode=evaluate to resume it).")
  variables, meta = engine.load_variables(export)
  model = models.create_model(meta["arch"], int(meta["num_classes"]), **meta["model_options"])
  return model, variables, meta


def load_for_evaluation(config: Any, workdir: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
  """``(model, variables, selection)`` of the checkpoint chosen by ``config.wsol.checkpoint``.

  ``"last"``: the export (the final step). ``"best"``: the keep-best
  checkpoint by ``config.best_metric`` (validation split), read with plain
  orbax; its optimizer state is ignored.
  """
  model, variables, meta = load_exported(workdir)
  selection = {"checkpoint": config.wsol.checkpoint, "final_step": int(meta["step"])}
  if config.wsol.checkpoint == "last":
    selection.update(step=int(meta["step"]), selected_on=None,
                     rule="the last training step (DIR/export); no checkpoint selection")
    return model, variables, selection
  best = engine.load_best_variables(os.path.join(workdir, "checkpoints"),
                                    best_metric=config.best_metric, best_mode=config.best_mode)
  if best is None:
    raise FileNotFoundError(f"config.wsol.checkpoint='best' but {workdir}/checkpoints holds no "
                            "checkpoint.")
  variables, step = best
  value = None
  for rec in engine.read_metrics(workdir):
    if rec.get("step") == step and config.best_metric in rec:
      value = rec[config.best_metric]
  selection.update(
      step=int(step), selected_on=config.data.eval_split, metric=config.best_metric,
      metric_value=value,
      rule=f"keep-best checkpoint by {config.best_metric} ({config.best_mode}) on the "
           f"'{config.data.eval_split}' split, evaluated every {config.eval_every_steps} steps "
           "and at the end")
  return model, variables, selection


def _figure_indices(num_test: int, count: int) -> list[int]:
  """A fixed sample of test positions for the figure (seed 0, independent of the run seed)."""
  if count <= 0 or num_test <= 0:
    return []
  return sorted(np.random.default_rng(0).permutation(num_test)[:count].tolist())


def evaluate(config: Any, workdir: str, *, bundle: DataBundle | None = None,
             parallel: Any = None, timings: dict[str, Any] | None = None,
             mode: str = "evaluate") -> dict[str, Any]:
  """CAM/infoCAM localisation and classification of the trained model on val and test.

  Writes ``DIR/results.json`` (see the module docstring), ``DIR/curves.json``
  and the figures, prints the tables, appends the headline test metrics to
  ``DIR/metrics.jsonl`` and returns the results dict. Evaluation runs a
  jitted forward pass on the first local device; with several processes
  every process evaluates the whole splits and process 0 writes.

  Args:
    config: the run config (validated).
    workdir: the run directory (needs ``DIR/export``; ``DIR/checkpoints`` for
      ``config.wsol.checkpoint='best'``).
    bundle: the run's data (rebuilt when None).
    parallel: unused (kept for API compatibility: the engine's classification
      step is not needed, the logits come from the same forward pass).
    timings: wall/CPU times measured by the caller (data, train) to record.
    mode: recorded in the results (``"train_and_evaluate"`` or ``"evaluate"``).
  """
  del parallel
  t0, c0 = time.time(), time.process_time()
  timings = dict(timings or {})
  w = config.wsol
  if jax.process_count() > 1 or bundle is None:
    t, c = time.time(), time.process_time()
    bundle = build_data(config, sharded=False)
    timings.setdefault("data_s", time.time() - t)
    timings.setdefault("data_cpu_s", time.process_time() - c)
  if bundle.eval is None or bundle.test is None:
    raise ValueError("The WSOL evaluation needs config.data.eval_split (threshold selection) "
                     "and config.data.test_split (reported numbers).")
  methods = wsol_eval.parse_names(w.methods, tuple(wsol_eval.METHODS), "config.wsol.methods")
  protocols = wsol_eval.parse_names(w.protocols, wsol_eval.PROTOCOLS, "config.wsol.protocols")
  model, variables, selection = load_for_evaluation(config, workdir)
  image_size = int(config.data.image_size)
  resize_size = int(config.data.resize_size or image_size)
  paper_gt = wsol_eval.resolve_paper_gt(w.paper_gt, bundle.name)
  gt_transforms = {p: (paper_gt if p == "paper" else "exact") for p in protocols}
  evaluators = wsol_eval.make_evaluators(protocols, image_size=image_size,
                                         threshold_step=float(w.threshold_step),
                                         loc_threshold=float(w.loc_threshold))
  forward = wsol_eval.make_forward(model, methods, int(w.region_size), image_size)
  variables = jax.device_put(variables, jax.local_devices()[0])
  prior = np.asarray(bundle.class_counts, np.float64)
  prior = prior / prior.sum()
  common = dict(methods=methods, evaluators=evaluators, gt_transforms=gt_transforms,
                resize_size=resize_size, image_size=image_size, loss=config.loss,
                class_prior=prior, num_classes=bundle.num_classes,
                progress=bool(config.progress_bar) and jax.process_index() == 0)
  if jax.process_index() == 0:
    io.echo(f"Evaluating {', '.join(methods)} + baselines (centre_box, full_image_box), "
            f"protocols {', '.join(protocols)}, checkpoint: {selection['checkpoint']} (step "
            f"{selection['step']}).")
  val = wsol_eval.evaluate_split(forward, variables, bundle.eval,
                                 split=config.data.eval_split, **common)
  test = wsol_eval.evaluate_split(
      forward, variables, bundle.test, split=config.data.test_split,
      figure_indices=_figure_indices(bundle.test.num_examples, int(w.num_figure_images)),
      **common)
  summary = wsol_eval.summarize(val, test, evaluators)
  primary = protocols[0]

  tf, cf = time.time(), time.process_time()
  figures: list[str] = []
  results: dict[str, Any] = {}
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    figures = wsol_eval.write_figures(workdir, val, test, summary, evaluators, methods,
                                      image_size)
  timings.update(eval_val_s=val.wall_s, eval_val_cpu_s=val.cpu_s, eval_test_s=test.wall_s,
                 eval_test_cpu_s=test.cpu_s, figures_s=time.time() - tf,
                 figures_cpu_s=time.process_time() - cf,
                 evaluate_s=time.time() - t0, evaluate_cpu_s=time.process_time() - c0)
  total = timings.pop("_start", None)
  total_cpu = timings.pop("_start_cpu", None)
  wall = {k: (None if v is None else round(float(v), 2)) for k, v in timings.items()
          if not k.endswith("cpu_s")}
  cpu = {k.replace("_cpu_s", "_s"): round(float(v), 2) for k, v in timings.items()
         if k.endswith("cpu_s") and v is not None}
  wall.setdefault("train_s", None)
  if total is not None:
    wall["total_s"] = round(time.time() - total, 2)
    cpu["total_s"] = round(time.process_time() - total_cpu, 2)

  selection.update(
      threshold_selected_on=config.data.eval_split,
      threshold_rule=("per method and protocol, the first maximiser of the validation curve "
                      "of V1 box accuracy at IoU 0.5 (V2: one threshold per IoU); test metrics "
                      "at that threshold are the *_val_selected keys"),
      definitional_max_over_test=("max_box_acc and max_box_acc_v2 maximise over thresholds "
                                  "on the test split by definition (Choe et al. 2020)"),
      fixed_threshold=("top1_loc and gt_known_loc are read at loc_threshold="
                       f"{float(w.loc_threshold):g} (the official --cam-thr)"),
      test_split=config.data.test_split)
  comparison = None
  om = w.official_method
  if om and "paper" in summary and om in summary["paper"]:
    r = summary["paper"][om]
    comparison = {
        "method": om, "protocol": "paper", "top1_loc": r["top1_loc"],
        "gt_known_loc": r["gt_known_loc"], "top1_cls": r["top1_cls"],
        "top1_loc_val_selected": r["top1_loc_val_selected"],
        "paper_top1_loc": float(w.paper_top1_loc) or None,
        "note": ("the official script's CAM flags evaluate this method; the paper's number "
                 "(paperswithcode) does not state which backbone/ADL configuration produced it")}
  results = {
      "experiment": "wsol",
      "mode": mode,
      "primary_protocol": primary,
      "methods": summary[primary],
      "baselines": {b: summary[primary][b] for b in wsol_eval.BASELINES},
      "protocols": summary,
      "protocol_notes": {p: {"protocol": wsol_eval.PROTOCOL_NOTES[p],
                             "gt_boxes": wsol_eval.PAPER_GT_NOTES[gt_transforms[p]],
                             "gt_transform": gt_transforms[p],
                             "cam_thresholds": f"{len(evaluators[p].cam_thresholds)} values in "
                             f"[0, 1), step {evaluators[p].cam_thresholds[1]:g}"}
                         for p in protocols},
      "method_notes": {**{m: wsol_eval.METHODS[m].description for m in methods},
                       **wsol_eval.BASELINES, "region_size": int(w.region_size)},
      "classification": {"val": val.classification, "test": test.classification},
      "paper_comparison": comparison,
      "selection": selection,
      "dataset": {"name": bundle.name, "train_split": config.data.train_split,
                  "val_split": config.data.eval_split, "test_split": config.data.test_split,
                  "num_val": val.num_images, "num_test": test.num_images,
                  "num_classes": bundle.num_classes, "image_size": image_size,
                  "resize_size": resize_size},
      "seed": int(config.seed),
      "config": config_lib.to_dict(config),
      "versions": io.versions("numba", "tensorflow_datasets", "grain", "matplotlib"),
      "device": io.device_info(),
      "wall_time_s": wall,
      "cpu_time_s": cpu,
      "figures": [os.path.relpath(p, workdir) for p in figures],
      "curves_file": "curves.json",
      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }
  if jax.process_index() == 0:
    io.write_json(os.path.join(workdir, "curves.json"), wsol_eval.curves(val, test, evaluators),
                  indent=1)
    io.write_json(os.path.join(workdir, "results.json"), results, indent=1)
    writer = engine.MetricWriter(workdir, enabled=True, tensorboard=False, echo=lambda s: None)
    flat = {f"test/{k}": v for k, v in test.classification.items() if k != "count"}
    for m in ("cam", "infocam", "centre_box"):
      if m in summary[primary]:
        for k in ("top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2",
                  "max_box_acc_val_selected"):
          if summary[primary][m][k] is not None:
            flat[f"test/{m}/{k}"] = summary[primary][m][k]
    writer.write(int(selection["step"]), flat)
    writer.close()
    io.echo(report(results, workdir))
  return results


def report(results: dict[str, Any], workdir: str) -> str:
  """The printed summary: tables per protocol, selection, figures."""
  ds, sel = results["dataset"], results["selection"]
  cls = results["classification"]["test"]
  names = list(results["methods"])
  lines = ["", f"WSOL results: {ds['name']} '{ds['test_split']}' split ({ds['num_test']:,} "
           f"images), top-1 classification {cls['accuracy']:.2f}% (mean per class "
           f"{cls['mean_per_class_accuracy']:.2f}%).",
           f"Checkpoint: {sel['checkpoint']} (step {sel['step']}): {sel['rule']}.",
           f"Thresholds chosen on the '{sel['threshold_selected_on']}' split ({ds['num_val']:,} "
           "images), never on test: '@val' columns are test metrics at that threshold; "
           "'@.2' at the fixed official 0.2;",
           "* MaxBoxAcc / MaxBoxAccV2 maximise over thresholds on test by definition."]
  for p, rows in results["protocols"].items():
    notes = results["protocol_notes"][p]
    lines += ["", f"[{p} protocol] {notes['protocol']}.", f"GT boxes: {notes['gt_boxes']}.",
              wsol_eval.format_table(results["protocols"], p, names)]
  comp = results.get("paper_comparison")
  if comp:
    paper = (f" (paper: {comp['paper_top1_loc']:.2f})" if comp.get("paper_top1_loc") else "")
    lines += ["", f"Paper comparison: {comp['method']} (the official script's flags), paper "
              f"protocol: Top-1 Loc@0.2 {comp['top1_loc']:.2f}{paper}, GT-known Loc@0.2 "
              f"{comp['gt_known_loc']:.2f}, Top-1 Cls {comp['top1_cls']:.2f}."]
  figs = results.get("figures") or []
  lines += ["", f"Results: {os.path.join(workdir, 'results.json')} (curves: "
            f"{os.path.join(workdir, results['curves_file'])})"]
  if figs:
    lines.append("Figures: " + ", ".join(os.path.join(workdir, f) for f in figs))
  wall = results["wall_time_s"]
  if wall.get("total_s") is not None:
    lines.append(f"Wall time {wall['total_s']:.0f} s (CPU {results['cpu_time_s']['total_s']:.0f} "
                 f"s) on {results['device']['device_count']} {results['device']['platform']} "
                 "device(s).")
  return "\n".join(lines)


def train_and_evaluate(config: Any, workdir: str, *, bundle: DataBundle | None = None,
                       started: tuple[float, float] | None = None) -> dict[str, Any]:
  """Train (or resume), then evaluate; returns a short summary dict.

  ``started``: ``(time.time(), time.process_time())`` when the run began (the
  recorded total includes data preparation done before this call).
  """
  t0, c0 = started or (time.time(), time.process_time())
  if bundle is None:
    bundle = build_data(config)
  timings: dict[str, Any] = {"_start": t0, "_start_cpu": c0, "data_s": time.time() - t0,
                             "data_cpu_s": time.process_time() - c0}
  t, c = time.time(), time.process_time()
  result = train(config, workdir, bundle=bundle)
  timings.update(train_s=time.time() - t, train_cpu_s=time.process_time() - c)
  summary: dict[str, Any] = {"step": result.step, "num_train_steps": result.num_train_steps,
                             "val": result.last_eval, "interrupted": result.interrupted}
  if result.export_dir is not None:
    res = evaluate(config, workdir, bundle=bundle, timings=timings, mode="train_and_evaluate")
    summary["results"] = os.path.join(workdir, "results.json")
    summary["test"] = {m: {k: res["methods"][m][k] for k in
                           ("top1_cls", "top1_loc", "gt_known_loc", "max_box_acc",
                            "max_box_acc_v2")} for m in ("cam", "infocam") if m in res["methods"]}
  return summary


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def main(argv: list[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise ValueError(f"unexpected positional arguments: {argv[1:]}")
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  config = flags.FLAGS.config
  workdir = os.path.abspath(flags.FLAGS.workdir)
  mode = flags.FLAGS.mode
  try:
    config_lib.validate_config(config, SCHEMA)
    check_dataset_name(config.data.name)
  except ValueError as e:
    _fail(str(e))
  missing = []
  if mode != "evaluate":
    try:
      check_pretrained(config)
    except FileNotFoundError as e:
      missing.append(str(e))
  engine.initialize_distributed_from_config(config.distributed)
  from infocam_jax import data  # pylint: disable=g-import-not-at-top
  t0, c0 = time.time(), time.process_time()
  try:
    bundle = build_data(config)
  except data.DatasetUnavailableError as e:
    missing.append(str(e))
  if missing:
    _fail("cannot run this config, input missing:\n\n" + "\n\n".join(missing))
  try:
    if mode == "evaluate":
      out = evaluate(config, workdir, bundle=bundle,
                     timings={"_start": t0, "_start_cpu": c0, "data_s": time.time() - t0,
                              "data_cpu_s": time.process_time() - c0})
      out = {"results": os.path.join(workdir, "results.json")}
    elif mode == "train":
      result = train(config, workdir, bundle=bundle)
      out = {"step": result.step, "val": result.last_eval, "interrupted": result.interrupted}
    else:
      out = train_and_evaluate(config, workdir, bundle=bundle, started=(t0, c0))
  except FileNotFoundError as e:
    _fail(str(e))
  if jax.process_index() == 0:
    print(_summary_line(out), flush=True)
  if out.get("interrupted"):
    sys.exit(EXIT_INTERRUPTED)


def _summary_line(out: dict[str, Any]) -> str:
  return "summary: " + json.dumps(out, sort_keys=True, default=float)


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, export, results).",
                      required=True)
  flags.DEFINE_enum("mode", "train_and_evaluate", ["train_and_evaluate", "train", "evaluate"],
                    "What to run.")
  config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Config file (Python, get_config).",
                                  lock_config=True)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
