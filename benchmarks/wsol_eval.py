"""Benchmark: the WSOL box evaluator against the OpenCV contour reference.

One run, the same maps for every method:

* reference: wsolevaluation's procedure written out with OpenCV (per map and
  per threshold: ``cv2.threshold`` of the uint8 map (float64 arithmetic) at ``int(t * max)``,
  ``cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)``, the largest
  ``cv2.contourArea`` (V1) or every contour (V2), ``cv2.boundingRect``, IoU
  against the GT boxes with NumPy);
* this package: ``max_box_accuracy("wsolevaluation")`` -- the full jitted
  ``update`` (normalisation, quantisation, the one-pass numba component scan,
  IoU, counting) -- for V1 only, V2 only and both; on a GPU also
  ``backend="jax"``.

Prints maps/s of each, the speed-up over the reference, and the agreement of
the per-(map, threshold) hit decisions (IoU >= 0.5, and at 0.3/0.7) with the
reference. Maps are synthetic CAM-like score maps: Gaussian blobs plus noise on
a coarse grid (7-56 cells), bicubic-upsampled to 224x224 (a mix of smooth
unimodal, multimodal and noisy maps); one or two GT boxes per map.

    python benchmarks/wsol_eval.py                        # 512 maps, 100 thresholds
    python benchmarks/wsol_eval.py --num-maps 1024 --json out.json

Timings on a shared machine are noisy; "per CPU-second" rates (process time,
all threads summed) are less sensitive to other jobs. The agreement numbers are
exact.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

try:
  import cv2
except ImportError:  # pragma: no cover
  sys.exit("This benchmark needs OpenCV: pip install opencv-python-headless")


# ----------------------------------------------------------------------------
# Synthetic CAM-like maps.
# ----------------------------------------------------------------------------


def synthetic_maps(num: int, size: int = 224, seed: int = 0, kind: str = "mix"):
  """Normalised float32 maps [N, size, size] and GT boxes [N, 2, 4] + mask [N, 2].

  kind: "smooth" (coarse grid 7/14/17, low noise), "noisy" (grid 28/56, strong
  noise: many small components), or "mix" (60% smooth, 40% noisy).
  """
  rng = np.random.default_rng(seed)
  maps = np.empty((num, size, size), np.float32)
  gts = np.zeros((num, 2, 4), np.float32)
  gt_mask = np.zeros((num, 2), bool)
  for i in range(num):
    noisy = kind == "noisy" or (kind == "mix" and rng.random() < 0.4)
    grid = int(rng.choice([28, 56])) if noisy else int(rng.choice([7, 14, 17]))
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float64) + 0.5
    m = np.zeros((grid, grid))
    nblob = int(rng.choice([1, 1, 2, 3]))
    for k in range(nblob):
      cx, cy = rng.uniform(0.2, 0.8, 2) * grid
      sx, sy = rng.uniform(0.06, 0.22, 2) * grid
      amp = 1.0 if k == 0 else rng.uniform(0.4, 1.0)
      m += amp * np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
      if k < 2:
        s = size / grid
        jit = rng.normal(0.0, 0.12, 4)
        box = [(cx - 1.7 * sx * (1 + jit[0])) * s, (cy - 1.7 * sy * (1 + jit[1])) * s,
               (cx + 1.7 * sx * (1 + jit[2])) * s - 1, (cy + 1.7 * sy * (1 + jit[3])) * s - 1]
        gts[i, k] = np.clip(np.round(box), 0, size - 1)
        gt_mask[i, k] = k == 0 or rng.random() < 0.5
    m += rng.normal(0.0, rng.uniform(0.15, 0.4) if noisy else rng.uniform(0.02, 0.15),
                    m.shape)
    if rng.random() < 0.3:
      m = np.maximum(m, 0.0)  # ReLU'd CAM: flat zero regions
    up = cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    up -= up.min()
    up /= max(float(up.max()), 1e-12)
    maps[i] = up
  # a GT box must have x0 <= x1, y0 <= y1
  gts[..., 2] = np.maximum(gts[..., 2], gts[..., 0])
  gts[..., 3] = np.maximum(gts[..., 3], gts[..., 1])
  return maps, gts, gt_mask


# ----------------------------------------------------------------------------
# The OpenCV contour reference (wsolevaluation's procedure).
# ----------------------------------------------------------------------------


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  x0 = np.maximum(a[:, None, 0], b[None, :, 0])
  y0 = np.maximum(a[:, None, 1], b[None, :, 1])
  x1 = np.minimum(a[:, None, 2], b[None, :, 2])
  y1 = np.minimum(a[:, None, 3], b[None, :, 3])
  inter = np.maximum(0, x1 - x0 + 1) * np.maximum(0, y1 - y0 + 1)
  area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
  area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
  den = area_a[:, None] + area_b[None, :] - inter
  bad = den <= 0
  iou = inter / np.where(bad, 1, den)
  iou[bad] = 0
  return iou


def reference_hits(scoremap: np.ndarray, thresholds: np.ndarray, gt: np.ndarray,
                   multi_contour: bool, iou_thresholds) -> np.ndarray:
  """bool [J, T]: wsolevaluation's decision for one map."""
  height, width = scoremap.shape
  scoremap = scoremap.astype(np.float64)  # the peer's t2n; normalize_scoremap is a no-op on [0, 1]
  image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
  top = np.max(image)
  boxes, counts = [], []
  for t in thresholds:
    _, mask = cv2.threshold(image, int(t * top), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) == 0:
      boxes.append([[0, 0, 0, 0]])
      counts.append(1)
      continue
    if not multi_contour:
      contours = [max(contours, key=cv2.contourArea)]
    for c in contours:
      x, y, w, h = cv2.boundingRect(c)
      boxes.append([[x, y, min(x + w, width - 1), min(y + h, height - 1)]])
    counts.append(len(contours))
  all_boxes = np.concatenate(boxes, axis=0)
  best_per_box = _iou_matrix(all_boxes, gt).max(axis=1)
  ends = np.cumsum(counts)
  best = np.maximum.reduceat(best_per_box, ends - np.asarray(counts))
  return np.stack([best >= d for d in iou_thresholds])


# ----------------------------------------------------------------------------


def _time(fn, repeats: int) -> float:
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--num-maps", type=int, default=512)
  p.add_argument("--size", type=int, default=224)
  p.add_argument("--num-thresholds", type=int, default=100)
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--kind", default="mix", choices=("mix", "smooth", "noisy"))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--threads", default="",
                 help="comma-separated numba thread counts to time (default: all usable CPUs)")
  p.add_argument("--threshold-chunk", type=int, default=100,
                 help="thresholds labelled at once by the jax backend (GPU memory)")
  p.add_argument("--jax-configs", default="both",
                 help="which of v1,v2,both to time with the jax backend on an accelerator")
  p.add_argument("--repeats", type=int, default=2, help="timed repeats (best is reported)")
  p.add_argument("--skip-reference", action="store_true")
  p.add_argument("--force-jax", action="store_true", help="time the jax backend on a CPU too")
  p.add_argument("--json", default=None, help="write the results to this JSON file")
  args = p.parse_args(argv)

  import jax

  from infocam_jax import localization

  n, bs = args.num_maps, args.batch_size
  thresholds = np.arange(args.num_thresholds) / args.num_thresholds
  ious = (0.3, 0.5, 0.7)
  t0 = time.perf_counter()
  maps, gts, gt_mask = synthetic_maps(n, args.size, args.seed, args.kind)
  print(f"generated {n} maps {args.size}x{args.size} ({args.kind}) in "
        f"{time.perf_counter() - t0:.1f} s; {len(thresholds)} thresholds", flush=True)
  nb = -(-n // bs)
  pad = nb * bs - n
  if pad:
    maps = np.concatenate([maps, np.repeat(maps[-1:], pad, 0)])
    gts = np.concatenate([gts, np.repeat(gts[-1:], pad, 0)])
    gt_mask = np.concatenate([gt_mask, np.repeat(gt_mask[-1:], pad, 0)])
  valid = np.arange(nb * bs) < n

  results: dict = {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                  "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else None, "loadavg_start": os.getloadavg(), "jax_backend": jax.default_backend(),
                  "jax_devices": [str(d) for d in jax.devices()], "opencv": cv2.__version__},
      "config": vars(args),
  }

  # Reference.
  ref = {}
  if not args.skip_reference:
    for name, multi in (("v1", False), ("v2", True)):
      hits = np.zeros((n, len(ious), len(thresholds)), bool)
      t0 = time.perf_counter()
      c0 = time.process_time()
      for i in range(n):
        hits[i] = reference_hits(maps[i], thresholds, gts[i][gt_mask[i]], multi, ious)
      dt = time.perf_counter() - t0
      dc = time.process_time() - c0
      ref[name] = hits
      results[f"reference_{name}_maps_per_s"] = n / dt
      results[f"reference_{name}_maps_per_cpu_s"] = n / dc
      print(f"reference {name}: {n / dt:8.1f} maps/s ({n / dc:7.1f} per CPU-second)", flush=True)

  def run_evaluator(label, **kw):
    ev = localization.max_box_accuracy("wsolevaluation", cam_thresholds=thresholds,
                                       iou_thresholds=ious, threshold_chunk=args.threshold_chunk,
                                       **kw)
    batches = [(maps[i * bs:(i + 1) * bs], gts[i * bs:(i + 1) * bs],
                gt_mask[i * bs:(i + 1) * bs], valid[i * bs:(i + 1) * bs]) for i in range(nb)]
    t0 = time.perf_counter()
    st = ev.update(ev.init(), *batches[0][:3], valid=batches[0][3])
    jax.block_until_ready(st)
    warm = time.perf_counter() - t0
    final = {}

    def go():
      c0 = time.process_time()
      state = ev.init()
      for m, g, gm, v in batches:
        state = ev.update(state, m, g, gm, valid=v)
      final["state"] = jax.block_until_ready(state)
      final["cpu"] = min(final.get("cpu", float("inf")), time.process_time() - c0)

    dt = _time(go, args.repeats)
    rate = n / dt
    results[f"{label}_maps_per_s"] = rate
    results[f"{label}_maps_per_cpu_s"] = n / final["cpu"]
    results[f"{label}_first_call_s"] = warm
    line = (f"{label:>22}: {rate:8.1f} maps/s ({n / final['cpu']:7.1f} per CPU-second; "
            f"first call {warm:.1f} s)")
    for name in ("v1", "v2"):
      key = f"reference_{name}_maps_per_s"
      if key in results and kw.get(name, True):
        ratio = rate / results[key]
        results[f"{label}_speedup_vs_reference_{name}"] = ratio
        line += f"  {ratio:5.1f}x reference {name}"
    print(line, flush=True)
    return ev, final["state"]

  def agreement(backend, ev):
    h1, h2 = [], []
    for i in range(nb):
      a, b = ev.image_hits(maps[i * bs:(i + 1) * bs], gts[i * bs:(i + 1) * bs],
                           gt_mask[i * bs:(i + 1) * bs])
      h1.append(np.asarray(a))
      h2.append(np.asarray(b))
    h1 = np.concatenate(h1)[:n]
    h2 = np.concatenate(h2)[:n]
    for name, mine in (("v1", h1), ("v2", h2)):
      agree = (mine == ref[name]).mean(axis=(0, 2))
      results[f"{backend}_{name}_agreement"] = dict(zip(map(str, ious), agree.tolist()))
      acc_ref = ref[name].mean(axis=0).max(axis=1) * 100
      acc_mine = mine.mean(axis=0).max(axis=1) * 100
      results[f"{backend}_{name}_maxboxacc_per_iou"] = {"reference": acc_ref.tolist(),
                                                        "ours": acc_mine.tolist()}
      print(f"{backend} {name} agreement of hits per (map, threshold): " +
            ", ".join(f"IoU {d}: {100 * a:.3f}%" for d, a in zip(ious, agree)) +
            f"; MaxBoxAcc per IoU ours {np.round(acc_mine, 2).tolist()} vs reference "
            f"{np.round(acc_ref, 2).tolist()}", flush=True)

  thread_counts = [int(x) for x in args.threads.split(",") if x.strip()] or [None]
  states = {}
  for nt in thread_counts:
    tag = "numba" if nt is None else f"numba_t{nt}"
    run_evaluator(f"{tag}_v1", v1=True, v2=False, backend="numba", num_threads=nt)
    run_evaluator(f"{tag}_v2", v1=False, v2=True, backend="numba", num_threads=nt)
    ev, states["numba"] = run_evaluator(f"{tag}_both", v1=True, v2=True, backend="numba",
                                        num_threads=nt)
  if ref:
    agreement("numba", ev)
  if jax.default_backend() != "cpu" or args.force_jax:
    for cfg in [c for c in args.jax_configs.split(",") if c]:
      v1, v2 = {"v1": (True, False), "v2": (False, True), "both": (True, True)}[cfg]
      _, st = run_evaluator(f"jax_{cfg}", v1=v1, v2=v2, backend="jax")
      if cfg == "both":
        ref_state = states["numba"]
        same = all(np.array_equal(np.asarray(getattr(st, f)), np.asarray(getattr(ref_state, f)))
                   for f in ("hits", "hits_v2", "num_images"))
        results["jax_counts_equal_numba"] = bool(same)
        print(f"jax backend counts identical to numba: {same}", flush=True)

  results["machine"]["loadavg_end"] = os.getloadavg()
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=2)
    print(f"wrote {args.json}")
  return results


if __name__ == "__main__":
  main()
