"""The command line of a config-driven experiment: flags, config files, errors, exit statuses.

Every ``experiments/`` module runs through ``main``: ``--config`` (a Python
config file, ``file.py:variant``, overrides ``--config.a.b=v``) and
``--workdir``; bad input becomes one ``error:`` line and status 2 (unknown
fields with the closest names, config files of another experiment, missing
datasets or weights), ``--help`` lists the flags, the config files next to the
default one and every field of the schema.

Exit statuses (the same in every experiment, listed in the README):

====  =====================================================================
0     finished (or ``--help``)
1     a bug: an unexpected exception (traceback printed)
2     bad input: an unknown or invalid flag or config field, a missing config
      file or variant, a run directory holding another training config, a
      missing dataset or weights file (one ``error:`` message, no traceback)
75    stopped early by SIGTERM/SIGINT after checkpointing: re-run the same
      command to continue (sysexits.h ``EX_TEMPFAIL``)
====  =====================================================================

Example (an experiment's ``__main__``)::

  if __name__ == "__main__":
    cli.main(run, define_flags=define_flags, doc=__doc__, default_config=DEFAULT_CONFIG,
             schema=SCHEMA)
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
from absl import logging as absl_logging
from absl import flags
from ml_collections import config_flags

from infocam_jax.train import config as config_lib


EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 75

class UsageError(ValueError):
  """A person's mistake (bad flag, config, missing input): one message, exit status 2."""


class Interrupted(Exception):
  """Stopped early on request after checkpointing: exit status 75 (re-run to continue)."""


def fail(message: str) -> None:
  """Prints ``error: message`` (and where to get help) to stderr and exits with status 2."""
  print(f"error: {message.rstrip()}\n(run with --help for the flags and config fields)",
        file=sys.stderr, flush=True)
  sys.exit(EXIT_BAD_INPUT)


def user_errors() -> tuple[type[BaseException], ...]:
  """Exceptions that mean bad input rather than a bug (reported without a traceback)."""
  from infocam_jax.data import DatasetUnavailableError  # pylint: disable=g-import-not-at-top
  from infocam_jax.train.rundir import ConfigMismatchError  # pylint: disable=g-import-not-at-top
  return (UsageError, DatasetUnavailableError, ConfigMismatchError, FileNotFoundError)


def validate(config: Any, schema: Mapping[str, Any],
             extra: Callable[[Any], Sequence[str]] | None = None) -> None:
  """UsageError listing every problem: the schema's, then ``extra(config)``'s."""
  errors: list[str] = []
  try:
    config_lib.validate_config(config, schema)
  except ValueError as e:
    errors += [line.strip() for line in str(e).splitlines()[1:]]
  if not errors and extra is not None:
    errors += list(extra(config))
  if errors:
    raise UsageError("Invalid config:\n  " + "\n  ".join(errors))


def open_inputs(config: Any, open_data: Callable[[], Any], *, weights: bool = True) -> Any:
  """``open_data()`` after checking the pretrained weights file; every missing input at once.

  Raises ``UsageError`` naming each missing dataset / weights file with where
  it was looked for and how to obtain it.
  """
  from infocam_jax.data import DatasetUnavailableError  # pylint: disable=g-import-not-at-top
  from infocam_jax.train import build  # pylint: disable=g-import-not-at-top
  missing, data = [], None
  if weights:
    try:
      build.check_pretrained(config)
    except FileNotFoundError as e:
      missing.append(str(e))
  try:
    data = open_data()
  except DatasetUnavailableError as e:
    missing.append(str(e))
  if missing:
    raise UsageError("cannot run this config, input missing:\n\n" + "\n\n".join(missing))
  return data


# -- compilation cache -------------------------------------------------------------------


def enable_compilation_cache(default_dir: str) -> str:
  """Turns on JAX's persistent compilation cache (before anything is compiled).

  Uses ``$JAX_COMPILATION_CACHE_DIR`` / ``jax_compilation_cache_dir`` when set,
  else ``default_dir``. Runs that share programs (every seed compiles the same
  steps) load them instead of recompiling. Returns the directory.
  """
  path = (getattr(jax.config, "jax_compilation_cache_dir", None)
          or os.environ.get("JAX_COMPILATION_CACHE_DIR"))
  if not path:
    path = default_dir
    jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  return path


# -- command line ------------------------------------------------------------------------


def define_config_flags(default_config: str, *, workdir_help: str) -> None:
  """``--config`` (a Python config file, ``path.py:variant``) and the required ``--workdir``."""
  flags.DEFINE_string("workdir", None, workdir_help, required=True)
  config_flags.DEFINE_config_file(
      "config", default_config, "Config file (Python, get_config), optionally "
      "'file.py:variant'; override any field with --config.section.field=value.",
      lock_config=True)


def config_help(config: Any, schema: Mapping[str, Any], prefix: str = "config.") -> list[str]:
  """One line per config field: name, default value and what it means."""
  lines: list[str] = []
  for key, spec in schema.items():
    if key not in config:
      continue
    value = config[key]
    if isinstance(spec, Mapping):
      lines += config_help(value, spec, f"{prefix}{key}.")
    else:
      lines.append(f"  --{prefix}{key}={value!r}\n      {spec.doc}")
  return lines


def load_config_module(path: str) -> Any:
  """The config file ``path`` (``file.py``, no variant) as a module; OSError/SyntaxError propagate."""
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f"_cfg_{name}", path)
  if spec is None or spec.loader is None:
    raise OSError(f"not a Python config file: {path}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def experiment_of(path: str) -> str:
  """The experiment a config file is for (its ``EXPERIMENT``; '' when it declares none)."""
  return str(getattr(load_config_module(path), "EXPERIMENT", ""))


def config_variants(default_config: str) -> list[str]:
  """``file.py:variant`` names of the config files (next to ``default_config``) for its
  experiment."""
  experiment = experiment_of(default_config)
  config_dir = os.path.dirname(os.path.abspath(default_config))
  out = []
  for name in sorted(os.listdir(config_dir)):
    if not name.endswith(".py") or name.startswith("_"):
      continue
    try:
      module = load_config_module(os.path.join(config_dir, name))
    except Exception:  # pylint: disable=broad-except
      continue
    if not hasattr(module, "get_config") or getattr(module, "EXPERIMENT", "") != experiment:
      continue
    variants = getattr(module, "VARIANTS", None)
    rel = os.path.relpath(os.path.join(config_dir, name))
    out.append(f"  {rel}" + (f"  variants: {', '.join(variants)}" if variants else ""))
  return out


def _config_argument(argv: Sequence[str], default_config: str) -> str:
  """The ``--config`` value in ``argv`` (``file.py[:variant]``), else ``default_config``."""
  value = default_config
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      value = a.split("=", 1)[1]
    elif a == "--config" and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def check_config_file(argv: Sequence[str], default_config: str) -> None:
  """Refuses (status 2, one line) a ``--config`` file written for another experiment."""
  path = _config_argument(argv, default_config).split(":", 1)[0]
  if not os.path.isfile(path):
    return  # ml_collections reports a missing file itself
  try:
    theirs, ours = experiment_of(path), experiment_of(default_config)
  except Exception:  # pylint: disable=broad-except
    return  # a config file's own error is reported when the flags are parsed
  if theirs and theirs != ours:
    fail(f"--config={path} is a config of experiments.{theirs}, not experiments.{ours}: run "
         f"`python -m experiments.{theirs} --config={path} ...`, or pass one of:\n"
         + "\n".join(config_variants(default_config)))


def _leaf_paths(config: Any, prefix: str = "") -> list[str]:
  out: list[str] = []
  for key in config.keys():
    value = config[key]
    if hasattr(value, "keys") and callable(value.keys):
      out += _leaf_paths(value, f"{prefix}{key}.")
    else:
      out.append(f"{prefix}{key}")
  return out


def override_problem(config: Any, path: str) -> str | None:
  """What is wrong with the override ``--config.<path>=...`` for ``config`` (None: nothing).

  Names the first unknown part of the path and the group it was looked up in,
  with the closest names at that level or, failing those, the closest field
  anywhere in the config (``train.epoch`` -> ``num_epochs``).

  >>> import ml_collections
  >>> c = ml_collections.ConfigDict({"num_epochs": 1, "optimizer": {"learning_rate": 0.1}})
  >>> print(override_problem(c, "optimizer.learnin_rate"))
  unknown config field 'learnin_rate' in --config.optimizer.learnin_rate: config.optimizer has no 'learnin_rate'; did you mean --config.optimizer.learning_rate?
  >>> print(override_problem(c, "train.epoch"))
  unknown config group 'train' in --config.train.epoch: config has no 'train'; did you mean --config.num_epochs?
  """
  parts = path.split(".")
  node, seen = config, []  # type: Any, list[str]
  for i, part in enumerate(parts):
    where = ".".join(["config", *seen])
    if not (hasattr(node, "keys") and callable(node.keys)):
      return (f"--config.{path}: config.{'.'.join(seen)} is a field, not a group, so it has no "
              f"'{part}'")
    keys = list(node.keys())
    if part in keys:
      node, seen = node[part], seen + [part]
      continue
    kind = "group" if i < len(parts) - 1 else "field"
    prefix = "".join(f"{s}." for s in seen)
    close = [f"--config.{prefix}{k}" for k in difflib.get_close_matches(part, keys, n=3)]
    if not close:  # the closest field anywhere, by its last name (the rest was mistyped too)
      leaves = _leaf_paths(config)
      names = difflib.get_close_matches(parts[-1], [p.rsplit(".", 1)[-1] for p in leaves], n=3)
      close = [f"--config.{p}" for p in leaves if p.rsplit(".", 1)[-1] in names]
    hint = f"; did you mean {' or '.join(close)}?" if close else \
        " (--help lists every field)"
    return f"unknown config {kind} '{part}' in --config.{path}: {where} has no '{part}'{hint}"
  return None


def overrides_problem(argv: Sequence[str], default_config: str) -> str | None:
  """The first unknown ``--config.a.b`` override in ``argv`` for the chosen config, if any."""
  value = _config_argument(argv, default_config)
  path, _, variant = value.partition(":")
  try:
    module = load_config_module(path)
    config = module.get_config(variant) if variant else module.get_config()
  except Exception:  # pylint: disable=broad-except
    return None  # the config file itself is the problem: ml_collections' message says so
  for a in argv:
    if a.startswith("--config.") and len(a) > len("--config."):
      problem = override_problem(config, a[len("--config."):].split("=", 1)[0])
      if problem:
        return problem
  return None


def help_text(doc: str, default_config: str, schema: Mapping[str, Any]) -> str:
  """``--help``: the module's usage text, the flags, the config files and every field."""
  usage = doc.split("\n\n", 2)
  head = "\n\n".join(usage[:2]).strip()
  flag_lines = []
  ours = {f.name: f for m, fs in flags.FLAGS.flags_by_module_dict().items()
          if m in ("__main__", __name__) or "experiments" in m for f in fs}
  for name, flag in sorted(ours.items()):
    if name == "config":
      continue
    req = " (required)" if name == "workdir" else ""
    default = "" if flag.default in (None, "") else f" (default: {flag.default!r})"
    flag_lines.append(f"  --{name}{req}{default}\n      {flag.help}")
  flag_lines.append(f"  --config (default: {os.path.relpath(default_config)})\n      Config file "
                    "(Python, get_config), optionally 'file.py:variant'.")
  fields = config_help(load_config_module(default_config).get_config(), schema)
  return "\n".join([head, "", "Flags:", *flag_lines, "", "Config files:",
                    *config_variants(default_config), "",
                    f"Config fields (defaults of {os.path.relpath(default_config)}):", *fields,
                    "", "Exit status: 0 done, 2 bad input or missing data/weights, 75 stopped "
                    "early (checkpointed; re-run the same command to continue), 1 a bug."])


def flag_error_message(e: BaseException) -> str:
  """One readable message for an exception raised while reading the flags and the config."""
  text = str(e).replace("\\n", "\n").replace("\\'", "'")
  lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
  if any(ln.startswith("Traceback") for ln in lines):  # a config file's own exception
    lines = [lines[0].rstrip(":"), lines[-1]]
  if isinstance(e, (KeyError, AttributeError)) and lines and "Did you mean" in text:
    lines = [f"unknown config field {lines[0].strip(chr(39))!r}: {lines[-1].strip(chr(39))}"]
  if isinstance(e, OSError):
    lines = [ln for ln in lines if not ln.startswith("Attempted")]
  return "bad flag or config: " + " ".join(lines) if not isinstance(e, flags_error()) \
      else " ".join(lines)


def flags_error() -> type[BaseException]:
  return flags.Error


def main(run: Callable[[], None], *, define_flags: Callable[[], None], doc: str,
         default_config: str, schema: Mapping[str, Any] | None) -> None:
  """Parses the flags (bad input -> one line, status 2; ``--help`` -> status 0), then runs.

  ``run()`` reads ``absl.flags.FLAGS``; it raises ``UsageError`` (or a
  missing dataset / weights / a foreign run directory) for bad input and
  ``Interrupted`` after a requested stop.
  """
  argv = list(sys.argv)
  if any(a in ("-h", "--help", "--helpshort", "--helpfull", "-?") for a in argv[1:]):
    sys.argv = argv[:1]  # the config flag reads overrides from sys.argv when it is defined
    define_flags()
    try:
      print(help_text(doc, default_config, schema or {}), flush=True)
    except BrokenPipeError:  # e.g. piped into `head`
      pass
    sys.exit(EXIT_OK)
  check_config_file(argv, default_config)
  try:
    define_flags()  # ml_collections applies --config.x overrides here already
    rest = flags.FLAGS(argv)
    flags.FLAGS.config.keys()  # a config file that failed to load raises here
  except Exception as e:  # pylint: disable=broad-except
    # The config file, its variant or an override is wrong: ml_collections raises
    # AttributeError/KeyError/ValueError/TypeError/IOError from inside the parser.
    fail(overrides_problem(argv, default_config) or flag_error_message(e))
  if len(rest) > 1:
    fail(f"unexpected positional arguments: {rest[1:]}")
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.ERROR)  # library chatter (tfds, orbax) hidden
  absl_logging.use_absl_handler()
  try:
    run()
  except Interrupted as e:
    print(f"Stopped: {e}. Re-run the same command to continue.", file=sys.stderr, flush=True)
    sys.exit(EXIT_INTERRUPTED)
  except user_errors() as e:
    fail(str(e))
  sys.exit(EXIT_OK)
