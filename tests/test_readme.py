"""Every Python block of README.md runs, as written.

The blocks are the README's API tour: they run top to bottom in one interpreter
(later blocks use the model and maps made by earlier ones, as a reader following
the tour does), from a directory laid out as the repository root (``experiments/``
beside it), with nothing added to what the reader sees: the only setting is
``TFDS_DATA_DIR``, so the dataset the tour generates lands in a temporary folder
instead of ``~/tensorflow_datasets``. Every block runs on small inputs it makes
itself (no download, no pretrained weights): a block that could not would have to
say so in the README.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks(text: str) -> list[str]:
  return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_python_blocks():
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    blocks = python_blocks(f.read())
  assert len(blocks) >= 5
  for block in blocks:
    compile(block, "README.md", "exec")  # each block is valid Python on its own


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path):
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    blocks = python_blocks(f.read())
  os.symlink(os.path.join(REPO, "experiments"), tmp_path / "experiments")
  script = "\n".join(f"print('--- README block {i}', flush=True)\n{b}"
                     for i, b in enumerate(blocks, 1))
  (tmp_path / "readme_blocks.py").write_text(script)
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"), JAX_PLATFORMS="cpu",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run([sys.executable, "readme_blocks.py"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=1800)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  assert f"--- README block {len(blocks)}" in proc.stdout
  assert "nats (n=10000)" in proc.stdout  # the MIEstimate printed by the first block
  assert (tmp_path / "runs" / "readme").is_dir()  # the last block trained and evaluated
