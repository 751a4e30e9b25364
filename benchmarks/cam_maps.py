"""Throughput of the map pipeline: infoCAM -> bicubic upsample -> min-max normalise.

Compares the jitted JAX pipeline of ``infocam_jax.cam`` (one batched call)
with the official protocol's per-image path (NumPy channel contraction, a
zero-padded ``cv2.boxFilter`` region sum = the full ones-kernel convolution,
``cv2.resize(INTER_CUBIC)``, min-max), and checks that both give the same
normalised maps. opencv-python-headless is needed for the reference. Run:

  python benchmarks/cam_maps.py                      # CPU defaults
  python benchmarks/cam_maps.py --batch 256 --repeats 20 --json out.json

Prints maps/s for both and writes JSON when ``--json`` is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

from infocam_jax import cam


def _reference(features, weights, labels, size, k):
  """Per-image NumPy/cv2 path, as the official evaluation does it."""
  import cv2

  kk = weights.shape[1]
  out = []
  for f, y in zip(features, labels):
    v = weights[:, y] - (weights.sum(1) - weights[:, y]) / (kk - 1)
    m = f @ v  # [H, W]
    padded = np.pad(m, k - 1)
    summed = cv2.boxFilter(padded, -1, (k, k), normalize=False, anchor=(0, 0),
                           borderType=cv2.BORDER_CONSTANT)[:m.shape[0] + k - 1, :m.shape[1] + k - 1]
    up = cv2.resize(summed, (size, size), interpolation=cv2.INTER_CUBIC)
    lo, hi = up.min(), up.max()
    out.append((up - lo) / (hi - lo) if hi > lo else np.zeros_like(up))
  return np.stack(out)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--hw", type=int, default=14, help="feature map side (CUB: 14)")
  parser.add_argument("--channels", type=int, default=2048)
  parser.add_argument("--classes", type=int, default=200)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--region", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--reference-maps", type=int, default=64,
                      help="maps timed through the cv2 reference (0 = skip)")
  parser.add_argument("--json", default=None)
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  b, hw, c, k = args.batch, args.hw, args.channels, args.classes
  features = np.abs(rng.normal(size=(b, hw, hw, c))).astype(np.float32)
  weights = (rng.normal(size=(c, k)) / np.sqrt(c)).astype(np.float32)
  labels = rng.integers(0, k, size=b).astype(np.int32)

  @jax.jit
  def pipeline(f, w, y):
    maps = cam.infocam(f, w, y, variant="mean", region_size=args.region, padding="full")
    return cam.normalize_maps(cam.upsample_maps(maps, (args.size, args.size), "bicubic"))

  f_dev, w_dev, y_dev = (jax.device_put(x) for x in (features, weights, labels))
  t0 = time.perf_counter()
  ours = np.asarray(jax.block_until_ready(pipeline(f_dev, w_dev, y_dev)))
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(pipeline(f_dev, w_dev, y_dev))
    times.append(time.perf_counter() - t0)
  best = min(times)
  result = {
      "device": str(jax.devices()[0]), "platform": platform.platform(),
      "batch": b, "feature_shape": [hw, hw, c], "classes": k, "size": args.size,
      "region_size": args.region, "compile_s": compile_s, "batch_s_best": best,
      "batch_s_median": float(np.median(times)), "maps_per_s": b / best,
  }
  if args.reference_maps:
    n = min(args.reference_maps, b)
    t0 = time.perf_counter()
    ref = _reference(features[:n], weights, labels[:n], args.size, args.region)
    ref_s = time.perf_counter() - t0
    result.update(reference_maps_per_s=n / ref_s,
                  max_abs_diff_vs_reference=float(np.abs(ours[:n] - ref).max()),
                  speedup=(b / best) / (n / ref_s))
  print(json.dumps(result, indent=2))
  if args.json:
    with open(args.json, "w") as fh:
      json.dump(result, fh, indent=2)


if __name__ == "__main__":
  main()
