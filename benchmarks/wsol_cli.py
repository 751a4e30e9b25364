"""Benchmark: ``infocam-wsol-eval`` against wsolevaluation's ``evaluation.py`` loop, end to end.

Both read the same ``<image_id>.npy`` score maps of CUB-test size (224 x 224,
float64 as the peer's ``inference.py`` saves them) and the same metadata
folder (written in the peer's format), and compute the same MaxBoxAcc:

* peer loop: ``evaluation.py``'s procedure written out (``np.load`` of each
  map, ``uint8(255 m)``, per threshold ``cv2.threshold`` + ``cv2.findContours``
  (``RETR_TREE``) + the largest ``cv2.contourArea`` (V1) or every contour
  (V2), ``cv2.boundingRect``, the IoU with the ``int()``-resized GT boxes),
  in one process (the peer's DataLoader workers only read files);
* ``infocam-wsol-eval`` in a subprocess (start-up, numba cache load,
  reading, the component scan, output).

They run interleaved (CLI, peer, CLI, peer, ...) on the same files; the
speed-up is the median over rounds of the ratio within a round. The two
``localization:`` values must be equal (checked). Then the CLI alone runs
on ``--rss-maps`` ids (symbolic links to the same few files, so no disk is
needed) and its peak RSS is read from ``getrusage(RUSAGE_CHILDREN)``.

    python benchmarks/wsol_cli.py                                  # 5794 maps, V1
    python benchmarks/wsol_cli.py --num-maps 300 --rounds 2 --rss-maps 20000 --json out.json

On a shared (loaded) machine the times are noisy: say so next to any number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsol_eval  # noqa: E402  (synthetic CAM-like maps)

import cv2  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_dataset(root: str, num: int, seed: int = 0) -> tuple[str, str]:
  """Metadata (CUB/test in the peer's format) and float64 score maps; returns (metadata, maps)."""
  maps, _, _ = wsol_eval.synthetic_maps(num, 224, seed)
  rng = np.random.default_rng(seed + 1)
  meta = os.path.join(root, "metadata", "CUB", "test")
  sm = os.path.join(root, "scoremaps")
  os.makedirs(meta)
  ids, sizes, locs = [], [], []
  for k in range(num):
    image_id = f"{k % 200:03d}.class/img_{k:05d}.jpg"
    w, h = int(rng.integers(200, 500)), int(rng.integers(200, 500))
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    x1, y1 = int(rng.integers(x0 + 10, w + 1)), int(rng.integers(y0 + 10, h + 1))
    ids.append(image_id)
    sizes.append(f"{image_id},{w},{h}")
    locs.append(f"{image_id},{x0},{y0},{x1},{y1}")
    p = os.path.join(sm, image_id + ".npy")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    np.save(p, np.asarray(maps[k], np.float64))
  for name, rows in (("image_ids", ids), ("image_sizes", sizes), ("localization", locs),
                     ("class_labels", [f"{i},0" for i in ids])):
    with open(os.path.join(meta, name + ".txt"), "w") as f:
      f.write("".join(r + "\n" for r in rows))
  return os.path.join(root, "metadata"), sm


def peer_loop(metadata_root: str, scoremap_root: str, multi: bool, interval: float = 0.01,
              ious=(30, 50, 70)) -> float:
  """evaluation.py's BoxEvaluator loop (MaxBoxAcc at IoU 50)."""
  root = os.path.join(metadata_root, "CUB", "test")
  ids = [l.strip("\n") for l in open(os.path.join(root, "image_ids.txt"))]
  sizes = {}
  for l in open(os.path.join(root, "image_sizes.txt")):
    i, w, h = l.strip("\n").split(",")
    sizes[i] = (float(w), float(h))
  gts = {}
  for l in open(os.path.join(root, "localization.txt")):
    i, *c = l.strip("\n").split(",")
    w, h = sizes[i]
    x0, y0, x1, y1 = (float(v) for v in c)
    gts.setdefault(i, []).append([int(x0 * 224.0 / w), int(y0 * 224.0 / h),
                                  int(x1 * 224.0 / w), int(y1 * 224.0 / h)])
  thresholds = list(np.arange(0, 1, interval))
  correct = {d: np.zeros(len(thresholds)) for d in ious}
  for i in ids:
    m = np.load(os.path.join(scoremap_root, i + ".npy")).astype(np.float64)
    hh, ww = m.shape
    gray = np.expand_dims((m * 255).astype(np.uint8), 2)
    gt = np.asarray(gts[i])
    best = []
    for t in thresholds:
      _, fg = cv2.threshold(gray, int(t * np.max(gray)), 255, cv2.THRESH_BINARY)
      cs = cv2.findContours(fg, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
      if len(cs) == 0:
        bx = np.asarray([[0, 0, 0, 0]])
      else:
        if not multi:
          cs = [max(cs, key=cv2.contourArea)]
        bx = []
        for c in cs:
          x, y, bw, bh = cv2.boundingRect(c)
          bx.append([x, y, min(x + bw, ww - 1), min(y + bh, hh - 1)])
        bx = np.asarray(bx)
      best.append(float(wsol_eval._iou_matrix(bx, gt).max()))
    for d in ious:
      correct[d][np.where(np.asarray(best) >= d / 100)[0]] += 1
  return float((correct[50] * 100. / float(len(ids))).max())


def run_cli(metadata_root: str, scoremap_root: str, multi: bool, extra=()) -> tuple[float, float]:
  env = dict(os.environ, PYTHONPATH=REPO)
  args = [sys.executable, "-m", "infocam_jax.wsol", "--scoremap_root", scoremap_root,
          "--metadata_root", metadata_root, "--dataset_name", "CUB", "--split", "test",
          "--no_progress", *extra] + (["--multi_contour_eval"] if multi else [])
  r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
  t0 = time.perf_counter()
  proc = subprocess.run(args, capture_output=True, text=True, env=env)
  wall = time.perf_counter() - t0
  r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
  if proc.returncode != 0:
    raise RuntimeError(proc.stderr)
  cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
  return wall, float(proc.stdout.strip().splitlines()[-1].split(": ")[1]), cpu


def rss_run(tmp: str, num: int, sources: str, multi: bool) -> float:
  """Peak RSS (MiB) of the CLI on ``num`` ids whose maps are links to a few real files."""
  meta = os.path.join(tmp, "rss", "metadata", "CUB", "test")
  sm = os.path.join(tmp, "rss", "scoremaps")
  os.makedirs(meta)
  os.makedirs(sm)
  real = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(sources) for f in fs)[:64]
  ids = [f"m{k:06d}.jpg" for k in range(num)]
  for k, i in enumerate(ids):
    os.symlink(real[k % len(real)], os.path.join(sm, i + ".npy"))
  with open(os.path.join(meta, "image_ids.txt"), "w") as f:
    f.write("".join(i + "\n" for i in ids))
  with open(os.path.join(meta, "image_sizes.txt"), "w") as f:
    f.write("".join(f"{i},400,300\n" for i in ids))
  with open(os.path.join(meta, "localization.txt"), "w") as f:
    f.write("".join(f"{i},40,30,300,250\n" for i in ids))
  # A fresh parent whose only child is the CLI: its RUSAGE_CHILDREN peak is the CLI's.
  code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
          "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
          "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t)")
  cli = [sys.executable, "-m", "infocam_jax.wsol", "--scoremap_root", sm, "--metadata_root",
         os.path.join(tmp, "rss", "metadata"), "--dataset_name", "CUB", "--split", "test",
         "--no_progress"] + (["--multi_contour_eval"] if multi else [])
  out = subprocess.run([sys.executable, "-c", code, *cli], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=REPO), check=True).stdout.split()
  return int(out[0]) / 1024.0, float(out[1])


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--num-maps", type=int, default=5794)
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--multi-contour", action="store_true", help="V2 (every contour)")
  ap.add_argument("--rss-maps", type=int, default=50000, help="0: skip the RSS run")
  ap.add_argument("--json", default=None)
  ap.add_argument("--keep", default=None, help="write the data here and keep it")
  args = ap.parse_args(argv)
  tmp = args.keep or tempfile.mkdtemp(prefix="wsol_cli_bench_")
  try:
    t0 = time.perf_counter()
    meta, sm = write_dataset(tmp, args.num_maps)
    print(f"wrote {args.num_maps} float64 224x224 maps in {time.perf_counter() - t0:.1f} s")
    run_cli(meta, sm, args.multi_contour)  # warm the numba cache and the page cache
    rows = []
    if args.rounds == 0:
      return {}
    for r in range(args.rounds):
      cli_wall, cli_value, cli_cpu = run_cli(meta, sm, args.multi_contour)
      t0, c0 = time.perf_counter(), time.process_time()
      peer_value = peer_loop(meta, sm, args.multi_contour)
      peer_wall, peer_cpu = time.perf_counter() - t0, time.process_time() - c0
      if cli_value != peer_value:
        raise SystemExit(f"values differ: CLI {cli_value} vs peer loop {peer_value}")
      rows.append({"cli_s": cli_wall, "peer_s": peer_wall, "speedup": peer_wall / cli_wall,
                   "cli_cpu_s": cli_cpu, "peer_cpu_s": peer_cpu,
                   "cpu_speedup": peer_cpu / cli_cpu, "localization": cli_value})
      print(f"round {r}: CLI {cli_wall:.2f} s ({args.num_maps / cli_wall:.0f} maps/s), peer loop "
            f"{peer_wall:.2f} s ({args.num_maps / peer_wall:.1f} maps/s), x{peer_wall / cli_wall:.1f}, "
            f"localization {cli_value} (equal); CPU s: CLI {cli_cpu:.2f} (all threads, start-up "
            f"included), peer {peer_cpu:.2f}, x{peer_cpu / cli_cpu:.1f}")
    out = {"num_maps": args.num_maps, "multi_contour": args.multi_contour, "rounds": rows,
           "median_speedup": float(np.median([r["speedup"] for r in rows])),
           "median_cpu_speedup": float(np.median([r["cpu_speedup"] for r in rows])),
           "machine": {"cpu": platform.processor() or platform.machine(),
                       "cores": os.cpu_count(), "python": platform.python_version()},
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
      out["machine"]["cpu"] = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                               if l.startswith("model name")][0]
    except (OSError, IndexError):
      pass
    print(f"median speed-up x{out['median_speedup']:.1f} (wall), "
          f"x{out['median_cpu_speedup']:.1f} (CPU time)")
    if args.rss_maps:
      rss, wall = rss_run(tmp, args.rss_maps, sm, args.multi_contour)
      out["rss"] = {"num_maps": args.rss_maps, "peak_rss_mib": rss, "wall_s": wall}
      print(f"RSS: {args.rss_maps} maps, peak {rss:.0f} MiB, {wall:.1f} s "
            f"({args.rss_maps / wall:.0f} maps/s)")
    if args.json:
      with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    return out
  finally:
    if not args.keep:
      shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
  main()
