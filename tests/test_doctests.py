"""Docstring examples: every one runs (as a doctest), and the core API has one per name."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest

import infocam_jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The box API's docstrings live in the modules being moved into infocam_jax/wsol/ (issue 22);
# their examples are added with that move. Remove names from here as they get one.
AWAITING_EXAMPLES = frozenset({
    "Boxes", "MultiBoxes", "box_iou", "iou_levels", "xywh_to_xyxy", "resize_crop_boxes",
    "legacy_resize_crop_boxes", "tiny_imagenet_legacy_boxes", "max_box_accuracy", "BoxAccuracy",
    "BoxAccuracyState", "BoxAccuracyResult", "PROTOCOLS"})


def test_every_top_level_function_and_class_has_an_example():
  missing = []
  for name in infocam_jax.__all__:
    obj = getattr(infocam_jax, name, None)
    if name == "__version__" or not (inspect.isfunction(obj) or inspect.isclass(obj)):
      continue
    if ">>>" not in (inspect.getdoc(obj) or "") and name not in AWAITING_EXAMPLES:
      missing.append(name)
  assert not missing, f"no docstring example: {missing}"
  stale = [n for n in AWAITING_EXAMPLES if ">>>" in (inspect.getdoc(getattr(infocam_jax, n)) or "")]
  assert not stale, f"have an example now, remove from AWAITING_EXAMPLES: {stale}"


@pytest.mark.slow
def test_docstring_examples_run():
  """pytest's doctest runner over the whole package, with pyproject's doctest_optionflags
  (NUMBER: floats match to the precision the example shows)."""
  proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "--doctest-modules", "infocam_jax"], cwd=REPO, capture_output=True,
                        text=True, timeout=900, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
  assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-2000:]
