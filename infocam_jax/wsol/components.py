"""The connected-components engine behind :mod:`infocam_jax.wsol.boxes` and
:mod:`infocam_jax.wsol.box_accuracy`.

Private. :func:`resolve_backend`, the JAX path's quantisation
(:func:`quantize_maps`; its min-max is :func:`infocam_jax.cam.normalize_maps`)
and :func:`component_scan`, the dispatch to the numba kernel
(:mod:`infocam_jax.wsol._numba_kernel`, on the host CPU, inside ``jit``
through ``jax.pure_callback``) or the data-parallel jax kernel
(:mod:`infocam_jax.wsol._jax_kernel`). The codes and leaves both kernels
share live in :mod:`infocam_jax.wsol.conventions` (re-exported here).

Import structure (no circle): ``conventions`` <- kernels <- ``components``;
the numba kernel is imported when :func:`component_scan` first runs it
(numba's import and cache load take about a second).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax import cam
from infocam_jax.wsol.conventions import (  # noqa: F401  (re-exported)
    BOX_CONTOUR, BOX_CONTOUR_CLIPPED, BOX_INCLUSIVE, BOX_MODES, CUBEHELIX_GRAY, LARGEST,
    LARGEST_CONTOUR, LARGEST_PIXELS, QUANT_CUBEHELIX, QUANT_FLOAT, QUANT_UINT8, QUANTIZATIONS,
    cv2_cubic_taps, gray_threshold_table, inter_union, iou_threshold_array)

Array = jax.Array
ArrayLike = Any

BACKENDS = ("auto", "numba", "jax")


def resolve_backend(backend: str) -> str:
  """``"auto"`` -> ``"numba"`` on every host (GPU and TPU hosts included).

  The numba engine is the exact one under every protocol (contour-area
  "largest", hole boxes, OpenCV's float64 resize); the jax engine keeps the
  pixel-count "largest" and no hole boxes, so ``"auto"`` never picks it: ask
  for ``backend="jax"`` explicitly (same numbers under the ``"clean"``
  protocol and in :func:`infocam_jax.wsol.boxes.boxes_from_maps`).
  """
  if backend not in BACKENDS:
    raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
  if backend == "auto":
    return "numba"
  return backend


def quantize_maps(maps: Array, thresholds: ArrayLike, quantization: str = "float",
                  normalize: bool = False) -> tuple[Array, Array, int]:
  """Level images, query levels and level count (the JAX path of the kernels).

  Foreground of threshold ``t`` of map ``b`` is ``levels[b] >= q[b, t]``:

  * ``"float"``: ``map > t`` (float32), ``levels = #{thresholds < map}``;
  * ``"uint8"``: ``gray = floor(255 map)``, ``gray > int(t * max(gray))``
    (wsolevaluation);
  * ``"cubehelix"``: ``gray = CUBEHELIX_GRAY[min(floor(256 map), 255)]``,
    ``gray > int(t * max(gray))`` (official infoCAM).

  ``normalize`` first min-max normalises each map with the project's one rule,
  :func:`infocam_jax.cam.normalize_maps` (``(x - min) / (max - min)`` in
  float32, a map with a non-finite value or zero range becomes zeros: the
  formula of wsolevaluation's ``normalize_scoremap``). The numba kernel computes
  it in float64 for the gray modes (as both references run) and in correctly
  rounded float32 for ``"float"``; XLA's float32 division on CPU is not
  correctly rounded, so a pixel whose normalised value is within an ulp of a
  level boundary can land one level apart between the two backends. The gray modes clip the
  map to [0, 1]. Thresholds must be concrete for the gray modes.

  Returns:
    ``(levels int32 [B, H, W], q int32 [B, T], num_levels)``.
  """
  m = jnp.asarray(maps, jnp.float32)
  if normalize:
    m = cam.normalize_maps(m)
  b = m.shape[0]
  if quantization == "float":
    th = jnp.asarray(thresholds, jnp.float32)
    ts = jnp.sort(th)
    lev = jnp.searchsorted(ts, m, side="left")
    lev = jnp.where(jnp.isnan(m), 0, lev).astype(jnp.int32)
    q = jnp.searchsorted(ts, th, side="right").astype(jnp.int32)
    return lev, jnp.broadcast_to(q, (b, th.shape[0])), int(th.shape[0]) + 1
  m = jnp.where(jnp.isnan(m), 0.0, jnp.clip(m, 0.0, 1.0))
  if quantization == "uint8":
    gray = jnp.floor(m * 255.0).astype(jnp.int32)
  elif quantization == "cubehelix":
    idx = jnp.minimum(jnp.floor(m * 256.0).astype(jnp.int32), 255)
    gray = jnp.asarray(CUBEHELIX_GRAY, jnp.int32)[idx]
  else:
    raise ValueError(f"`quantization` must be one of {tuple(QUANTIZATIONS)}, got "
                     f"{quantization!r}.")
  gmax = jnp.max(gray.reshape(b, -1), axis=1)
  table = jnp.asarray(gray_threshold_table(np.asarray(thresholds)))
  return gray, table[gmax], 256


def _numba_callback(maps: ArrayLike, ts: ArrayLike, q_float: ArrayLike, gt: ArrayLike,
                    gt_valid: ArrayLike, iou_thr: ArrayLike, *, mode: int, normalize: bool,
                    table: np.ndarray | None, resize_taps: Any, want_v1: bool, largest: int,
                    want_v2: bool, box_mode: int, clamp: bool, empty_box: Any, hole_boxes: bool,
                    max_boxes: int, num_threads: int | None) -> dict[str, np.ndarray]:
  from infocam_jax.wsol import _numba_kernel as _ccl_numba  # numba is imported only when used
  out = _ccl_numba.scan_maps(
      np.asarray(maps), mode=mode, normalize=normalize, thresholds=np.asarray(ts),
      q_float=np.asarray(q_float), table=table, lut=CUBEHELIX_GRAY, resize_taps=resize_taps,
      want_v1=want_v1, largest=largest, gt=np.asarray(gt) if want_v2 else None,
      gt_valid=np.asarray(gt_valid), iou_thr=np.asarray(iou_thr), box_mode=box_mode,
      clamp=clamp, empty_box=empty_box, hole_boxes=hole_boxes, max_boxes=max_boxes,
      num_threads=num_threads)
  out["v2_level"] = out["v2_level"].astype(np.int32)
  return out


def _is_traced(*xs: Any) -> bool:
  return any(isinstance(x, jax.core.Tracer) for x in xs)


def component_scan(maps: Array, thresholds: ArrayLike, *, quantization: str = "float",
                   normalize: bool = False, resize_to: tuple[int, int] | None = None,
                   backend: str = "auto", want_v1: bool = True, largest: str = "pixels",
                   gt: Array | None = None, gt_valid: Array | None = None,
                   iou_thresholds: Sequence[float] = (), box_convention: str = "inclusive",
                   clamp: bool = True, empty_box: tuple[int, int, int, int] | None = None,
                   hole_boxes: bool = False, max_boxes: int = 0, num_threads: int | None = None,
                   threshold_chunk: int = 16) -> dict[str, Any]:
  """Components of every thresholded map, with V1/V2 statistics (jit-friendly).

  The engine under :func:`infocam_jax.wsol.boxes.boxes_from_maps` and
  :mod:`infocam_jax.wsol.box_accuracy`; most users want those.

  Args:
    maps: real ``[B, H, W]``.
    thresholds: ``[T]``; foreground as in :func:`quantize_maps` with
      ``quantization`` and ``normalize``. Concrete for the gray modes.
    resize_to: numba backend only: ``(H', W')`` to resize every map to first,
      as ``cv2.resize(float64 map, INTER_CUBIC)`` bit for bit.
    backend: ``"auto" | "numba" | "jax"``.
    want_v1: compute the largest component's box and area.
    largest: ``"pixels"`` (most pixels) or ``"contour_area"`` (largest
      ``cv2.contourArea`` of the outer contour, OpenCV's tie order; numba
      backend only).
    gt, gt_valid, iou_thresholds: ground truth ``[B, G, 4]``, ``[B, G]`` bool
      and ascending IoU thresholds; with ``gt`` the V2 hit level (number of
      IoU thresholds met by the best component) is computed.
    box_convention: ``"inclusive" | "contour_clipped" | "contour"``, applied to
      component extents before the V2 IoU.
    clamp: clamped IoU (False: the official infoCAM formula).
    empty_box: box (already in final coordinates) evaluated for an empty
      foreground, or None (an empty foreground never hits).
    hole_boxes: V2 also evaluates the contour box of every hole (OpenCV's
      ``RETR_TREE``; numba backend only).
    max_boxes: K > 0 also returns the K largest components (by pixels).
    num_threads: numba worker threads (default: all usable CPUs).
    threshold_chunk: thresholds labelled at once by the jax backend (its memory
      grows with batch x chunk x H x W; 100 at batch 64, 224x224 ran on an H200).

  Returns:
    dict of int32 arrays: ``box [B, T, 4]`` (inclusive extent of the largest
    component, zeros if empty), ``area [B, T]`` (its pixels; 0 = empty
    foreground), ``v2_level [B, T]``, ``num_components [B, T]``,
    ``multi_box [B, T, K, 4]``, ``multi_area [B, T, K]`` (largest first; area
    0 = no component), and bool ``invalid [B]`` (the map has a NaN or inf).
    The numba backend called outside ``jit`` returns NumPy arrays: the maps
    are read in place, never copied to a device buffer and back.
  """
  backend = resolve_backend(backend)
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"`quantization` must be one of {tuple(QUANTIZATIONS)}, got "
                     f"{quantization!r}.")
  if box_convention not in BOX_MODES:
    raise ValueError(f"`box_convention` must be one of {tuple(BOX_MODES)}, got "
                     f"{box_convention!r}.")
  if largest not in LARGEST:
    raise ValueError(f"`largest` must be one of {tuple(LARGEST)}, got {largest!r}.")
  if backend == "jax" and (resize_to is not None or largest != "pixels" or hole_boxes):
    raise ValueError("`resize_to`, `largest='contour_area'` and `hole_boxes` need the numba "
                     "backend.")
  eager = backend == "numba" and not _is_traced(maps, thresholds, gt, gt_valid)
  xp = np if eager else jnp  # eager numba: host arrays end to end
  maps = xp.asarray(maps, xp.float32)
  b, h, w = maps.shape
  t = int(np.shape(thresholds)[0])
  want_v2 = gt is not None
  if want_v2:
    gt = xp.asarray(gt, xp.float32)
    gt_valid = xp.asarray(gt_valid, xp.bool_)
  else:
    gt = xp.zeros((b, 0, 4), xp.float32)
    gt_valid = xp.zeros((b, 0), xp.bool_)
  iou_thr = xp.asarray(iou_threshold_array(iou_thresholds))
  k = int(max_boxes)
  mode = BOX_MODES[box_convention]
  eb = None if empty_box is None else tuple(int(v) for v in empty_box)
  if backend == "jax":
    from infocam_jax.wsol import _jax_kernel as _ccl_jax
    levels, q, num_levels = quantize_maps(maps, thresholds, quantization, normalize)
    k_eff = min(k, h * w)
    out = dict(_ccl_jax.scan_levels(
        levels, q, gt, gt_valid, iou_thr, num_levels=num_levels, want_v1=bool(want_v1),
        want_v2=want_v2, box_mode=mode, clamp=bool(clamp), empty_box=eb, max_boxes=k_eff,
        chunk=int(threshold_chunk)))
    out["invalid"] = ~jnp.all(jnp.isfinite(maps), axis=(1, 2))
    if k_eff < k:
      pad = ((0, 0), (0, 0), (0, k - k_eff))
      out["multi_area"] = jnp.pad(out["multi_area"], pad)
      out["multi_box"] = jnp.pad(out["multi_box"], pad + ((0, 0),))
    return out
  if quantization == "float":
    th = xp.asarray(thresholds, xp.float32)
    ts = xp.sort(th)
    q_float = xp.searchsorted(ts, th, side="right").astype(xp.int32)
    table = None
  else:
    ts = xp.zeros((t,), xp.float32)
    q_float = xp.zeros((t,), xp.int32)
    table = gray_threshold_table(np.asarray(thresholds))
  taps = None
  if resize_to is not None and tuple(resize_to) != (h, w):
    (iy, wy), (ix, wx) = cv2_cubic_taps(h, int(resize_to[0])), cv2_cubic_taps(w, int(resize_to[1]))
    taps = (iy, wy, ix, wx)
  i32 = jnp.int32
  shapes = {
      "box": jax.ShapeDtypeStruct((b, t, 4), i32),
      "area": jax.ShapeDtypeStruct((b, t), i32),
      "v2_level": jax.ShapeDtypeStruct((b, t), i32),
      "num_components": jax.ShapeDtypeStruct((b, t), i32),
      "multi_box": jax.ShapeDtypeStruct((b, t, k, 4), i32),
      "multi_area": jax.ShapeDtypeStruct((b, t, k), i32),
      "invalid": jax.ShapeDtypeStruct((b,), jnp.bool_),
  }
  cb = functools.partial(_numba_callback, mode=QUANTIZATIONS[quantization],
                         normalize=bool(normalize), table=table, resize_taps=taps,
                         want_v1=bool(want_v1), largest=LARGEST[largest], want_v2=want_v2,
                         box_mode=mode, clamp=bool(clamp), empty_box=eb,
                         hole_boxes=bool(hole_boxes), max_boxes=k, num_threads=num_threads)
  if eager:
    return cb(maps, ts, q_float, gt, gt_valid, iou_thr)
  return jax.pure_callback(cb, shapes, maps, ts, q_float, gt, gt_valid, iou_thr,
                           vmap_method="sequential")
