r"""Weakly supervised object localisation: train a backbone, then evaluate CAM and infoCAM.

  python -m experiments.wsol --workdir=runs/wsol                       # offline default
  python -m experiments.wsol --config=experiments/configs/smoke.py --workdir=/tmp/smoke
  python -m experiments.wsol --config=experiments/configs/paper.py:cub_resnet50 \
      --workdir=runs/cub_r50 --config.data.data_dir=/data/tfds \
      --config.model.pretrained=/weights/resnet50-19c8e357.pth
  python -m experiments.wsol --config=... --workdir=DIR --mode=evaluate    # from DIR/export

Re-running the same command on an existing ``--workdir`` resumes from its
newest checkpoint; a run directory holding another *training* config is
refused (``config.wsol.*`` only changes the evaluation), and so is
``--mode=evaluate`` with any field that changes what was trained or what data
is evaluated (seed, image size, crop, dataset, splits, model: the rule of
``infocam_jax.train.rundir``). Exit statuses: 0
done, 2 bad input or missing data/weights, 75 stopped early by SIGTERM/SIGINT
(or, multi-host, JAX's preemption notice) after checkpointing: re-run to
continue. Training uses all local devices (data parallel, ``jax.jit`` over a
mesh); multi-host runs set ``--config.distributed.initialize=True``.

An evaluation never replaces the results of another one: ``DIR/results.json``
holds the evaluation with the run's own ``config.wsol``; evaluating with other
settings (``--mode=evaluate --config.wsol.region_size=3``) writes
``DIR/eval/<name>/`` (``--eval_name``, default from the changed fields) with
its own results, curves, figures and config, unless ``--overwrite``.

The library does the work: ``infocam_jax.train.build`` (data, model, weights,
which checkpoint), ``infocam_jax.train.fit`` and
``infocam_jax.evaluators.wsol`` (the maps of every method through the box
metric of every protocol); ``experiments/_wsol_results.py`` holds this
experiment's record (thresholds chosen on validation, summaries, curves,
figures, ``results.json``).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
from absl import flags

from infocam_jax import train as engine
from infocam_jax import io
from infocam_jax.train import config as config_lib
from infocam_jax.train import build, rundir

from experiments import _common
from experiments import _wsol_results as records


DEFAULT_CONFIG = os.path.join(_common.CONFIG_DIR, "default.py")
Field = config_lib.Field
#: Config fields only the evaluation reads: changing them never retrains.
EVALUATION_FIELDS = frozenset({"wsol.*"})


def _names_check(known, field):
  def check(v):
    try:
      records.parse_names(v, known, field)
    except ValueError as e:
      return str(e).split(": ", 1)[1]
    return None
  return check


# The experiment's additions to the engine's schema.
SCHEMA = config_lib.extend_schema(config_lib.TRAIN_SCHEMA, {
    "data": {
        "flip": Field((bool,), "random horizontal flip in training (False for digits: a "
                      "mirrored digit is another shape)."),
        "random_crop": Field((bool,), "random crop in training (else the centre crop)."),
        "num_workers": Field((int,), "input worker processes (0: threads; GPUs need ~8-14).",
                             config_lib.at_least(0)),
    },
    "wsol": {
        "methods": Field((str,), "maps to evaluate, comma-separated.",
                         _names_check(tuple(records.METHODS), "methods")),
        "protocols": Field((str,), "evaluation protocols, comma-separated (first = primary).",
                           _names_check(records.PROTOCOLS, "protocols")),
        "region_size": Field((int,), "infoCAM region-sum window k (paper: 4 on CUB's 14x14, "
                             "3 on Tiny's 4x4 maps).", config_lib.at_least(1)),
        "loc_threshold": Field((float, int), "map threshold of the fixed-threshold Top-1 / "
                               "GT-known Loc (official 0.2).",
                               config_lib.in_range(0.0, 1.0, hi_open=True)),
        "threshold_step": Field((float,), "threshold grid step of clean/wsolevaluation (the "
                                "paper protocol uses the official 0.05 grid).",
                                config_lib.in_range(0, 0.5, lo_open=True)),
        "checkpoint": Field((str,), "'last' or 'best' (keep-best by best_metric on the "
                            "validation split).", choices=build.CHECKPOINT_RULES),
        "paper_gt": Field((str,), "GT boxes of the paper protocol: 'auto' (CUB: official "
                          "transform, Tiny-ImageNet: official mis-parse, else exact).",
                          choices=records.PAPER_GT),
        "num_figure_images": Field((int,), "test images in the localisation grid (0: none).",
                                   config_lib.in_range(0, 64)),
        "official_method": Field((str,), "the method the official script's CAM flags evaluate "
                                 "('' = none): compared with paper_top1_loc.",
                                 choices=("", *records.METHODS)),
        "paper_top1_loc": Field((float, int), "the paper's Top-1 Loc for this run (0 = none).",
                                config_lib.in_range(0, 100)),
    },
})


def _splits(config: Any) -> list[str]:
  d = config.data
  return [d.train_split, d.eval_split, d.test_split]


def prepare(config: Any, *, training: bool) -> build.Data:
  """Every check that needs no compilation (config, dataset, weights); opens the data."""
  _common.validate(config, SCHEMA, lambda c: [p for p in [build.check_dataset_name(
      c.data.name)] if p])
  return _common.open_inputs(config, lambda: build.open_data(config, _splits(config)),
                             weights=training)


def train(config: Any, workdir: str, data: build.Data) -> Any:
  """Trains (or resumes) the backbone; returns the engine's ``FitResult``."""
  return build.fit(config, workdir, data, train_split=config.data.train_split,
                   eval_split=config.data.eval_split, evaluation_fields=EVALUATION_FIELDS)


def evaluate(config: Any, workdir: str, data: build.Data, *, outdir: str | None = None,
             timings: dict[str, Any] | None = None, mode: str = "evaluate") -> dict[str, Any]:
  """Evaluates the selected checkpoint; writes results.json, curves.json, figures to ``outdir``."""
  t0, c0 = time.time(), time.process_time()
  outdir = outdir or workdir
  timings = dict(timings or {})
  d, w = config.data, config.wsol
  if not d.eval_split or not d.test_split:
    raise _common.UsageError("The WSOL evaluation needs config.data.eval_split (threshold "
                             "selection) and config.data.test_split (reported numbers).")
  settings = records.Settings.from_config(config, data.name)
  model, variables, selection = build.load_for_evaluation(
      workdir, w.checkpoint, best_metric=config.best_metric, best_mode=config.best_mode,
      eval_split=d.eval_split, eval_every_steps=config.eval_every_steps)
  primary = jax.process_index() == 0
  if primary:
    io.echo(f"Evaluating {', '.join(settings.methods)} + baselines (centre_box, full_image_box), "
            f"protocols {', '.join(settings.protocols)}, checkpoint: {selection['checkpoint']} "
            f"(step {selection['step']}).")
  pipe = lambda split: build.make_pipeline(config, data.sources[split], train=False, shard=False)
  ev = records.evaluate(model, variables, pipe(d.eval_split), pipe(d.test_split), settings,
                          class_prior=data.prior, num_classes=data.num_classes,
                          splits=(d.eval_split, d.test_split),
                          progress=bool(config.progress_bar) and primary)
  tf, cf = time.time(), time.process_time()
  figures = (records.write_figures(outdir, ev.val, ev.test, ev.summary, ev.evaluators,
                                     settings.methods, settings.image_size) if primary else [])
  timings.update(eval_val_s=ev.val.wall_s, eval_val_cpu_s=ev.val.cpu_s, eval_test_s=ev.test.wall_s,
                 eval_test_cpu_s=ev.test.cpu_s, figures_s=time.time() - tf,
                 figures_cpu_s=time.process_time() - cf,
                 evaluate_s=time.time() - t0, evaluate_cpu_s=time.process_time() - c0)
  start, start_cpu = timings.pop("_start", None), timings.pop("_start_cpu", None)
  wall = {k: (None if v is None else round(float(v), 2)) for k, v in timings.items()
          if not k.endswith("cpu_s")}
  cpu = {k.replace("_cpu_s", "_s"): round(float(v), 2) for k, v in timings.items()
         if k.endswith("cpu_s") and v is not None}
  wall.setdefault("train_s", None)
  if start is not None:
    wall["total_s"] = round(time.time() - start, 2)
    cpu["total_s"] = round(time.process_time() - start_cpu, 2)
  dataset = {"name": data.name, "train_split": d.train_split, "val_split": d.eval_split,
             "test_split": d.test_split, "num_classes": data.num_classes}
  results = {"experiment": "wsol", "mode": mode,
             **records.results_record(ev, settings, selection=selection, dataset=dataset,
                                        official_method=w.official_method,
                                        paper_top1_loc=w.paper_top1_loc),
             "seed": int(config.seed), "config": config_lib.to_dict(config),
             "versions": io.versions("numba", "tensorflow_datasets", "grain", "matplotlib"),
             "device": io.device_info(), "wall_time_s": wall, "cpu_time_s": cpu,
             "figures": [os.path.relpath(p, outdir) for p in figures],
             "curves_file": "curves.json", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
  if primary:
    io.write_json(os.path.join(outdir, "curves.json"),
                  records.curves(ev.val, ev.test, ev.evaluators), indent=1)
    io.write_json(os.path.join(outdir, "results.json"), results, indent=1)
    if outdir == workdir:
      writer = engine.MetricWriter(workdir, enabled=True, tensorboard=False, echo=lambda s: None)
      writer.write(int(selection["step"]), records.headline_metrics(results))
      writer.close()
    io.echo(records.report(results, outdir))
  return results


def run() -> None:
  """The command line (flags parsed by ``_common.main``)."""
  f = flags.FLAGS
  config, workdir, mode = f.config, os.path.abspath(f.workdir), f.mode
  t0, c0 = time.time(), time.process_time()
  if mode == "evaluate":  # before the dataset is opened (or generated)
    build.require_export(workdir)
    rundir.check_config(rundir.trained_config(workdir), config_lib.to_dict(config), workdir,
                        action="evaluate", evaluation_fields=EVALUATION_FIELDS)
  data = prepare(config, training=mode != "evaluate")
  engine.initialize_distributed_from_config(config.distributed)
  timings = {"_start": t0, "_start_cpu": c0, "data_s": time.time() - t0,
             "data_cpu_s": time.process_time() - c0}
  out: dict[str, Any] = {}
  if mode != "evaluate":
    t, c = time.time(), time.process_time()
    result = train(config, workdir, data)
    timings.update(train_s=time.time() - t, train_cpu_s=time.process_time() - c)
    out = {"step": result.step, "num_train_steps": result.num_train_steps,
           "val": result.last_eval, "interrupted": result.interrupted}
    if result.interrupted or result.export_dir is None:
      print("summary: " + json.dumps(out, sort_keys=True, default=float), flush=True)
      raise _common.Interrupted(f"training stopped at step {result.step} (checkpoint saved)")
  if mode != "train":
    outdir = rundir.evaluation_dir(workdir, config_lib.to_dict(config), EVALUATION_FIELDS,
                                   name=f.eval_name, overwrite=f.overwrite)
    res = evaluate(config, workdir, data, outdir=outdir, timings=timings,
                   mode="evaluate" if mode == "evaluate" else "train_and_evaluate")
    out["results"] = os.path.join(outdir, "results.json")
    out["test"] = {m: {k: res["methods"][m][k] for k in
                       ("top1_cls", "top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2")}
                   for m in ("cam", "infocam") if m in res["methods"]}
  if jax.process_index() == 0:
    print("summary: " + json.dumps(out, sort_keys=True, default=float), flush=True)


def define_flags() -> None:
  _common.define_config_flags(DEFAULT_CONFIG, workdir_help="Run directory (checkpoints, "
                              "metrics, export, results); re-running resumes it.")
  flags.DEFINE_enum("mode", "train_and_evaluate", ["train_and_evaluate", "train", "evaluate"],
                    "What to run ('evaluate' reads DIR/export).")
  flags.DEFINE_string("eval_name", "", "Folder name under DIR/eval/ for an evaluation whose "
                      "config.wsol differs from the run's (default: the changed fields).")
  flags.DEFINE_bool("overwrite", False, "Write the evaluation into DIR itself even when DIR's "
                    "results were made with other config.wsol settings.")


if __name__ == "__main__":
  _common.main(run, define_flags=define_flags, doc=__doc__, default_config=DEFAULT_CONFIG, schema=SCHEMA)
