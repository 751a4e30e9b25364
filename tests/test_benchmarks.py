"""``benchmarks/gpu.sh`` end to end on CPU with tiny settings.

The script exists for the few sessions that get a GPU for minutes, so it must
work the first time: this runs the same shell script (machine probe, every
framework section in its own subprocess, JSON results) with a small ResNet-18
and one section only, JAX bf16 (the headline; fp32 is the same code with another
dtype and the PyTorch section is the reference, both left out to keep the test
short), and checks that the section produced a finite loss and a rate.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

try:
  import multidevice  # tests/ on sys.path
except ImportError:  # pragma: no cover
  from tests import multidevice

pytestmark = pytest.mark.slow


def test_gpu_script_runs_one_section_on_cpu():
  env = multidevice.subprocess_env(1, PYTHON=sys.executable, GPU_BENCH_MODELS="resnet18@32:4",
                                   GPU_BENCH_PRECISIONS="bf16", GPU_BENCH_FRAMEWORKS="jax",
                                   GPU_BENCH_STEPS="1", GPU_BENCH_WARMUP="1",
                                   # The device's 150 s / 250 s budget is for an accelerator: on a
                                   # slow or shared CPU (one core, load 10) the bf16 compile alone
                                   # took longer, and the section timed out (2026-12-08).
                                   GPU_BENCH_TIMEOUT_S="540", GPU_BENCH_DEADLINE_S="560")
  proc = subprocess.run(["bash", os.path.join("benchmarks", "gpu.sh")], cwd=multidevice.REPO,
                        env=env, capture_output=True, text=True, timeout=600)
  out = proc.stdout
  assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
  assert "== machine" in out and "jax devices:" in out and "== done in" in out
  results = json.loads(out[out.index('{\n "results"'):out.index("== done in")])["results"]
  assert [(r["framework"], r["precision"]) for r in results] == [("jax", "bf16")]
  for r in results:
    assert "error" not in r, r
    assert r["model"] == "resnet18@32:4" and r["images_per_s"] > 0
    assert math.isfinite(r["loss"]) and r["loss"] > 0, r
