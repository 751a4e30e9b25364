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
different training config is refused before anything is compiled (exit
status 2, as for every bad input or missing dataset/weights file).

The library does the work: ``infocam_jax.train.build`` (data, model, weights,
which checkpoint), ``infocam_jax.train.fit`` and
``infocam_jax.evaluators.classification`` (predictions, accuracies, MI
readings); this module runs the (objective, seed) grid and aggregates it.

Model selection uses the validation split only, never the test split:
``experiment.select='best_val'`` evaluates the checkpoint with the best
``config.best_metric`` (e.g. ``val/mean_per_class_accuracy``, measured every
``eval_every_steps``); ``'last'`` the final parameters (the paper's fixed
schedules; the imbalanced CUB protocol has no validation split).

Outputs in ``DIR``: ``results.json``, a markdown table on
stdout (also ``results.md``), and ``per_class_accuracy[_<split>].png``
(per-class test accuracy of both objectives, mean +- std over seeds, classes
labelled with their training counts).

``results.json`` (schema: ``experiments/_pc_softmax_results.py``) holds, per
objective, mean ± std over seeds of accuracy, mean per-class, minority- and
majority-class accuracy, loss and the MI readings (nats), per test split, and
the paired PC-softmax − softmax differences.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
from absl import flags

from infocam_jax import train as engine
from infocam_jax import io
from infocam_jax.evaluators import classification
from infocam_jax.train import config as config_lib
from infocam_jax.train import build, rundir
from infocam_jax.train import workers as _workers

from experiments import _pc_softmax_results as report
from experiments import _common


DEFAULT_CONFIG = os.path.join(_common.CONFIG_DIR, "pc_softmax.py")
OBJECTIVES = report.OBJECTIVES
SELECTIONS = ("best_val", "last")
RESULT_FILE = "result.json"
RESULTS_FILE = "results.json"
EXIT_INTERRUPTED = _common.EXIT_INTERRUPTED
RunInterrupted = _common.Interrupted
_F = config_lib.Field


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
        "mean": _F((tuple, list), "per-channel mean (0-1 scale).", config_lib.number_tuple()),
        "std": _F((tuple, list), "per-channel std (0-1 scale).",
                  config_lib.number_tuple(positive=True)),
        "flip": _F(config_lib.BOOL, "random horizontal flips in training (off for digits)."),
        "random_crop": _F(config_lib.BOOL, "random crops (resize_size -> image_size) in training."),
    },
})


# -- configuration -------------------------------------------------------------


def _names(text: str) -> tuple[str, ...]:
  return tuple(s.strip() for s in text.split(",") if s.strip())


def objectives_of(config: Any) -> tuple[str, ...]:
  return _names(config.experiment.objectives)


def seeds_of(config: Any) -> tuple[int, ...]:
  return tuple(int(config.seed) + i for i in range(int(config.experiment.num_seeds)))


def test_splits_of(config: Any) -> tuple[str, ...]:
  return tuple(dict.fromkeys([config.data.test_split, *_names(config.experiment.extra_test_splits)]))


def _rules(config: Any) -> list[str]:
  """The experiment's own checks (after the schema's)."""
  errors = []
  objs = objectives_of(config)
  if not objs or set(objs) - set(OBJECTIVES) or len(set(objs)) != len(objs):
    errors.append(f"config.experiment.objectives: a comma-separated, duplicate-free subset of "
                  f"{list(OBJECTIVES)}, got {config.experiment.objectives!r}")
  problem = build.check_dataset_name(config.data.name)
  if problem:
    errors.append(problem)
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
  return errors


def validate(config: Any) -> None:
  """``UsageError`` (a ``ValueError``-like bad-input error) listing every problem."""
  _common.validate(config, SCHEMA, _rules)


def run_config(config: Any, objective: str, seed: int):
  """The engine config of one run: everything but ``experiment``, with ``loss``/``seed`` set."""
  d = build.plain(config_lib.to_dict(config))
  d.pop("experiment", None)
  d["loss"] = objective
  d["seed"] = int(seed)
  return ml_collections.ConfigDict(d)


def eval_settings(config: Any) -> dict[str, Any]:
  """What a run's evaluation depends on besides its training config."""
  return {"test_splits": list(test_splits_of(config)), "select": config.experiment.select,
          "best_metric": config.best_metric, "best_mode": config.best_mode}


def _run_dir(workdir: str, objective: str, seed: int) -> str:
  return os.path.join(workdir, objective, f"seed_{seed}")


def check_resumable(config: Any, workdir: str) -> None:
  """Refuses (``ConfigMismatchError``) run directories that hold a different training config."""
  for objective in objectives_of(config):
    for seed in seeds_of(config):
      run_dir = _run_dir(workdir, objective, seed)
      rundir.check_config(rundir.read_json(os.path.join(run_dir, "config.json")),
                          config_lib.to_dict(run_config(config, objective, seed)), run_dir)


def finished_runs(config: Any, workdir: str) -> dict[tuple[str, int], dict[str, Any]]:
  """``(objective, seed) -> result.json`` of the runs finished with this training config
  (``rundir.finished``); those whose evaluation settings changed are flagged
  ``_needs_eval_only`` (re-evaluated, not retrained)."""
  out = {}
  for key in [(o, s) for s in seeds_of(config) for o in objectives_of(config)]:
    record, needs_eval = rundir.finished(
        os.path.join(_run_dir(workdir, *key), RESULT_FILE),
        config_lib.to_dict(run_config(config, *key)), eval_settings(config))
    if record is not None:
      out[key] = {**record, "_needs_eval_only": True} if needs_eval else record
  return out


# -- one run -------------------------------------------------------------------------


def prepare(config: Any, workdir: str) -> build.Data:
  """Every check that needs no compilation (config, existing run dirs, datasets); opens them."""
  validate(config)
  check_resumable(config, os.path.abspath(workdir))
  return _common.open_inputs(config, lambda: open_data(config))


def open_data(config: Any) -> build.Data:
  d = config.data
  return build.open_data(config, [d.train_split, d.eval_split, *test_splits_of(config)],
                         cache_images=config.experiment.cache_images)


def evaluate_run(config: Any, rcfg: Any, run_dir: str, data: build.Data) -> dict[str, Any]:
  """Evaluates the selected checkpoint of one run on every test split."""
  t0, c0 = time.time(), time.process_time()
  rule = "best" if config.experiment.select == "best_val" else "last"
  model, variables, sel = build.load_for_evaluation(
      run_dir, rule, best_metric=rcfg.best_metric, best_mode=rcfg.best_mode)
  splits = {}
  for name in test_splits_of(config):
    pipe = build.make_pipeline(rcfg, data.sources[name], train=False, shard=False,
                               num_workers=0)
    logits, labels = classification.predict(model, variables, pipe)
    splits[name] = classification.classification_metrics(
        logits, labels, objective=rcfg.loss, prior=data.prior,
        class_counts_train=data.class_counts)
  return {"selected_step": int(sel["step"]), "splits": splits,
          "val": build.metrics_at(run_dir, int(sel["step"])),
          "eval_wall_time_s": time.time() - t0, "eval_cpu_time_s": time.process_time() - c0}


def execute_run(config: Any, workdir: str, data: build.Data, objective: str, seed: int, *,
                tag: str = "", echo=None, stop_requested=None,
                done: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Trains (or resumes) and evaluates one (objective, seed); returns its record.

  ``done``: its earlier record (``finished_runs``) when only its evaluation
  settings changed: then it is re-evaluated without training.

  The record is also written to ``DIR/<objective>/seed_<n>/result.json``.
  Raises ``RunInterrupted`` when training stopped early (a signal, or
  ``stop_requested()`` became true) after checkpointing.
  """
  echo = echo or io.echo
  tag = tag or f"{objective}, seed {seed}"
  rcfg = run_config(config, objective, seed)
  run_dir = _run_dir(workdir, objective, seed)
  settings = eval_settings(config)
  tr0, trc0 = time.time(), time.process_time()
  if done is None:
    echo(f"{tag}: training in {run_dir}")
    result = build.fit(rcfg, run_dir, data, train_split=rcfg.data.train_split,
                       eval_split=rcfg.data.eval_split,
                       num_workers=config.experiment.num_workers, echo=echo,
                       stop_requested=stop_requested)
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
         "eval_settings": build.plain(settings), "train_steps": train_steps,
         "train_wall_time_s": train_wall, "train_cpu_time_s": train_cpu, **ev}
  if jax.process_index() == 0:
    io.write_json(os.path.join(run_dir, RESULT_FILE), rec)
  m = ev["splits"][config.data.test_split]
  echo(f"{tag}: {config.data.test_split} accuracy {m['accuracy']:.2f}%, mean per-class "
       f"{m['mean_per_class_accuracy']:.2f}%, MI {m['mi']['estimate']:.3f} nats "
       f"(step {ev['selected_step']}; {train_wall + ev['eval_wall_time_s']:.1f} s)")
  return rec


# -- worker processes (infocam_jax/train/workers.py: clean stop, no orphans) ------------


def _worker_run(config_dict: dict[str, Any], workdir: str, objective: str, seed: int, tag: str,
                cache_dir: str | None, done: dict[str, Any] | None) -> dict[str, Any]:
  """``execute_run`` in a spawned worker process (``experiment.parallel_runs`` > 1)."""
  stop = _workers.stop_event()
  try:
    if stop is not None and stop.is_set():
      raise RunInterrupted(f"{tag}: not started")
    if cache_dir:
      _common.enable_compilation_cache(cache_dir)
    config = ml_collections.ConfigDict(config_dict)
    config.progress_bar = False  # interleaved bars from several processes are unreadable
    data = open_data(config)
    with _workers.busy():
      return execute_run(config, workdir, data, objective, seed, tag=tag, echo=_workers.echo,
                         stop_requested=None if stop is None else stop.is_set, done=done)
  except RunInterrupted:
    if stop is not None:
      stop.set()  # e.g. this worker was signalled directly: stop the others too
    raise


def _run_in_workers(config: Any, workdir: str, pending: list[tuple[str, int]],
                    tags: Mapping[tuple[str, int], str], workers: int, echo,
                    done: Mapping[tuple[str, int], dict[str, Any]]
                    ) -> dict[tuple[str, int], dict[str, Any]]:
  echo(f"Running {len(pending)} runs in {workers} worker processes.")
  cache_dir = (jax.config.jax_compilation_cache_dir
               or os.environ.get("JAX_COMPILATION_CACHE_DIR") or None)
  config_dict = build.plain(config_lib.to_dict(config))
  # By module path, also when this file runs as __main__ (python -m ...).
  from experiments import pc_softmax as module  # pylint: disable=g-import-not-at-top,import-self
  out = _workers.map_in_workers(
      module._worker_run,  # pylint: disable=protected-access
      [(config_dict, workdir, *key, tags[key], cache_dir, done.get(key)) for key in pending],
      workers, clean_stop=True, collect=(RunInterrupted,))
  stopped = [str(r) for r in out if isinstance(r, RunInterrupted)]
  if stopped:
    raise RunInterrupted(f"{len(stopped)} of {len(pending)} runs stopped early ("
                         + "; ".join(sorted(stopped)) + ")")
  return dict(zip(pending, out))


def run(config: Any, workdir: str, *, data: build.Data | None = None, echo=None
        ) -> dict[str, Any]:
  """Trains/evaluates every (objective, seed) and writes ``DIR/results.json``; returns it.

  ``prepare`` runs first unless its ``data`` is passed, so a bad config, a
  foreign run directory or a missing dataset fail before anything is compiled.
  With ``experiment.parallel_runs`` > 1 (CPU only) the unfinished runs are
  spread over that many spawned processes (XLA:CPU runs these small programs
  on one core each); the results are those of the sequential order.
  """
  echo = echo or io.echo
  workdir = os.path.abspath(workdir)
  t0, c0 = time.time(), time.process_time()
  ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
  if data is None:
    data = prepare(config, workdir)
  data_wall = time.time() - t0
  todo = [(o, s) for s in seeds_of(config) for o in objectives_of(config)]
  tags = {r: f"[{i + 1}/{len(todo)}] {r[0]}, seed {r[1]}" for i, r in enumerate(todo)}
  done = finished_runs(config, workdir)
  runs: dict[tuple[str, int], dict[str, Any]] = {}
  pending = []
  for key in todo:
    if key in done and not done[key].get("_needs_eval_only"):
      echo(f"{tags[key]}: finished earlier ({_run_dir(workdir, *key)}); skipped.")
      runs[key] = done[key]
    else:
      pending.append(key)
  workers = min(int(config.experiment.parallel_runs), len(pending))
  if workers > 1 and (jax.default_backend() != "cpu" or jax.process_count() > 1):
    workers = 1  # one accelerator (or a multi-host job) serves one run at a time
  if workers <= 1:
    for key in pending:
      runs[key] = execute_run(config, workdir, data, *key, tag=tags[key], echo=echo,
                              done=done.get(key))
  else:
    runs.update(_run_in_workers(config, workdir, pending, tags, workers, echo, done))
  ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
  children_cpu = (ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime)
  results = report.aggregate(config, data, runs, seeds=seeds_of(config),
                            objectives=objectives_of(config), splits=test_splits_of(config))
  results["config"] = build.plain(config_lib.to_dict(config))
  results["versions"] = io.versions()
  results["device"] = io.device_info()
  results["timing"] = {
      "wall_time_s": time.time() - t0,
      "cpu_time_s": time.process_time() - c0 + children_cpu,
      "data_wall_time_s": data_wall, "worker_processes": max(workers, 1),
      "note": "this invocation only, CPU time includes worker processes; runs skipped as "
              "finished keep their own times in 'runs'",
      "runs": {f"{o}/seed_{s}": {"train_wall_time_s": r["train_wall_time_s"],
                                 "train_cpu_time_s": r["train_cpu_time_s"],
                                 "eval_wall_time_s": r["eval_wall_time_s"]}
               for (o, s), r in runs.items()}}
  if jax.process_index() == 0:
    results["figures"] = (report.write_figures(results, workdir) if config.experiment.figures
                          else [])
    tables = "\n\n".join(report.markdown_table(results, sp) for sp in results["test_splits"])
    notes = (f"Selection: {results['protocol']['selection']}.\nTest sets: "
             f"{results['protocol']['test_set']}.\nPrediction: "
             f"{results['protocol']['prediction']}.\nLoss: the PC-softmax training loss is "
             "-PMI; it is negative once PMI > 0 (bounded below by log min_k p_k), not a bug.")
    with open(os.path.join(workdir, "results.md"), "w") as f:
      f.write(tables + "\n\n" + notes + "\n")
    io.write_json(os.path.join(workdir, RESULTS_FILE), results)
    print("\n" + tables + "\n\n" + notes, flush=True)
    print(f"\nWrote {os.path.join(workdir, RESULTS_FILE)}"
          + "".join(f"\n      {os.path.join(workdir, f)}" for f in results["figures"]),
          flush=True)
  return results


# -- command line ---------------------------------------------------------------------


def main() -> None:
  """The command line (flags parsed by ``_common.main``)."""
  config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
  if flags.FLAGS.compilation_cache:
    _common.enable_compilation_cache(os.path.join(os.path.abspath(workdir), "xla_cache"))
  validate(config)
  engine.initialize_distributed_from_config(config.distributed)
  run(config, workdir, data=prepare(config, workdir))


def define_flags() -> None:
  _common.define_config_flags(DEFAULT_CONFIG, workdir_help="Experiment directory (runs, "
                              "results.json, figures); re-running resumes it.")
  flags.DEFINE_bool("compilation_cache", True, "Persistent XLA compilation cache in "
                    "$JAX_COMPILATION_CACHE_DIR or <workdir>/xla_cache (runs reuse programs).")


if __name__ == "__main__":
  _common.main(main, define_flags=define_flags, doc=__doc__, default_config=DEFAULT_CONFIG, schema=SCHEMA)
