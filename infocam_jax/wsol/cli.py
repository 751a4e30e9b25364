"""``infocam-wsol-eval`` (``python -m infocam_jax.wsol``): a drop-in for wsolevaluation's ``evaluation.py``.

Same flags, defaults and files as clovaai/wsolevaluation's ``evaluation.py``
(``--scoremap_root --metadata_root --mask_root --dataset_name --split
--cam_curve_interval --multi_contour_eval --multi_iou_eval
--iou_threshold_list``), the same numbers, and the same last line
``localization: <value>``::

    infocam-wsol-eval --scoremap_root train_log/scoremaps --metadata_root metadata \\
        --dataset_name CUB --split test --multi_contour_eval --multi_iou_eval

reads ``<scoremap_root>/<image_id>.npy`` for every id of
``<metadata_root>/CUB/test/image_ids.txt`` and prints MaxBoxAccV2. Under the
default ``--protocol wsolevaluation`` the maps are evaluated as saved (no
resize, no normalisation; real 2-D arrays in [0, 1] without NaN, as the
peer's ``check_scoremap_validity``; float32 maps are read as their float64
values, as the peer's ``t2n`` does), GT boxes are resized to 224 x 224 with
``int()`` truncation (:func:`infocam_jax.wsol.ground_truth.protocol_gt_boxes`), V1 =
the largest contour's box, V2 (``--multi_contour_eval``) = every contour's
box, MaxBoxAcc = max over thresholds at IoU 50 (``--multi_iou_eval``: the
mean over ``--iou_threshold_list``). OpenImages gives PxAP
(:mod:`infocam_jax.wsol.pxap`; masks under ``<mask_root>/OpenImages/``).

Beyond the peer: ``--protocol {wsolevaluation,paper,clean}`` (this
project's protocols, :mod:`infocam_jax.wsol.box_accuracy`), ``--output
results.json`` (every number, the per-threshold curves, the protocol record,
versions), ``--num_threads`` (worker threads: each reads a chunk of maps and
evaluates it with the GIL released, so reading and evaluation run on every
core), ``--chunk_size`` (maps per chunk: one chunk in memory per worker),
``--allow_missing``, a progress bar
(maps/s, on stderr when it is a terminal) and a short table on stdout before
the ``localization:`` line.

Bad input ends with a one-line message on stderr and exit status 2: a
missing metadata file or malformed line (``file:line``), a missing score map
(image id and path; ``--allow_missing`` skips and counts them), a map of the
wrong rank or type, maps with NaN or values outside [0, 1] under the
wsolevaluation protocol (all of them are counted first), unreadable masks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from infocam_jax.wsol import metadata as meta_lib
from infocam_jax.wsol import scoremaps

PROG = "infocam-wsol-eval"
PROTOCOL_CHOICES = ("wsolevaluation", "paper", "clean")
RESIZE_LENGTH = 224  # wsolevaluation's _RESIZE_LENGTH: the frame of GT boxes and masks


class InputError(ValueError):
  """Bad input found by the command line (reported in one line, exit status 2)."""


def str2bool(v: str) -> bool:
  """wsolevaluation's ``config.str2bool``."""
  if v.lower() in ("yes", "true", "t", "y", "1"):
    return True
  if v.lower() in ("no", "false", "f", "n", "0"):
    return False
  raise argparse.ArgumentTypeError("Boolean value expected.")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog=PROG, description="Evaluate saved WSOL score maps exactly as clovaai/wsolevaluation's "
      "evaluation.py (MaxBoxAcc, MaxBoxAccV2, PxAP), streaming and faster.")
  # wsolevaluation's flags, defaults and meaning.
  p.add_argument("--scoremap_root", type=str, default="train_log/scoremaps/",
                 help="The root folder for score maps to be evaluated (<image_id>.npy).")
  p.add_argument("--metadata_root", type=str, default="metadata/", help="Root folder of metadata.")
  p.add_argument("--mask_root", type=str, default="dataset/",
                 help="Root folder of masks (OpenImages: <mask_root>/OpenImages/...).")
  p.add_argument("--dataset_name", type=str, required=True, choices=meta_lib.DATASETS,
                 help="One of CUB, ILSVRC, OpenImages.")
  p.add_argument("--split", type=str, required=True, help="One of val, test (or train).")
  p.add_argument("--cam_curve_interval", type=float, default=0.01,
                 help="At which threshold intervals the score maps are evaluated.")
  p.add_argument("--multi_contour_eval", type=str2bool, nargs="?", const=True, default=False)
  p.add_argument("--multi_iou_eval", type=str2bool, nargs="?", const=True, default=False)
  p.add_argument("--iou_threshold_list", nargs="+", type=int, default=[30, 50, 70])
  # Beyond the peer.
  p.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="wsolevaluation",
                 help="wsolevaluation (default: evaluation.py exactly), clean or paper "
                 "(see infocam_jax.wsol.box_accuracy).")
  p.add_argument("--output", type=str, default=None,
                 help="Write every number, the curves, the protocol record and versions here "
                 "(JSON).")
  p.add_argument("--num_threads", type=int, default=None,
                 help="Worker threads, each reading and evaluating whole chunks of maps "
                 "(default: all usable CPUs).")
  p.add_argument("--chunk_size", type=int, default=64,
                 help="Maps evaluated at once; memory holds one chunk of maps per worker "
                 "thread (wsolevaluation protocol and PxAP; the clean and paper protocols: at "
                 "most 4 chunks).")
  p.add_argument("--allow_missing", action="store_true",
                 help="Skip missing score maps (counted and reported) instead of failing.")
  p.add_argument("--no_progress", action="store_true", help="No progress bar.")
  return p


def _versions() -> dict[str, str]:
  import numba
  import infocam_jax
  out = {"infocam_jax": infocam_jax.__version__, "numpy": np.__version__,
         "numba": numba.__version__, "python": platform.python_version()}
  try:
    import cv2
    out["opencv"] = cv2.__version__
  except ImportError:  # pragma: no cover
    pass
  return out


def _check_args(args: argparse.Namespace) -> tuple[np.ndarray, list[int]]:
  if not (args.cam_curve_interval > 0):
    raise InputError(f"--cam_curve_interval must be > 0, got {args.cam_curve_interval}.")
  thresholds = np.arange(0, 1, args.cam_curve_interval)
  if thresholds.size > 65535:
    raise InputError(f"--cam_curve_interval {args.cam_curve_interval} gives {thresholds.size} "
                     "thresholds; at most 65535 are supported.")
  ious = list(args.iou_threshold_list)
  bad = [v for v in ious if not 0 < v <= 100]
  if bad:
    raise InputError(f"--iou_threshold_list values must be in 1..100 (percent), got {bad}.")
  if len(set(ious)) != len(ious):
    raise InputError(f"--iou_threshold_list has duplicates {ious}: wsolevaluation would count a "
                     "duplicated threshold twice per image (accuracies above 100%).")
  if not args.multi_iou_eval and 50 not in ious and args.dataset_name not in \
      meta_lib.MASK_DATASETS:
    raise InputError("--iou_threshold_list must contain 50 unless --multi_iou_eval is given "
                     "(MaxBoxAcc is read at IoU 50).")
  if args.chunk_size < 1:
    raise InputError(f"--chunk_size must be >= 1, got {args.chunk_size}.")
  if args.num_threads is not None and args.num_threads < 1:
    raise InputError(f"--num_threads must be >= 1, got {args.num_threads}.")
  if args.dataset_name in meta_lib.MASK_DATASETS and args.protocol != "wsolevaluation":
    raise InputError("PxAP (OpenImages) is defined by wsolevaluation only: use "
                     "--protocol wsolevaluation.")
  return thresholds, ious


def _peer_validity(m: np.ndarray) -> str | None:
  """Why wsolevaluation's ``check_scoremap_validity`` would reject the map, or None."""
  if m.size == 0:
    return None
  lo, hi = m.min(), m.max()  # NaN propagates through both
  if np.isnan(lo) or np.isnan(hi):
    return "nan"
  if hi > 1 or lo < 0:
    return "range"
  return None


def _as_kernel_input(m: np.ndarray) -> np.ndarray:
  """float32 and float64 maps pass as saved (float64 is quantised exactly by the evaluator);
  other real types become float64, as the peer's ``t2n``."""
  if m.dtype in (np.float32, np.float64):
    return m
  return m.astype(np.float64)


class _Progress:
  def __init__(self, total: int, disable: bool):
    self.bar = None
    if not disable and sys.stderr.isatty():
      from tqdm import tqdm
      self.bar = tqdm(total=total, unit="map", file=sys.stderr, smoothing=0.1)

  def update(self, n: int) -> None:
    if self.bar is not None:
      self.bar.update(n)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


class PeerBoxCounts:
  """evaluation.py's ``BoxEvaluator`` counts on the numba engine, without JAX.

  The wsolevaluation protocol on maps as saved: ``uint8(255 m)`` of the float64
  value (float64 maps are read as float64 by the engine, float32 maps through
  their exact float64 values), ``gray > int(t * max(gray))``, V1 = the box of
  the largest contour (``cv2.contourArea``, OpenCV's tie order), V2 = every
  outer and hole contour, boxes ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``
  in the map's own frame, ``(0, 0, 0, 0)`` for an empty foreground, IoU ">=
  delta" decided division free in float32 as the engine does everywhere. The
  same numbers as ``max_box_accuracy("wsolevaluation", normalize=False)``
  (tested), without importing JAX (whose start-up dominates short runs).

  :meth:`levels` is pure (thread safe: the command line calls it from several
  threads at once, one engine thread each); :meth:`add` / :meth:`update`
  accumulate. Integer counts: any split or order gives the same numbers.
  """

  def __init__(self, thresholds: np.ndarray, iou_thresholds: Sequence[float], v2: bool,
               num_threads: int | None = None):
    from infocam_jax.wsol import conventions
    self.c = conventions
    self.table = conventions.gray_threshold_table(thresholds)
    self.iou_thr = conventions.iou_threshold_array(iou_thresholds)
    self.num_t = len(thresholds)
    self.v2 = v2
    self.num_threads = num_threads
    self.hits = np.zeros((len(self.iou_thr), self.num_t), np.int64)
    self.num_images = 0

  def levels(self, maps: np.ndarray, gt: np.ndarray, gt_mask: np.ndarray,
             num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(level, stats)``: int64 ``[B, T]`` IoU thresholds met per map and threshold, and
    float64 ``[B, 3]`` (min, max, has NaN) of each map (from the quantisation pass)."""
    from infocam_jax.wsol import _numba_kernel
    c = self.c
    if maps.dtype != np.float64:
      maps = np.ascontiguousarray(maps, np.float32)  # exactly its float64 values
    b, h, w = maps.shape
    gt = np.ascontiguousarray(gt, np.float32)
    gt_mask = np.ascontiguousarray(gt_mask, np.bool_)
    out = _numba_kernel.scan_maps(
        maps, mode=c.QUANT_UINT8, normalize=False, thresholds=np.zeros(self.num_t, np.float32),
        table=self.table, want_v1=not self.v2, largest=c.LARGEST_CONTOUR,
        gt=gt if self.v2 else None, gt_valid=gt_mask if self.v2 else None,
        iou_thr=self.iou_thr if self.v2 else None, box_mode=c.BOX_CONTOUR_CLIPPED, clamp=True,
        empty_box=(0, 0, 0, 0), hole_boxes=self.v2, max_boxes=0,
        num_threads=self.num_threads if num_threads is None else num_threads, want_stats=True)
    if self.v2:
      level = out["v2_level"].astype(np.int64)
    else:
      level = np.zeros((b, self.num_t), np.int64)
      _numba_kernel.v1_hit_levels(out["box"], out["area"], gt, gt_mask, self.iou_thr,
                                  c.BOX_CONTOUR_CLIPPED, w, h, level)
    return level, out["stats"]

  def hits_of(self, level: np.ndarray) -> np.ndarray:
    """int64 ``[J, T]``: maps meeting IoU threshold j at CAM threshold t."""
    j = np.arange(len(self.iou_thr))
    return (level[:, None, :] > j[None, :, None]).sum(0)

  def add(self, hits: np.ndarray, num_images: int) -> None:
    self.hits += hits
    self.num_images += num_images

  def update(self, maps: np.ndarray, gt: np.ndarray, gt_mask: np.ndarray) -> None:
    level, _ = self.levels(maps, gt, gt_mask)
    self.add(self.hits_of(level), maps.shape[0])

  def curves(self) -> np.ndarray:
    """``[J, T]`` accuracies in percent, as the peer: ``hits * 100. / count``."""
    return self.hits.astype(np.float64) * 100. / float(self.num_images)


def _peer_chunk(counts: PeerBoxCounts, chunk: scoremaps.Chunk, gt: np.ndarray,
                gt_mask: np.ndarray) -> tuple[np.ndarray, int, dict[str, list[int]]]:
  """One chunk under the wsolevaluation protocol, in the calling worker thread: ``(hits
  [J, T], maps counted, {"nan": ids, "range": ids})``. Validity comes from the engine's
  quantisation pass (``check_scoremap_validity``: NaN, then values outside [0, 1]); invalid
  maps are left out of the hits (the run fails on them anyway)."""
  groups: dict[tuple, list[int]] = {}
  for pos, m in enumerate(chunk.maps):
    groups.setdefault((m.shape, m.dtype), []).append(pos)
  hits = np.zeros_like(counts.hits)
  n = 0
  invalid: dict[str, list[int]] = {"nan": [], "range": []}
  for (shape, dtype), poss in groups.items():
    idx = np.asarray([chunk.indices[p] for p in poss])
    b = chunk.batch
    if b is not None and b.shape == (len(poss),) + shape and b.dtype == dtype:
      batch = b  # the maps were read into these rows, in this order: no copy
    else:
      batch = np.stack([chunk.maps[p] for p in poss])
    if dtype not in (np.float32, np.float64):
      batch = batch.astype(np.float64)  # the peer's t2n
    level, stats = counts.levels(batch, gt[idx], gt_mask[idx], num_threads=1)
    nan = stats[:, 2] != 0
    rng = ~nan & ((stats[:, 1] > 1) | (stats[:, 0] < 0))
    if nan.any() or rng.any():
      invalid["nan"] += idx[nan].tolist()
      invalid["range"] += idx[rng].tolist()
      level = level[~(nan | rng)]
    hits += counts.hits_of(level)
    n += level.shape[0]
  return hits, n, invalid


def _num_threads(args: argparse.Namespace) -> int:
  if args.num_threads is not None:
    return args.num_threads
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # pragma: no cover - non-Linux
    return max(1, os.cpu_count() or 1)


def _evaluate_boxes(args: argparse.Namespace, meta: meta_lib.Metadata, thresholds: np.ndarray, ious: list[int]
                    ) -> dict[str, Any]:
  from infocam_jax.wsol import ground_truth
  ids = meta.image_ids
  n = len(ids)
  g = max(len(meta.boxes[i]) for i in ids)
  raw = np.zeros((n, g, 4), np.float64)
  size_wh = np.ones((n, 1, 2), np.float64)
  gt_mask = np.zeros((n, g), bool)
  for k, image_id in enumerate(ids):
    b = meta.boxes[image_id]
    raw[k, :len(b)] = b
    size_wh[k, 0] = meta.image_sizes[image_id]
    gt_mask[k, :len(b)] = True
  # One call for every box (elementwise, so the same numbers as one image at a time; the padding
  # rows are masked out by gt_mask).
  gt = np.asarray(ground_truth.protocol_gt_boxes(raw, size_wh, args.protocol, RESIZE_LENGTH),
                  np.float32)
  uniq = sorted(set(ious))
  v2 = bool(args.multi_contour_eval)
  peer = args.protocol == "wsolevaluation"
  if peer:
    counts = PeerBoxCounts(thresholds, [u / 100 for u in uniq], v2, args.num_threads)
  else:
    from infocam_jax.wsol import box_accuracy
    ev = box_accuracy.max_box_accuracy(
        args.protocol, cam_thresholds=thresholds, iou_thresholds=[u / 100 for u in uniq],
        loc_iou=0.5 if 50 in uniq else uniq[0] / 100, image_size=(RESIZE_LENGTH, RESIZE_LENGTH),
        v1=not v2, v2=v2, backend="numba", num_threads=args.num_threads)
    state = ev.init()
  paths = [meta_lib.scoremap_path(args.scoremap_root, i) for i in ids]
  invalid: dict[str, list[int]] = {"nan": [], "range": []}
  missing: list[int] = []
  bar = _Progress(n, args.no_progress)
  t0 = time.perf_counter()
  try:
    if peer:  # every worker thread reads a chunk and runs the engine on it (one thread each)
      for chunk, (hits, num, bad) in scoremaps.map_chunks(
          ids, paths, lambda ch: _peer_chunk(counts, ch, gt, gt_mask),
          chunk_size=args.chunk_size, num_workers=_num_threads(args),
          allow_missing=args.allow_missing):
        missing += chunk.missing
        counts.add(hits, num)
        invalid["nan"] += bad["nan"]
        invalid["range"] += bad["range"]
        bar.update(len(chunk.indices) + len(chunk.missing))
    for chunk in () if peer else scoremaps.read_chunks(
        ids, paths, chunk_size=args.chunk_size, allow_missing=args.allow_missing):
      missing += chunk.missing
      groups: dict[tuple, list[int]] = {}
      for pos, m in enumerate(chunk.maps):
        groups.setdefault((m.shape, _as_kernel_input(m[:1, :1]).dtype), []).append(pos)
      for poss in groups.values():
        idx = np.asarray([chunk.indices[p] for p in poss])
        maps = np.stack([_as_kernel_input(chunk.maps[p]) for p in poss])
        try:
          state = ev.update(state, maps, gt[idx], gt_mask[idx])
        except ValueError as e:
          raise InputError(f"score maps of shape {maps.shape[1:]} (e.g. image "
                           f"{ids[idx[0]]!r}): {e}") from None
      bar.update(len(chunk.indices) + len(chunk.missing))
  finally:
    bar.close()
  wall = time.perf_counter() - t0
  bad = invalid["nan"] + invalid["range"]
  if bad:
    first = min(bad)
    raise InputError(
        f"{len(bad)} of {n} score maps fail wsolevaluation's validity check ("
        f"{len(invalid['nan'])} contain NaN, {len(invalid['range'])} have values outside [0, 1]); "
        f"first: image {ids[first]!r} ({paths[first]}). Use --protocol clean or paper to "
        "min-max normalise maps (NaN maps then count as all-zero maps).")
  if peer:
    num_images, num_invalid = counts.num_images, 0
    curve = counts.curves() if num_images else None
  else:
    num_images = int(np.asarray(state.num_images))
    if num_images:
      import warnings
      with warnings.catch_warnings():  # reported in the table and the JSON instead
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ev.compute(state)
      curve = res.box_acc_v2_curve if v2 else res.box_acc_curve
      num_invalid = int(res.num_invalid_maps)
  if num_images == 0:
    raise InputError("no score map was evaluated (all missing).")
  assert curve is not None  # num_images > 0 here
  rows = {u: curve[k] for k, u in enumerate(uniq)}
  per_iou = [rows[v].max() for v in ious]
  per_iou_t = [float(thresholds[int(np.argmax(rows[v]))]) for v in ious]
  performance = np.average(per_iou) if args.multi_iou_eval else per_iou[ious.index(50)]
  return {
      "metric": ("MaxBoxAccV2" if args.multi_iou_eval else "MaxBoxAcc")
                + (" (all contours)" if v2 else " (largest contour)"),
      "localization": float(performance),
      "num_images": num_images, "num_missing": len(missing),
      "missing_image_ids": [ids[i] for i in missing][:1000],
      "num_invalid_maps": num_invalid,
      "iou_threshold_list": ious, "max_box_acc_per_iou": [float(x) for x in per_iou],
      "best_cam_threshold_per_iou": per_iou_t,
      "cam_thresholds": [float(t) for t in thresholds],
      "box_acc_curves": {str(u): [float(x) for x in rows[u]] for u in uniq},
      "boxes": "all contours (V2)" if v2 else "largest contour (V1)",
      "wall_s": wall, "maps_per_s": (num_images / wall) if wall > 0 else None,
  }


def _evaluate_masks(args: argparse.Namespace, meta: meta_lib.Metadata, thresholds: np.ndarray) -> dict[str, Any]:
  from infocam_jax.wsol import pxap as pxap_lib
  ids = meta.image_ids
  n = len(ids)
  mask_root = os.path.join(args.mask_root, "OpenImages")
  ev = pxap_lib.PxAP(thresholds)
  state = ev.init()
  paths = [meta_lib.scoremap_path(args.scoremap_root, i) for i in ids]

  def load(i: int) -> np.ndarray:
    image_id = ids[i]
    try:
      return pxap_lib.load_mask(mask_root, meta.mask_paths[image_id], meta.ignore_paths[image_id])
    except FileNotFoundError as e:
      raise InputError(f"mask of image {image_id!r} not found: {e}") from None
    except ValueError as e:
      raise InputError(f"mask of image {image_id!r}: {e}") from None

  invalid: dict[str, list[int]] = {"nan": [], "range": [], "shape": []}
  missing: list[int] = []

  def work(chunk: scoremaps.Chunk) -> tuple[Any, Any]:
    """One chunk in a worker thread (masks read there too): its histograms and invalid maps."""
    part = ev.init()
    bad: dict[str, list[int]] = {"nan": [], "range": [], "shape": []}
    for i, m, mask in zip(chunk.indices, chunk.maps, chunk.extras):
      if m.shape != mask.shape:
        bad[_peer_validity(m) or "shape"].append(i)
        continue
      fg, bg, stats = ev.histograms_and_stats(m, mask)
      why = "nan" if stats[2] else "range" if stats[1] > 1 or stats[0] < 0 else None
      if why is not None:
        bad[why].append(i)
        continue
      part = pxap_lib.PxAPState(part.gt_true_hist + fg, part.gt_false_hist + bg,
                                part.num_maps + 1)
    return part, bad

  bar = _Progress(n, args.no_progress)
  t0 = time.perf_counter()
  try:
    for chunk, (part, bad) in scoremaps.map_chunks(
        ids, paths, work, chunk_size=args.chunk_size, num_workers=_num_threads(args),
        allow_missing=args.allow_missing, extra=load):
      missing += chunk.missing
      state = ev.merge(state, part)
      for k in invalid:
        invalid[k] += bad[k]
      bar.update(len(chunk.indices) + len(chunk.missing))
  finally:
    bar.close()
  wall = time.perf_counter() - t0
  bad = invalid["nan"] + invalid["range"] + invalid["shape"]
  if bad:
    first = min(bad)
    raise InputError(
        f"{len(bad)} of {n} score maps fail wsolevaluation's validity check ("
        f"{len(invalid['nan'])} contain NaN, {len(invalid['range'])} have values outside [0, 1], "
        f"{len(invalid['shape'])} are not {RESIZE_LENGTH}x{RESIZE_LENGTH} like the masks); first: "
        f"image {ids[first]!r} ({paths[first]}).")
  if state.num_maps == 0:
    raise InputError("no score map was evaluated (all missing).")
  try:
    res = ev.compute(state)
  except pxap_lib.PxAPError as e:
    raise InputError(str(e)) from None
  return {"metric": "PxAP", "localization": res.pxap, "num_images": res.num_maps,
          "num_missing": len(missing), "missing_image_ids": [ids[i] for i in missing][:1000],
          "cam_thresholds": [float(t) for t in thresholds],
          "bin_edges": [float(e) for e in res.bin_edges],
          "precision": [None if not np.isfinite(x) else float(x) for x in res.precision],
          "recall": [None if not np.isfinite(x) else float(x) for x in res.recall],
          "gt_true_hist": state.gt_true_hist.tolist(),
          "gt_false_hist": state.gt_false_hist.tolist(),
          "wall_s": wall, "maps_per_s": (res.num_maps / wall) if wall > 0 else None}


def _table(args: argparse.Namespace, out: dict[str, Any]) -> str:
  lines = [f"{args.dataset_name} {args.split}: {out['num_images']} maps, protocol "
           f"{args.protocol}, {len(out['cam_thresholds'])} thresholds"
           + (f", {out['num_missing']} missing (skipped)" if out["num_missing"] else "")]
  if out["metric"] == "PxAP":
    lines.append(f"  PxAP  {out['localization']:.4f}")
  else:
    lines.append(f"  {out['boxes']}")
    lines.append("  IoU   MaxBoxAcc  best threshold")
    for v, acc, t in zip(out["iou_threshold_list"], out["max_box_acc_per_iou"],
                         out["best_cam_threshold_per_iou"]):
      lines.append(f"  {v:>3d}   {acc:9.4f}  {t:.4f}")
    if args.multi_iou_eval:
      lines.append(f"  mean  {out['localization']:9.4f}  (MaxBoxAccV2 over the IoU list)")
  if out.get("num_invalid_maps"):
    lines.append(f"  {out['num_invalid_maps']} maps with NaN or inf evaluated as all-zero maps")
  if out.get("maps_per_s"):
    lines.append(f"  {out['wall_s']:.2f} s, {out['maps_per_s']:.0f} maps/s")
  return "\n".join(lines)


def _protocol_record(args: argparse.Namespace) -> dict[str, Any]:
  if args.dataset_name in meta_lib.MASK_DATASETS:
    return {"name": "wsolevaluation", "metric": "PxAP (MaskEvaluator)"}
  if args.protocol == "wsolevaluation":
    rec = {"name": "wsolevaluation", "maps": "as saved (no resize, no normalisation), "
           "real 2-D in [0, 1] without NaN", "quantization": "uint8(255 * float64 map)",
           "foreground": "gray > int(t * max(gray))", "largest": "cv2.contourArea (V1)",
           "v2_boxes": "every contour of RETR_TREE (outer and holes)",
           "box_convention": "(x, y, min(x + w, W - 1), min(y + h, H - 1))",
           "empty_box": [0, 0, 0, 0], "iou": "clamped, +1 convention, hit when IoU >= t / 100",
           "normalize": False}
  else:
    import dataclasses
    from infocam_jax.wsol import box_accuracy
    rec = dataclasses.asdict(box_accuracy.PROTOCOLS[args.protocol])
    rec["normalize"] = True
  rec["gt_rule"] = {"wsolevaluation": "int(c * 224 / W) (resize_bbox)",
                    "clean": "exact c * 224 / W clipped to [0, 223]",
                    "paper": "official load_bbox_size, resize = crop = 224"}[args.protocol]
  return rec


def run(args: argparse.Namespace) -> dict[str, Any]:
  thresholds, ious = _check_args(args)
  meta = meta_lib.read_metadata(args.metadata_root, args.dataset_name, args.split)
  if args.dataset_name in meta_lib.MASK_DATASETS:
    out = _evaluate_masks(args, meta, thresholds)
  else:
    out = _evaluate_boxes(args, meta, thresholds, ious)
  return out


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  print("Loading and evaluating cams.", flush=True)
  try:
    out = run(args)
  except (InputError, meta_lib.MetadataError, scoremaps.MissingScoreMap,
          scoremaps.BadScoreMap) as e:
    print(f"{PROG}: error: {e}", file=sys.stderr)
    return 2
  if args.output:
    record = {"args": vars(args), "protocol": _protocol_record(args), "versions": _versions(),
              **out}
    d = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(d, exist_ok=True)
    with open(args.output, "w") as f:
      json.dump(record, f, indent=1)
  print(_table(args, out))
  if out["metric"] == "PxAP":
    print(f"Mask AUC on split {args.split}: {out['localization']}")
  print(f"localization: {out['localization']}")
  return 0


if __name__ == "__main__":  # pragma: no cover
  sys.exit(main())
