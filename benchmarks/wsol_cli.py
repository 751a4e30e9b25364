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
    python benchmarks/wsol_cli.py --pxap --num-maps 2000           # OpenImages PxAP

Each round prints the CLI's wall, CPU time (all threads, start-up included) and
peak RSS (``getrusage(RUSAGE_CHILDREN)`` in a small launcher: a child forked from
this process would inherit its peak), the peer loop's wall and CPU, both ratios
and whether the two ``localization:`` values are equal (a difference stops the
run). ``--pxap``: OpenImages-style data (PNG instance masks and ignore masks at
300-700 px, float64 224 x 224 maps), the peer's ``MaskEvaluator`` loop
(``get_mask`` with OpenCV, two ``np.histogram`` per map) against the CLI, and
then the accumulation alone on maps and masks in memory (one thread).

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


def run_cli(metadata_root: str, scoremap_root: str, multi: bool, extra=(), dataset="CUB",
            threads=None) -> tuple[float, float, float, float]:
  """The CLI in a subprocess: (wall s, localization, CPU s of all its threads, peak RSS MiB)."""
  env = dict(os.environ, PYTHONPATH=REPO)
  args = [sys.executable, "-m", "infocam_jax.wsol", "--scoremap_root", scoremap_root,
          "--metadata_root", metadata_root, "--dataset_name", dataset, "--split", "test",
          "--no_progress", *extra] + (["--multi_contour_eval"] if multi else []) + (
              ["--num_threads", str(threads)] if threads else [])
  # Linux keeps ru_maxrss across fork + exec: a child forked from this (large) process would
  # report this process's RSS as its own peak (1,166 MiB instead of 217, 2026-12-08). So the
  # CLI is started by a small launcher and its rusage read there.
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *args], stdout=out, stderr=err,
                          env=env, check=False)
    wall = time.perf_counter() - t0
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  if proc.returncode != 0:
    raise RuntimeError(stderr)
  utime, stime, maxrss = stderr.rsplit("__RUSAGE__", 1)[1].split()
  cpu = float(utime) + float(stime)
  return wall, float(stdout.strip().splitlines()[-1].split(": ")[1]), cpu, int(maxrss) / 1024.0


_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(f'\\n__RUSAGE__ {ru.ru_utime} {ru.ru_stime} {ru.ru_maxrss}\\n')\n"
    "sys.exit(rc)\n")


def write_mask_dataset(root: str, num: int, seed: int = 0) -> tuple[str, str, str]:
  """OpenImages/test metadata, PNG instance and ignore masks at original image sizes
  (300-700 px a side, 1-3 instances) and float64 224 x 224 maps; (metadata, masks, maps)."""
  maps, _, _ = wsol_eval.synthetic_maps(num, 224, seed)
  rng = np.random.default_rng(seed + 2)
  meta = os.path.join(root, "metadata", "OpenImages", "test")
  mask_root = os.path.join(root, "dataset")
  sm = os.path.join(root, "scoremaps")
  os.makedirs(meta)
  ids, locs = [], []
  for k in range(num):
    image_id = f"test/c{k % 50:02d}/{k:06d}.jpg"
    ids.append(image_id)
    w, h = int(rng.integers(300, 701)), int(rng.integers(300, 701))
    for j in range(int(rng.integers(1, 4))):
      mk = np.zeros((h, w), np.uint8)
      cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
      rx, ry = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
      cv2.ellipse(mk, (int(cx), int(cy)), (int(rx), int(ry)), float(rng.uniform(0, 180)), 0, 360,
                  255, -1)
      mp = f"test/c{k % 50:02d}/{k:06d}_m{j}.png"
      ip = ""
      if j == 0:
        ip = f"test/c{k % 50:02d}/{k:06d}_ignore.png"
        ig = np.zeros((h, w), np.uint8)
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        ig[y0:y0 + int(rng.integers(10, h // 2)), x0:x0 + int(rng.integers(10, w // 2))] = 255
        os.makedirs(os.path.join(mask_root, "OpenImages", os.path.dirname(ip)), exist_ok=True)
        cv2.imwrite(os.path.join(mask_root, "OpenImages", ip), ig)
      cv2.imwrite(os.path.join(mask_root, "OpenImages", mp), mk)
      locs.append(f"{image_id},{mp},{ip}")
    p = os.path.join(sm, image_id + ".npy")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    np.save(p, np.asarray(maps[k], np.float64))
  for name, rows in (("image_ids", ids), ("localization", locs),
                     ("class_labels", [f"{i},0" for i in ids])):
    with open(os.path.join(meta, name + ".txt"), "w") as f:
      f.write("".join(r + "\n" for r in rows))
  return os.path.join(root, "metadata"), mask_root, sm


def _peer_mask(base: str, paths, ignore: str) -> np.ndarray:
  """wsolevaluation's ``get_mask``: instances and ignore mask, INTER_NEAREST to 224, > 0.5."""
  def load(p):
    x = np.float32(cv2.imread(os.path.join(base, p), cv2.IMREAD_GRAYSCALE))
    return cv2.resize(x, (224, 224), interpolation=cv2.INTER_NEAREST)
  fg = np.stack([load(p) > 0.5 for p in paths]).any(0)
  ign = np.logical_and(load(ignore) > 0.5, ~fg)
  return fg.astype(np.uint8) + 255 * ign.astype(np.uint8)


def peer_pxap_loop(metadata_root: str, mask_root: str, scoremap_root: str,
                   interval: float = 0.01) -> tuple[float, float]:
  """evaluation.py's MaskEvaluator loop: (PxAP, seconds in the np.histogram accumulation)."""
  root = os.path.join(metadata_root, "OpenImages", "test")
  ids = [l.strip("\n") for l in open(os.path.join(root, "image_ids.txt"))]
  masks, ignore = {}, {}
  for l in open(os.path.join(root, "localization.txt")):
    i, mp, ip = l.strip("\n").split(",")
    if i in masks:
      masks[i].append(mp)
    else:
      masks[i], ignore[i] = [mp], ip
  th = list(np.arange(0, 1, interval))
  edges = np.append(th, [1.0, 2.0, 3.0])
  t_hist = np.zeros(len(th) + 2)
  f_hist = np.zeros(len(th) + 2)
  base = os.path.join(mask_root, "OpenImages")
  acc = 0.0
  for i in ids:
    m = np.load(os.path.join(scoremap_root, i + ".npy")).astype(np.float64)
    gt = _peer_mask(base, masks[i], ignore[i])
    t0 = time.process_time()
    t_hist += np.histogram(m[gt == 1], bins=edges)[0]
    f_hist += np.histogram(m[gt == 0], bins=edges)[0]
    acc += time.process_time() - t0
  tp = t_hist[::-1].cumsum()
  fn = t_hist.sum() - tp
  fp = f_hist[::-1].cumsum()
  nz = (tp + fp) != 0
  with np.errstate(invalid="ignore", divide="ignore"):
    prec = tp / (tp + fp)
    rec = tp / (tp + fn)
  return float((prec[1:] * np.diff(rec))[nz[1:]].sum() * 100), acc


def pxap_accumulate_only(metadata_root: str, mask_root: str, scoremap_root: str, num: int,
                         interval: float = 0.01) -> dict:
  """The accumulation alone on maps and masks in memory (one thread, CPU s per map): the
  peer's two np.histogram calls vs :meth:`PxAP.histograms` (numba, one pass); equal
  histograms checked."""
  from infocam_jax.wsol import pxap
  root = os.path.join(metadata_root, "OpenImages", "test")
  rows = [l.strip("\n").split(",") for l in open(os.path.join(root, "localization.txt"))]
  by_id: dict = {}
  for i, mp, ip in rows:
    by_id.setdefault(i, [[], ip])[0].append(mp)
  ids = list(by_id)[:num]
  base = os.path.join(mask_root, "OpenImages")
  maps = [np.load(os.path.join(scoremap_root, i + ".npy")) for i in ids]
  gts = [_peer_mask(base, *by_id[i]) for i in ids]
  edges = np.append(np.arange(0, 1, interval), [1.0, 2.0, 3.0])
  ev = pxap.PxAP(np.arange(0, 1, interval))
  ev.histograms(maps[0], gts[0])  # numba cache load
  t0 = time.process_time()
  ref = [(np.histogram(m[g == 1], bins=edges)[0], np.histogram(m[g == 0], bins=edges)[0])
         for m, g in zip(maps, gts)]
  peer = time.process_time() - t0
  t0 = time.process_time()
  ours = [ev.histograms(m, g) for m, g in zip(maps, gts)]
  mine = time.process_time() - t0
  for (a, b), (c, d) in zip(ref, ours):
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)
  return {"maps": len(ids), "peer_ms_per_map": 1e3 * peer / len(ids),
          "ours_ms_per_map": 1e3 * mine / len(ids), "ratio": peer / mine, "equal": True}


def rss_run(tmp: str, num: int, sources: str, multi: bool) -> float:
  """Peak RSS (MiB) of the CLI on ``num`` ids whose maps are links to a few real files."""
  shutil.rmtree(os.path.join(tmp, "rss"), ignore_errors=True)
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


def thread_scaling(metadata_root: str, scoremap_root: str, dataset: str, extra=(),
                   runs: int = 3) -> dict:
  """The CLI in this process, warm (start-up paid once), ``--num_threads`` 1 and 2 interleaved:
  wall and CPU (all threads) per run. On a loaded machine a process gets CPU per runnable
  thread, so the wall ratio still shows whether the work runs in parallel."""
  import contextlib
  import io
  sys.path.insert(0, REPO)
  from infocam_jax.wsol import cli

  def one(nt):
    c0, w0 = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
      code = cli.main(["--scoremap_root", scoremap_root, "--metadata_root", metadata_root,
                       "--dataset_name", dataset, "--split", "test", "--no_progress",
                       "--num_threads", str(nt), *extra])
    assert code == 0
    return time.perf_counter() - w0, time.process_time() - c0

  one(2)
  res = {1: [], 2: []}
  for _ in range(runs):
    for nt in (1, 2):
      res[nt].append(one(nt))
  w1, w2 = (float(np.median([r[0] for r in res[nt]])) for nt in (1, 2))
  c1, c2 = (float(np.median([r[1] for r in res[nt]])) for nt in (1, 2))
  return {"wall_s_1_thread": w1, "wall_s_2_threads": w2, "cpu_s_1_thread": c1,
          "cpu_s_2_threads": c2, "wall_ratio": w1 / w2}


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--num-maps", type=int, default=5794)
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--multi-contour", action="store_true", help="V2 (every contour)")
  ap.add_argument("--pxap", action="store_true",
                  help="OpenImages PxAP (PNG masks + ignore masks) instead of CUB boxes")
  ap.add_argument("--threads", type=int, default=None,
                  help="the CLI's --num_threads (default: every CPU it may use)")
  ap.add_argument("--rss-maps", type=int, default=50000, help="0: skip the RSS run")
  ap.add_argument("--scaling", action="store_true",
                  help="also the in-process 1-vs-2-thread scaling (warm, interleaved)")
  ap.add_argument("--json", default=None)
  ap.add_argument("--keep", default=None, help="write the data here and keep it (reused if there)")
  args = ap.parse_args(argv)
  tmp = args.keep or tempfile.mkdtemp(prefix="wsol_cli_bench_")
  try:
    t0 = time.perf_counter()
    if args.pxap:
      mask_root = os.path.join(tmp, "dataset")
      if os.path.isdir(os.path.join(tmp, "metadata")):
        meta, sm = os.path.join(tmp, "metadata"), os.path.join(tmp, "scoremaps")
      else:
        meta, mask_root, sm = write_mask_dataset(tmp, args.num_maps)
      extra, dataset = ("--mask_root", mask_root), "OpenImages"
      peer = lambda: peer_pxap_loop(meta, mask_root, sm)[0]
    else:
      if os.path.isdir(os.path.join(tmp, "metadata")):
        meta, sm = os.path.join(tmp, "metadata"), os.path.join(tmp, "scoremaps")
      else:
        meta, sm = write_dataset(tmp, args.num_maps)
      extra, dataset = (), "CUB"
      peer = lambda: peer_loop(meta, sm, args.multi_contour)
    print(f"data: {args.num_maps} float64 224x224 maps ({dataset}) in "
          f"{time.perf_counter() - t0:.1f} s")
    run_cli(meta, sm, args.multi_contour, extra, dataset, args.threads)  # warm caches
    rows = []
    if args.rounds == 0:
      return {}
    for r in range(args.rounds):  # interleaved: CLI, peer, CLI, peer, ...
      cli_wall, cli_value, cli_cpu, cli_rss = run_cli(meta, sm, args.multi_contour, extra,
                                                      dataset, args.threads)
      t0, c0 = time.perf_counter(), time.process_time()
      peer_value = peer()
      peer_wall, peer_cpu = time.perf_counter() - t0, time.process_time() - c0
      equal = cli_value == peer_value
      rows.append({"cli_s": cli_wall, "peer_s": peer_wall, "speedup": peer_wall / cli_wall,
                   "cli_cpu_s": cli_cpu, "peer_cpu_s": peer_cpu,
                   "cpu_speedup": peer_cpu / cli_cpu, "cli_peak_rss_mib": cli_rss,
                   "localization": cli_value, "peer_localization": peer_value, "equal": equal})
      print(f"round {r}: CLI {cli_wall:.2f} s wall, {cli_cpu:.2f} CPU s (all threads, start-up "
            f"included), peak RSS {cli_rss:.0f} MiB; peer loop {peer_wall:.2f} s wall, "
            f"{peer_cpu:.2f} CPU s; x{peer_wall / cli_wall:.1f} wall, x{peer_cpu / cli_cpu:.1f} "
            f"CPU; localization {cli_value} vs {peer_value} "
            f"({'equal' if equal else 'DIFFERENT'})")
      if not equal:
        raise SystemExit(f"values differ: CLI {cli_value} vs peer loop {peer_value}")
    out = {"num_maps": args.num_maps, "dataset": dataset, "multi_contour": args.multi_contour,
           "cli_threads": args.threads, "rounds": rows,
           "median_speedup": float(np.median([r["speedup"] for r in rows])),
           "median_cpu_speedup": float(np.median([r["cpu_speedup"] for r in rows])),
           "all_equal": all(r["equal"] for r in rows),
           "machine": {"cpu": platform.processor() or platform.machine(),
                       "cores": os.cpu_count(), "python": platform.python_version(),
                       "load_average": os.getloadavg()},
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
      out["machine"]["cpu"] = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                               if l.startswith("model name")][0]
    except (OSError, IndexError):
      pass
    print(f"median speed-up x{out['median_speedup']:.1f} (wall), "
          f"x{out['median_cpu_speedup']:.1f} (CPU time); localization equal in every round: "
          f"{out['all_equal']}; load average {out['machine']['load_average']}")
    if args.scaling:
      sc = thread_scaling(meta, sm, dataset, extra + (("--multi_contour_eval",)
                                                       if args.multi_contour else ()))
      out["scaling"] = sc
      print(f"in process, warm: 1 thread {sc['wall_s_1_thread']:.2f} s wall / "
            f"{sc['cpu_s_1_thread']:.2f} CPU s, 2 threads {sc['wall_s_2_threads']:.2f} s / "
            f"{sc['cpu_s_2_threads']:.2f} CPU s: wall ratio {sc['wall_ratio']:.2f}")
    if args.pxap:
      acc = pxap_accumulate_only(meta, mask_root, sm, min(args.num_maps, 500))
      out["accumulate_only"] = acc
      print(f"PxAP accumulation alone ({acc['maps']} maps in memory, one thread): peer "
            f"np.histogram {acc['peer_ms_per_map']:.3f} CPU ms/map, ours "
            f"{acc['ours_ms_per_map']:.3f}, x{acc['ratio']:.1f}, histograms equal")
    elif args.rss_maps:
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
