"""Docstring examples: every one runs (as a doctest), and every public name has one."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys

import pytest

import infocam_jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The packages and modules users import, each with an ``__all__``: every public function and
# class they export has a docstring example (constants excepted: they cannot carry one).
PUBLIC_MODULES = ("infocam_jax", "infocam_jax.models", "infocam_jax.data", "infocam_jax.train",
                  "infocam_jax.wsol", "infocam_jax.mibench", "infocam_jax.cam", "infocam_jax.plotting",
                  "infocam_jax.evaluators.classification", "infocam_jax.evaluators.cam_methods",
                  "infocam_jax.evaluators.wsol", "infocam_jax.seeds")


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_function_and_class_has_an_example(module):
  mod = importlib.import_module(module)
  missing = []
  for name in mod.__all__:
    obj = getattr(mod, name, None)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
      continue
    if ">>>" not in (inspect.getdoc(obj) or ""):
      missing.append(name)
  assert not missing, f"{module}: no docstring example: {missing}"


def test_the_checked_modules_cover_the_api_reference():
  """Every sub-package with an ``__all__`` that the top level exposes is checked above."""
  unchecked = []
  for sub in infocam_jax._SUBMODULES:  # pylint: disable=protected-access
    mod = importlib.import_module(f"infocam_jax.{sub}")
    if getattr(mod, "__all__", None) and f"infocam_jax.{sub}" not in PUBLIC_MODULES:
      unchecked += [f"infocam_jax.{sub}"]
  assert not unchecked, unchecked


@pytest.mark.slow
def test_docstring_examples_run():
  """pytest's doctest runner over the whole package, with pyproject's doctest_optionflags
  (NUMBER: floats match to the precision the example shows)."""
  proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "--doctest-modules", "infocam_jax"], cwd=REPO, capture_output=True,
                        text=True, timeout=900, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
  assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-2000:]
