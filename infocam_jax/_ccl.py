"""The connected-components engine behind :mod:`infocam_jax.boxes` and :mod:`infocam_jax.localization`.

Private. One place for what both kernels share:

* the codes of the box conventions (:data:`BOX_MODES`), quantisations
  (:data:`QUANTIZATIONS`) and "largest component" rules (:data:`LARGEST`),
  defined once and passed to the kernels as ints;
* the IoU leaf :func:`inter_union` (used by :func:`infocam_jax.boxes.box_iou`
  and the jax kernel) and :func:`iou_threshold_array` (the rounded-down IoU
  thresholds of the division-free hit test used by both kernels);
* quantisation of maps to integer level images (:func:`quantize_maps`, the
  JAX path; the numba kernel does the same inside its loop);
* :func:`component_scan`, the dispatch to the numba kernel
  (:mod:`infocam_jax._ccl_numba`, on the host CPU, inside ``jit`` through
  ``jax.pure_callback``) or the data-parallel jax kernel
  (:mod:`infocam_jax._ccl_jax`).

Import structure: the kernels import this module; this module imports a
kernel only when :func:`component_scan` first runs it (numba's import and
cache load take about a second and are not needed on accelerators).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ArrayLike = Any

BACKENDS = ("auto", "numba", "jax")

# Box conventions applied to a component's inclusive extent (x0, y0, x1, y1)
# before the IoU.
BOX_INCLUSIVE = 0  # (x0, y0, x1, y1)
BOX_CONTOUR_CLIPPED = 1  # wsolevaluation: (x0, y0, min(x1 + 1, W - 1), min(y1 + 1, H - 1))
BOX_CONTOUR = 2  # official infoCAM: (x0, y0, x1 + 1, y1 + 1)
BOX_MODES = {"inclusive": BOX_INCLUSIVE, "contour_clipped": BOX_CONTOUR_CLIPPED,
             "contour": BOX_CONTOUR}

# How a map becomes an integer level image (foreground of threshold t: level >= q[t]).
QUANT_FLOAT = 0  # level = #{thresholds < v}: foreground v > t on the float map
QUANT_UINT8 = 1  # level = uint8(255 v), query int(t * max level) + 1 (wsolevaluation)
QUANT_CUBEHELIX = 2  # level = gray of the cubehelix colour of v (official infoCAM)
QUANTIZATIONS = {"float": QUANT_FLOAT, "uint8": QUANT_UINT8, "cubehelix": QUANT_CUBEHELIX}

# Which component is "the largest" (V1).
LARGEST_PIXELS = 0  # most pixels; ties: first pixel in raster order first
LARGEST_CONTOUR = 1  # largest cv2.contourArea of the outer contour; ties as OpenCV's list
LARGEST = {"pixels": LARGEST_PIXELS, "contour_area": LARGEST_CONTOUR}


def resolve_backend(backend: str) -> str:
  """``"auto"`` -> ``"numba"`` when JAX's default backend is the CPU, else ``"jax"``."""
  if backend not in BACKENDS:
    raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
  if backend == "auto":
    return "numba" if jax.default_backend() == "cpu" else "jax"
  return backend


# ----------------------------------------------------------------------------
# IoU leaf.
# ----------------------------------------------------------------------------


def inter_union(a: Array, b: Array, clamp: bool) -> tuple[Array, Array]:
  """Intersection and union of float32 inclusive boxes ``[..., 4]`` ("+1" convention).

  ``clamp=False`` drops the ``max(0, ·)`` on the overlap widths (the official
  infoCAM ``calculate_IOU``). Broadcasts like ``a + b``.
  """
  one = jnp.float32(1.0)
  iw = jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]) + one
  ih = jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1]) + one
  if clamp:
    iw = jnp.maximum(iw, 0.0)
    ih = jnp.maximum(ih, 0.0)
  inter = iw * ih
  area_a = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
  area_b = (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one)
  return inter, (area_a + area_b) - inter


def iou_threshold_array(thresholds: ArrayLike) -> np.ndarray:
  """IoU thresholds as float32, each rounded *down* (host-side NumPy).

  Used by the division-free hit test ``inter >= delta * union``: with delta
  rounded down, an exact tie such as IoU = 3/10 at delta = 0.3 counts as a hit,
  as it does in wsolevaluation's float64 ``inter / union >= 0.3``, and for
  integer boxes the decision equals the exact rational comparison.
  """
  d = np.asarray(thresholds, np.float64).reshape(-1)
  f = d.astype(np.float32)
  f = np.where(f.astype(np.float64) > d, np.nextafter(f, np.float32(-np.inf)), f)
  return f.astype(np.float32)



# ----------------------------------------------------------------------------
# Quantisation.
# ----------------------------------------------------------------------------


def _cubehelix_gray_table() -> np.ndarray:
  """uint8 gray level of each of matplotlib's 256 ``cubehelix`` colours.

  The colour map's lookup table is Green's cubehelix (gamma 1, s 0.5, r -1.5,
  h 1) sampled at ``linspace(0, 1, 256)`` and clipped to [0, 1]; the official
  infoCAM code turns it into uint8 RGB with ``float32(rgb) * 255`` and
  truncation, then ``cv2.cvtColor(RGB2GRAY)``, which for uint8 is the
  fixed-point ``(9798 R + 19235 G + 3735 B + 2**14) >> 15`` (OpenCV 4.x/5.x).
  Tested against matplotlib and OpenCV (tests/test_boxes.py).
  """
  x = np.linspace(0.0, 1.0, 256)
  amp = x * (1.0 - x) / 2.0
  phi = 2.0 * np.pi * (0.5 / 3.0 - 1.5 * x)

  def channel(p0, p1):
    return np.clip(x + amp * (p0 * np.cos(phi) + p1 * np.sin(phi)), 0.0, 1.0)

  rgb = np.stack([channel(-0.14861, 1.78277), channel(-0.29227, -0.90649),
                  channel(1.97294, 0.0)], axis=-1)
  rgb8 = (rgb.astype(np.float32) * np.float32(255.0)).astype(np.uint8).astype(np.int64)
  gray = (rgb8[:, 0] * 9798 + rgb8[:, 1] * 19235 + rgb8[:, 2] * 3735 + (1 << 14)) >> 15
  out = gray.astype(np.uint8)
  out.setflags(write=False)
  return out


CUBEHELIX_GRAY = _cubehelix_gray_table()


def gray_threshold_table(thresholds: Sequence[float]) -> np.ndarray:
  """int32 ``[256, T]``: ``int(t * m) + 1`` for every gray maximum ``m``.

  The first gray level above ``int(t * max(gray))`` (OpenCV ``THRESH_BINARY``
  is strict), computed in float64 exactly as Python's ``int(t * m)``.
  """
  m = np.arange(256, dtype=np.float64)[:, None]
  t = np.asarray(thresholds, np.float64).reshape(1, -1)
  if np.any(t < 0):
    raise ValueError("gray-level thresholds must be >= 0.")
  return (np.floor(t * m) + 1).astype(np.int32)  # t * m >= 0: floor == int()


def _minmax(m: Array) -> Array:
  """``(x - min) / (max - min)`` per map in float32 (reference evaluators' formula);
  a map with a non-finite value or zero range becomes zeros."""
  axes = (-2, -1)
  finite = jnp.all(jnp.isfinite(m), axis=axes, keepdims=True)
  x = jnp.where(finite, m, 0.0)
  lo = jnp.min(x, axis=axes, keepdims=True)
  hi = jnp.max(x, axis=axes, keepdims=True)
  span = hi - lo
  wide = ~jnp.isfinite(span)  # range beyond float32's maximum: halve first
  num = jnp.where(wide, 0.5 * x - 0.5 * lo, x - lo)
  den = jnp.where(wide, 0.5 * hi - 0.5 * lo, jnp.where(span > 0, span, 1.0))
  # XLA divides through a reciprocal, which flushes to zero beyond 2**126:
  # rescale huge ranges by an exact power of two first.
  big = den > 2.0 ** 64
  num = jnp.where(big, num * 2.0 ** -64, num)
  den = jnp.where(big, den * 2.0 ** -64, den)
  return jnp.where(finite & (hi > lo), num / den, 0.0)


def quantize_maps(maps: Array, thresholds: ArrayLike, quantization: str = "float",
                  normalize: bool = False) -> tuple[Array, Array, int]:
  """Level images, query levels and level count (the JAX path of the kernels).

  Foreground of threshold ``t`` of map ``b`` is ``levels[b] >= q[b, t]``:

  * ``"float"``: ``map > t`` (float32), ``levels = #{thresholds < map}``;
  * ``"uint8"``: ``gray = floor(255 map)``, ``gray > int(t * max(gray))``
    (wsolevaluation);
  * ``"cubehelix"``: ``gray = CUBEHELIX_GRAY[min(floor(256 map), 255)]``,
    ``gray > int(t * max(gray))`` (official infoCAM).

  ``normalize`` first min-max normalises each map, ``(x - min) / (max - min)``
  in float32 (a map with a non-finite value or zero range becomes zeros), the
  formula of wsolevaluation's ``normalize_scoremap``. The numba kernel computes
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
    m = _minmax(m)
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


def cv2_cubic_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
  """Source indices int64 ``[n_out, 4]`` and weights float64 ``[n_out, 4]`` of
  ``cv2.resize(..., INTER_CUBIC)`` along one axis.

  OpenCV's arithmetic: ``fx = float32((d + 0.5) * n_in / n_out - 0.5)``,
  ``sx = floor(fx)``, the Keys (a = -0.75) weights of ``fx - sx`` computed in
  float32 with the last one ``1 - w0 - w1 - w2``, taps ``sx - 1 ... sx + 2``
  clamped to the map (replicated border). Used by the numba kernel to resize
  float64 maps bit for bit as ``cv2.resize`` does (tested).
  """
  f = np.float32
  a = f(-0.75)
  d = np.arange(n_out, dtype=np.float64)
  fx = ((d + 0.5) * (n_in / n_out) - 0.5).astype(f)
  sx = np.floor(fx).astype(np.int64)
  x = (fx - sx.astype(f)).astype(f)
  one = f(1.0)
  xp = x + one
  w0 = ((a * xp - f(5.0) * a) * xp + f(8.0) * a) * xp - f(4.0) * a
  w1 = ((a + f(2.0)) * x - (a + f(3.0))) * x * x + one
  y = one - x
  w2 = ((a + f(2.0)) * y - (a + f(3.0))) * y * y + one
  w3 = one - w0 - w1 - w2
  w = np.stack([w0, w1, w2, w3], axis=1).astype(np.float64)
  idx = np.clip(sx[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
  return np.ascontiguousarray(idx), np.ascontiguousarray(w)


def _numba_callback(maps, ts, q_float, gt, gt_valid, iou_thr, *, mode, normalize, table,
                    resize_taps, want_v1, largest, want_v2, box_mode, clamp, empty_box,
                    hole_boxes, max_boxes, num_threads):
  from infocam_jax import _ccl_numba  # numba is imported only when used
  out = _ccl_numba.scan_maps(
      np.asarray(maps), mode=mode, normalize=normalize, thresholds=np.asarray(ts),
      q_float=np.asarray(q_float), table=table, lut=CUBEHELIX_GRAY, resize_taps=resize_taps,
      want_v1=want_v1, largest=largest, gt=np.asarray(gt) if want_v2 else None,
      gt_valid=np.asarray(gt_valid), iou_thr=np.asarray(iou_thr), box_mode=box_mode,
      clamp=clamp, empty_box=empty_box, hole_boxes=hole_boxes, max_boxes=max_boxes,
      num_threads=num_threads)
  out["v2_level"] = out["v2_level"].astype(np.int32)
  return out


def _is_traced(*xs) -> bool:
  return any(isinstance(x, jax.core.Tracer) for x in xs)


def component_scan(maps: Array, thresholds: ArrayLike, *, quantization: str = "float",
                   normalize: bool = False, resize_to: tuple[int, int] | None = None,
                   backend: str = "auto", want_v1: bool = True, largest: str = "pixels",
                   gt: Array | None = None, gt_valid: Array | None = None,
                   iou_thresholds: Sequence[float] = (), box_convention: str = "inclusive",
                   clamp: bool = True, empty_box: tuple[int, int, int, int] | None = None,
                   hole_boxes: bool = False, max_boxes: int = 0, num_threads: int | None = None,
                   threshold_chunk: int = 16) -> dict[str, Array]:
  """Components of every thresholded map, with V1/V2 statistics (jit-friendly).

  The engine under :func:`infocam_jax.boxes.boxes_from_maps` and
  :mod:`infocam_jax.localization`; most users want those.

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
    from infocam_jax import _ccl_jax  # imports this module: loaded on first use
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
