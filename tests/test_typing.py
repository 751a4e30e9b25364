"""The public API is typed: mypy checks the package with no error, and a user's code sees
every public name with its signature (not ``Any``), through the lazy exports too."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER = textwrap.dedent("""
    import jax.numpy as jnp
    import infocam_jax as ij
    from infocam_jax import models

    reveal_type(ij.pmi)
    reveal_type(ij.pc_softmax_cross_entropy_with_integer_labels)
    reveal_type(ij.max_box_accuracy)
    reveal_type(ij.GaussianMixture.paper)
    reveal_type(models.create_model)
    ij.pmi(jnp.zeros((2, 3)), jnp.zeros(2, int), objective="plain")  # error: not a Literal
    ij.mutual_information(jnp.zeros((2, 3)))  # error: labels missing
    ij.no_such_name  # error: not exported
    """)


def _mypy(*args: str, cwd: str) -> subprocess.CompletedProcess:
  # MYPYPATH: mypy cannot see through setuptools' editable-install import hook (the project is
  # installed with `pip install -e`), and pyproject's ignore_missing_imports would then turn
  # every name into Any silently.
  env = dict(os.environ, MYPYPATH=REPO)
  return subprocess.run([sys.executable, "-m", "mypy", "--cache-dir",
                         os.path.join(REPO, ".mypy_cache"), *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mypy_finds_no_error_in_the_package():
  """`mypy` with the settings of pyproject.toml ([tool.mypy]) over infocam_jax/."""
  proc = _mypy(cwd=REPO)
  assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
  assert "Success: no issues found" in proc.stdout


@pytest.mark.slow
def test_public_names_have_their_signatures_for_type_checkers(tmp_path):
  """A user's module: the lazily exported names are revealed with their signatures and
  wrong calls are reported (a name typed ``Any`` would accept anything)."""
  (tmp_path / "user.py").write_text(USER)
  proc = _mypy("--config-file", os.path.join(REPO, "pyproject.toml"), "--follow-imports=silent",
               "user.py", cwd=tmp_path)
  out = proc.stdout
  env_ok = "error: Cannot find implementation or library stub" not in out
  assert env_ok, out
  reveals = [line for line in out.splitlines() if "Revealed type" in line]
  assert len(reveals) == 5, out
  assert "objective: Literal['pc_softmax'] | Literal['softmax'] | None" in reveals[0], reveals[0]
  assert "-> infocam_jax.localization.BoxAccuracy" in reveals[2] or "BoxAccuracy" in reveals[2]
  for line in reveals:
    assert "Any" != line.split("Revealed type is ")[-1].strip('"'), line
    assert "def " in line, line
  assert 'Argument "objective" to "pmi" has incompatible type' in out, out
  assert 'Missing positional argument "labels" in call to "mutual_information"' in out, out
  assert 'has no attribute "no_such_name"' in out, out
  assert "Found 3 errors in 1 file" in out, out
