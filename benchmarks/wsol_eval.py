"""Benchmark: the WSOL box evaluator against the OpenCV contour reference.

One run, the same maps for every method:

* reference: wsolevaluation's procedure written out with OpenCV (per map and
  per threshold: ``cv2.threshold`` of the uint8 map (float64 arithmetic) at ``int(t * max)``,
  ``cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)``, the largest
  ``cv2.contourArea`` (V1) or every contour (V2), ``cv2.boundingRect``, IoU
  against the GT boxes with NumPy);
* this package: ``max_box_accuracy("wsolevaluation")`` -- the full
  ``update`` (normalisation, quantisation, the one-pass numba component scan
  with its hole pass, IoU, counting) -- for V1 only, V2 only and both; on a
  GPU also ``backend="jax"``.

Prints maps/s of each, the speed-up over the reference, and the agreement of
the per-(map, threshold) hit decisions (IoU >= 0.5, and at 0.3/0.7) with the
reference. Maps are synthetic CAM-like score maps: Gaussian blobs plus noise on
a coarse grid (7-56 cells), bicubic-upsampled to 224x224 (a mix of smooth
unimodal, multimodal and noisy maps); one or two GT boxes per map.

    python benchmarks/wsol_eval.py                        # 512 maps, 100 thresholds
    python benchmarks/wsol_eval.py --num-maps 1024 --json out.json

Timings on a shared machine are noisy, so the reference and the evaluators run
interleaved batch by batch and each speed-up is the ratio of times within the
same round (the median over rounds); "per CPU-second" rates (process time, all
threads summed) are less sensitive to other jobs still. The agreement numbers
are exact.
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
  p.add_argument("--repeats", type=int, default=2,
                 help="timed rounds (rates: the best round; ratios: the median round)")
  p.add_argument("--skip-reference", action="store_true")
  p.add_argument("--force-jax", action="store_true", help="time the jax backend on a CPU too")
  p.add_argument("--json", default=None, help="write the results to this JSON file")
  args = p.parse_args(argv)

  import jax

  from infocam_jax.wsol import box_accuracy as localization

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

  # The reference and our evaluator run interleaved, batch by batch (reference V1, ours V1,
  # reference V2, ours V2, ours V1+V2), so that both see the same machine state: on a shared
  # machine the reference alone varied by 1.5x between runs minutes apart.
  thread_counts = [int(x) for x in args.threads.split(",") if x.strip()] or [None]
  configs = []
  for nt in thread_counts:
    tag = "numba" if nt is None else f"numba_t{nt}"
    configs += [(f"{tag}_v1", dict(v1=True, v2=False, backend="numba", num_threads=nt)),
                (f"{tag}_v2", dict(v1=False, v2=True, backend="numba", num_threads=nt)),
                (f"{tag}_both", dict(v1=True, v2=True, backend="numba", num_threads=nt))]
  if jax.default_backend() != "cpu" or args.force_jax:
    for cfg in [c for c in args.jax_configs.split(",") if c]:
      v1, v2 = {"v1": (True, False), "v2": (False, True), "both": (True, True)}[cfg]
      configs.append((f"jax_{cfg}", dict(v1=v1, v2=v2, backend="jax")))
  batches = [(maps[i * bs:(i + 1) * bs], gts[i * bs:(i + 1) * bs],
              gt_mask[i * bs:(i + 1) * bs], valid[i * bs:(i + 1) * bs]) for i in range(nb)]
  evs = {}
  for label, kw in configs:
    ev = localization.max_box_accuracy("wsolevaluation", cam_thresholds=thresholds,
                                       iou_thresholds=ious, threshold_chunk=args.threshold_chunk,
                                       **kw)
    t0 = time.perf_counter()
    jax.block_until_ready(ev.update(ev.init(), *batches[0][:3], valid=batches[0][3]))
    results[f"{label}_first_call_s"] = time.perf_counter() - t0
    evs[label] = ev
  refs = [] if args.skip_reference else [("v1", False), ("v2", True)]
  ref = {name: np.zeros((n, len(ious), len(thresholds)), bool) for name, _ in refs}
  wall = {k: np.zeros(args.repeats) for k in [f"reference_{r}" for r, _ in refs] + list(evs)}
  cpu = {k: np.zeros(args.repeats) for k in wall}
  states = {}

  def timed(key, rep, fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    wall[key][rep] += time.perf_counter() - t0
    cpu[key][rep] += time.process_time() - c0
    return out

  for rep in range(args.repeats):
    st = {label: ev.init() for label, ev in evs.items()}
    for i, (m, g, gm, v) in enumerate(batches):
      todo = [(f"reference_{r}", multi) for r, multi in refs] + [(label, None) for label in evs]
      for key, multi in todo:
        if key.startswith("reference_"):
          idx = range(i * bs, min((i + 1) * bs, n))

          def run_ref(idx=idx, multi=multi):
            return [reference_hits(maps[k], thresholds, gts[k][gt_mask[k]], multi, ious)
                    for k in idx]

          hits = timed(key, rep, run_ref)
          if rep == 0:
            ref[key.split("_")[1]][idx.start:idx.stop] = np.stack(hits)
        else:
          ev = evs[key]
          st[key] = timed(key, rep, lambda ev=ev, s=st[key]: jax.block_until_ready(
              ev.update(s, m, g, gm, valid=v)))
    states.update(st)
    print(f"round {rep + 1}/{args.repeats}: " + ", ".join(
        f"{k} {n / wall[k][rep]:.0f}" for k in wall) + " maps/s", flush=True)

  for key in wall:
    results[f"{key}_maps_per_s"] = float(n / wall[key].min())
    results[f"{key}_maps_per_cpu_s"] = float(n / cpu[key].min())
  for label in evs:
    line = (f"{label:>22}: {results[f'{label}_maps_per_s']:8.1f} maps/s "
            f"({results[f'{label}_maps_per_cpu_s']:7.1f} per CPU-second; first call "
            f"{results[f'{label}_first_call_s']:.1f} s)")
    # V1+V2 in one scan is compared with the V2 reference: its contour loop already finds
    # every contour, V1's largest included (a V1 ratio there would count V2's work as free).
    for name in (("v2",) if label.endswith("_both") else ("v1", "v2")):
      if f"reference_{name}" in wall and getattr(evs[label], name):
        # ratio of the same round's times (interleaved), the median over rounds
        r_wall = float(np.median(wall[f"reference_{name}"] / wall[label]))
        r_cpu = float(np.median(cpu[f"reference_{name}"] / cpu[label]))
        results[f"{label}_speedup_vs_reference_{name}"] = r_wall
        results[f"{label}_speedup_per_cpu_s_vs_reference_{name}"] = r_cpu
        line += f"  {r_wall:5.1f}x reference {name} ({r_cpu:4.1f}x per CPU-second)"
    print(line, flush=True)
  for name, _ in refs:
    key = f"reference_{name}"
    print(f"reference {name}: {results[key + '_maps_per_s']:8.1f} maps/s "
          f"({results[key + '_maps_per_cpu_s']:7.1f} per CPU-second)", flush=True)

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

  numba_both = [label for label in evs if label.startswith("numba") and label.endswith("_both")]
  if ref and numba_both:
    agreement("numba", evs[numba_both[-1]])
  if "jax_both" in states and numba_both:
    same = all(np.array_equal(np.asarray(getattr(states["jax_both"], f)),
                              np.asarray(getattr(states[numba_both[-1]], f)))
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
