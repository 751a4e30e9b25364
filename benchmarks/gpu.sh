#!/usr/bin/env bash
# Training-step throughput on one GPU in under 5 minutes: JAX fp32/bf16 vs PyTorch.
#
#   bash benchmarks/gpu.sh            # from the repository root; PYTHON=... to pick python
#
# Prints images/s for ResNet-50 at 224 (global batch 256) and ResNet-18 at 64
# (batch 512), JAX (this project's model + train step: jit over a mesh, bf16
# compute with float32 params, donated state) and the PyTorch reference
# (torchvision-equivalent ResNet, channels_last, cuDNN autotuning, torch.autocast
# bf16), plus peak device memory. Needs jax (CUDA), flax, optax, orbax, chex;
# PyTorch optional; no ml_collections / tfds / grain. Each section runs in its own
# process with a timeout, so one failure does not stop the others.
#
# Overrides (the test suite runs this script on CPU with tiny values):
#   GPU_BENCH_MODELS="resnet50@224:256 resnet18@64:512"  GPU_BENCH_PRECISIONS=bf16,fp32
#   GPU_BENCH_FRAMEWORKS=jax,torch  GPU_BENCH_STEPS=20  GPU_BENCH_WARMUP=3
#   GPU_BENCH_TIMEOUT_S=150 (per section)  GPU_BENCH_DEADLINE_S=250 (all sections)
set -u
export PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.." || exit 1
start=$(date +%s)

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || echo "(no nvidia-smi)"
$PY - <<'PYEOF' 2>&1 || echo "(version probe failed)"
import importlib
for name in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "torch"):
  try:
    m = importlib.import_module(name)
    print(f"{name} {getattr(m, '__version__', '?')}")
  except Exception as e:
    print(f"{name}: not importable ({type(e).__name__})")
try:
  import jax
  print("jax devices:", jax.devices())
except Exception as e:
  print("jax devices: error", e)
PYEOF

echo "== training step (sections in priority order; deadline ${GPU_BENCH_DEADLINE_S:-250} s)"
# bf16 first: the headline number. torch+compile is left out (its compile takes minutes).
# shellcheck disable=SC2086  # GPU_BENCH_MODELS is a list of words
$PY benchmarks/train_step.py \
    --models ${GPU_BENCH_MODELS:-resnet50@224:256 resnet18@64:512} \
    --precisions "${GPU_BENCH_PRECISIONS:-bf16,fp32}" --frameworks "${GPU_BENCH_FRAMEWORKS:-jax,torch}" \
    --steps "${GPU_BENCH_STEPS:-20}" --warmup "${GPU_BENCH_WARMUP:-3}" --timeout "${GPU_BENCH_TIMEOUT_S:-150}" --deadline-s "${GPU_BENCH_DEADLINE_S:-250}" --json 2>&1 \
  || echo "(train_step.py exited with an error)"

echo "== done in $(( $(date +%s) - start )) s"
nvidia-smi --query-gpu=memory.used,memory.total --format=csv 2>/dev/null || true
