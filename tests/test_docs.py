"""The reference site builds with warnings as errors, and documents every public name."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest

import infocam_jax
from tests.test_doctests import PUBLIC_MODULES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_sphinx_builds_without_warnings_and_every_public_name_has_a_page(tmp_path):
  out = tmp_path / "html"
  proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                         "-d", str(tmp_path / "doctrees"), os.path.join(REPO, "docs"), str(out)],
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  api = "".join((out / "api" / f).read_text(encoding="utf-8")
                for f in os.listdir(out / "api") if f.endswith(".html"))
  anchors = set(re.findall(r'id="(infocam_jax[\w.]+)"', api))
  documented = {a.rsplit(".", 1)[-1] for a in anchors}
  missing = [n for n in infocam_jax.__all__ if n != "__version__" and n not in documented]
  for sub in PUBLIC_MODULES[1:]:
    missing += [f"{sub}.{n}" for n in importlib.import_module(sub).__all__ if n not in documented]
  assert not missing, missing
  for guide in ("tour", "conventions", "experiments", "evaluator", "install"):
    assert (out / f"{guide}.html").is_file(), guide
  tour = (out / "tour.html").read_text(encoding="utf-8")
  assert "pc_softmax_cross_entropy_with_integer_labels" in tour  # the README's tour is included
