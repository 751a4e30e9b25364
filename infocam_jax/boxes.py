"""Boxes: conventions, IoU, boxes of thresholded maps, ground-truth transforms.

Conventions (everywhere in this package)
----------------------------------------
* A box is ``(x0, y0, x1, y1)`` in **pixel indices, inclusive**: the box
  covers columns ``x0 … x1`` and rows ``y0 … y1``, so a single pixel is
  ``(x, y, x, y)`` and the area is ``(x1 - x0 + 1) * (y1 - y0 + 1)``. Boxes
  may be float (ground truth after a resize) or int (boxes from maps). Sizes
  are ``(height, width)``, as in :func:`infocam_jax.cam.upsample_maps`.
* IoU uses the same "+1" convention (wsolevaluation's ``calculate_multiple_iou``
  and the official infoCAM ``calculate_IOU``) and is clamped at zero overlap:
  ``inter = max(0, min(x1) - max(x0) + 1) * max(0, min(y1) - max(y0) + 1)``,
  ``IoU = inter / (area_a + area_b - inter)``, and ``0`` when that denominator
  is ``<= 0`` (degenerate boxes). ``clamp=False`` gives the official infoCAM
  formula without the clamp, where two boxes disjoint in *both* axes get a
  positive "intersection" (negative times negative); it exists only to
  reproduce the paper's protocol (see :mod:`infocam_jax.localization`).
* OpenCV's ``boundingRect`` gives ``(x, y, w, h)`` and both reference
  evaluators turn it into ``(x, y, x + w, y + h)``: one pixel wider and taller
  than the inclusive extent. :func:`to_contour_convention` converts.

Boxes from maps
---------------
:func:`boxes_from_maps` returns, for every map and threshold, the box of the
largest 8-connected component of ``map > t`` (V1) or of all components (V2).
"Largest" = most pixels; ties go to the component whose first pixel in raster
order (row-major, top-left first) comes first. The reference evaluators use
the largest *contour* area (``cv2.contourArea`` of the outer contour, a
polygon through boundary pixel centres, holes included) instead of the pixel
count; the two rarely disagree on which component is largest (measured in
``benchmarks/wsol_eval.py`` on 512 CAM-like maps x 100 thresholds: the same
V1 hits on 99.994% of (map, threshold) pairs).
OpenCV's ``RETR_TREE`` also returns the contours of holes, whose boxes V2 in
wsolevaluation evaluates too; boxes of holes are not produced here.

Two backends compute the same result: ``"numba"`` (one pass over the pixels
in decreasing level order with a union-find, on the host CPU, threads over the
batch; inside ``jit`` via ``jax.pure_callback``) and ``"jax"`` (per-threshold
data-parallel labelling, for GPU/TPU). ``"auto"`` picks numba when JAX's
default backend is the CPU, jax otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax import _checks

Array = jax.Array
ArrayLike = Any

BACKENDS = ("auto", "numba", "jax")

# Box conventions applied to a component's inclusive extent before the IoU;
# the numbers are shared with the kernels.
CONVENTIONS = {"inclusive": 0, "contour_clipped": 1, "contour": 2}


# ----------------------------------------------------------------------------
# IoU and conventions.
# ----------------------------------------------------------------------------


def _as_boxes(x: ArrayLike, name: str) -> Array:
  _checks.require_real(x, name, "of boxes [..., 4]")
  if np.ndim(x) < 1 or np.shape(x)[-1] != 4:
    raise ValueError(f"`{name}` must have shape [..., 4] (x0, y0, x1, y1), got shape "
                     f"{tuple(np.shape(x))}.")
  return jnp.asarray(x).astype(jnp.float32)


def box_area(boxes: ArrayLike) -> Array:
  """Areas ``(x1 - x0 + 1) * (y1 - y0 + 1)`` of inclusive boxes ``[..., 4]`` (float32).

  Not clamped: a box with ``x1 < x0 - 1`` has a negative "area".
  """
  b = _as_boxes(boxes, "boxes")
  return (b[..., 2] - b[..., 0] + 1.0) * (b[..., 3] - b[..., 1] + 1.0)


def box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike, *, clamp: bool = True) -> Array:
  """IoU of inclusive boxes with the "+1" convention, broadcasting like ``a + b``.

  ``boxes_a [..., 4]`` and ``boxes_b [..., 4]`` broadcast against each other
  over the leading axes; for all pairs use ``box_iou(a[:, None], b[None])``.
  ``inter = max(0, min(ax1, bx1) - max(ax0, bx0) + 1) * max(0, (same for y))``,
  ``IoU = inter / (area_a + area_b - inter)`` with ``area = (x1-x0+1)(y1-y0+1)``;
  a denominator ``<= 0`` (degenerate boxes) gives 0, as in wsolevaluation.
  ``clamp=False`` drops the two ``max(0, ·)`` (the official infoCAM
  ``calculate_IOU``): boxes disjoint in both axes then get a positive
  intersection and can even reach IoU >= 0.5.

  Computed in float32; pure JAX, jit/vmap/grad friendly. To *decide*
  "IoU >= delta" use :func:`iou_levels` (division free, exact at ties).

  Returns:
    float32 array of the broadcast leading shape. With ``clamp=True`` the
    values lie in [0, 1] for non-degenerate boxes.
  """
  a = _as_boxes(boxes_a, "boxes_a")
  b = _as_boxes(boxes_b, "boxes_b")
  try:
    np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
  except ValueError:
    raise ValueError(f"`boxes_a` {tuple(a.shape)} and `boxes_b` {tuple(b.shape)} do not "
                     "broadcast over their leading axes.") from None
  inter, union = _inter_union(a, b, clamp)
  ok = union > 0
  return jnp.where(ok, inter / jnp.where(ok, union, 1.0), 0.0)


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


def _inter_union(a: Array, b: Array, clamp: bool) -> tuple[Array, Array]:
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


def iou_levels(boxes_a: ArrayLike, boxes_b: ArrayLike, thresholds: ArrayLike, *,
               clamp: bool = True) -> Array:
  """How many of the ascending IoU ``thresholds`` each pair of boxes meets (int32).

  ``IoU(a, b) >= thresholds[j]`` exactly when the result is ``> j``. Decided
  without a division (``union > 0 and inter >= delta * union`` in float32 with
  delta rounded down, :func:`iou_threshold_array`), so the result is the same
  in the numba kernel, in XLA on any device, and -- for integer boxes -- equal
  to the exact rational comparison (XLA's float32 division on CPU is not
  correctly rounded, so ``box_iou(a, b) >= 0.5`` can differ by an ulp at an
  exact tie such as IoU = 1/2). Broadcasting as :func:`box_iou`.
  """
  a = _as_boxes(boxes_a, "boxes_a")
  b = _as_boxes(boxes_b, "boxes_b")
  thr = jnp.asarray(iou_threshold_array(thresholds))
  inter, union = _inter_union(a, b, clamp)
  hit = (union[..., None] > 0) & (inter[..., None] >= thr * union[..., None])
  return jnp.sum(hit, axis=-1, dtype=jnp.int32)


def to_contour_convention(boxes: ArrayLike, image_size: int | Sequence[int] | None = None
                          ) -> Array:
  """Inclusive extents -> OpenCV-style ``(x0, y0, x1 + 1, y1 + 1)``.

  ``cv2.boundingRect`` returns ``(x, y, w, h)`` with ``w = x1 - x0 + 1`` and
  both reference evaluators use ``(x, y, x + w, y + h)``, one pixel larger
  than the inclusive extent. wsolevaluation then clips ``x + w`` to ``W - 1``
  and ``y + h`` to ``H - 1``: pass ``image_size=(H, W)`` for that; the
  official infoCAM code does not clip (``image_size=None``). Same dtype as
  the input (int stays int).
  """
  b = jnp.asarray(boxes)
  if np.ndim(b) < 1 or np.shape(b)[-1] != 4:
    raise ValueError(f"`boxes` must have shape [..., 4], got shape {tuple(np.shape(b))}.")
  x1 = b[..., 2] + 1
  y1 = b[..., 3] + 1
  if image_size is not None:
    h, w = _checks.parse_size(image_size, "image_size")
    x1 = jnp.minimum(x1, w - 1)
    y1 = jnp.minimum(y1, h - 1)
  return jnp.stack([b[..., 0], b[..., 1], x1.astype(b.dtype), y1.astype(b.dtype)], axis=-1)


# ----------------------------------------------------------------------------
# Ground-truth transforms.
# ----------------------------------------------------------------------------


def _sizes(image_size: ArrayLike, name: str) -> tuple[Array, Array]:
  """Per-box or global (height, width) as float32 arrays broadcastable to [...]."""
  s = jnp.asarray(image_size, jnp.float32)
  if s.ndim < 1 or s.shape[-1] != 2:
    raise ValueError(f"`{name}` must be (height, width) or [..., 2], got shape {tuple(s.shape)}.")
  return s[..., 0], s[..., 1]


def xywh_to_xyxy(boxes: ArrayLike) -> Array:
  """``(x, y, w, h)`` -> ``(x, y, x + w, y + h)`` (float32).

  This is how CUB's ``bounding_boxes.txt`` is read by wsolevaluation (its
  metadata stores ``x + w``) and by the official infoCAM code: ``x`` and
  ``x + w`` are treated as edge coordinates. For inclusive pixel indices
  subtract 1 from the right/bottom edge yourself if your annotation needs it.
  """
  b = _as_boxes(boxes, "boxes")
  return jnp.stack([b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3]], axis=-1)


def resize_crop_boxes(boxes: ArrayLike, image_size: ArrayLike, resize_size: int | Sequence[int],
                      crop_size: int | Sequence[int] | None = None, *, clip: bool = True) -> Array:
  """Exact box transform for ``Resize((rh, rw))`` followed by ``CenterCrop((ch, cw))``.

  Coordinates are edge positions (as in :func:`xywh_to_xyxy`), mapped
  ``x' = x * rw / W - off_x`` with ``off_x = round((rw - cw) / 2)`` (the
  offset of torchvision's ``CenterCrop``; 16 for 256 -> 224), likewise for
  ``y``. With ``clip=True`` the result is clipped to the crop,
  ``[0, cw - 1] x [0, ch - 1]`` (a map only covers the crop).

  Args:
    boxes: ``[..., 4]`` ``(x0, y0, x1, y1)`` in original-image pixels.
    image_size: original ``(height, width)``, one pair or one per box
      ``[..., 2]``.
    resize_size: ``(rh, rw)`` (or one int for a square resize).
    crop_size: ``(ch, cw)`` (or one int); ``None``: no crop.
    clip: clip to the crop.

  Returns:
    float32 ``[..., 4]``.
  """
  b = _as_boxes(boxes, "boxes")
  ih, iw = _sizes(image_size, "image_size")
  rh, rw = _checks.parse_size(resize_size, "resize_size")
  ch, cw = (rh, rw) if crop_size is None else _checks.parse_size(crop_size, "crop_size")
  if ch > rh or cw > rw:
    raise ValueError(f"`crop_size` {(ch, cw)} must not exceed `resize_size` {(rh, rw)}.")
  oy, ox = float(round((rh - ch) / 2.0)), float(round((rw - cw) / 2.0))
  sx, sy = rw / iw, rh / ih
  out = jnp.stack([b[..., 0] * sx - ox, b[..., 1] * sy - oy,
                   b[..., 2] * sx - ox, b[..., 3] * sy - oy], axis=-1)
  if clip:
    hi = jnp.asarray([cw - 1, ch - 1, cw - 1, ch - 1], jnp.float32)
    out = jnp.clip(out, 0.0, hi)
  return out


def legacy_resize_crop_boxes(boxes_xywh: ArrayLike, image_size: ArrayLike,
                             resize_size: int = 256, crop_size: int = 224) -> Array:
  """The official infoCAM GT transform (``load_bbox_size``), bugs included.

  Reads ``(x, y, w, h)`` and returns, with ``R = resize_size - 1`` and
  ``s = (R - crop_size) // 2`` (floor; 15 for CUB's 256/224):
  ``(x/W·R - s, y/H·R - s, (x+w)/W·R - s, (y+h)/H·R - s)``, not clipped. The
  exact transform (:func:`resize_crop_boxes`) scales by ``256/W`` and shifts by
  16: the legacy boxes are off by up to one pixel (reference spec §2.3, §5.2).

  Args:
    boxes_xywh: ``[..., 4]``.
    image_size: original ``(height, width)``, one pair or ``[..., 2]``.
    resize_size, crop_size: ints, as the official ``--resize-size`` and
      ``--crop-size``.

  Returns:
    float32 ``[..., 4]``.
  """
  b = _as_boxes(boxes_xywh, "boxes_xywh")
  ih, iw = _sizes(image_size, "image_size")
  r = float(int(resize_size) - 1)
  s = (r - int(crop_size)) // 2
  return jnp.stack([b[..., 0] / iw * r - s, b[..., 1] / ih * r - s,
                    (b[..., 0] + b[..., 2]) / iw * r - s,
                    (b[..., 1] + b[..., 3]) / ih * r - s], axis=-1)


def tiny_imagenet_legacy_boxes(boxes_xyxy: ArrayLike, image_size: ArrayLike = (64, 64),
                               resize_size: int = 64, crop_size: int = 64) -> Array:
  """The official infoCAM Tiny-ImageNet GT boxes: corner boxes mis-parsed as xywh.

  Tiny-ImageNet's ``bounding_boxes.txt`` holds ``(x0, y0, x1, y1)`` but the
  official loader reads it as ``(x, y, w, h)``, so the right edge becomes
  ``x0 + x1`` (and with resize = crop = 64 every coordinate maps to
  ``c·63/64 + 1``). Equals ``legacy_resize_crop_boxes(boxes_xyxy, ...)``;
  reference spec §5.1 (65.8% of the test boxes extend past the image).
  """
  return legacy_resize_crop_boxes(boxes_xyxy, image_size, resize_size, crop_size)


# ----------------------------------------------------------------------------
# Connected components of thresholded maps.
# ----------------------------------------------------------------------------


def resolve_backend(backend: str) -> str:
  """``"auto"`` -> ``"numba"`` when JAX's default backend is the CPU, else ``"jax"``."""
  if backend not in BACKENDS:
    raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
  if backend == "auto":
    return "numba" if jax.default_backend() == "cpu" else "jax"
  return backend


QUANTIZATIONS = ("float", "uint8", "cubehelix")


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
  the same with correctly rounded float32 (float64 for ``"cubehelix"``, as
  the official code); XLA's float32 division on CPU is not correctly rounded,
  so a pixel whose normalised value is within an ulp of a level boundary can
  land one level apart between the two backends. The gray modes clip the
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
    raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}, got {quantization!r}.")
  gmax = jnp.max(gray.reshape(b, -1), axis=1)
  table = jnp.asarray(gray_threshold_table(np.asarray(thresholds)))
  return gray, table[gmax], 256


def _numba_callback(maps, ts, q_float, gt, gt_valid, iou_thr, *, mode, normalize, table,
                    want_v1, want_v2, box_mode, clamp, empty_box, max_boxes, num_threads):
  from infocam_jax import _components  # numba is imported only when used
  out = _components.scan_maps(
      np.asarray(maps), mode=mode, normalize=normalize, thresholds=np.asarray(ts),
      q_float=np.asarray(q_float), table=table, lut=CUBEHELIX_GRAY, want_v1=want_v1,
      gt=np.asarray(gt) if want_v2 else None, gt_valid=np.asarray(gt_valid),
      iou_thr=np.asarray(iou_thr), box_mode=box_mode, clamp=clamp, empty_box=empty_box,
      max_boxes=max_boxes, num_threads=num_threads)
  out["v2_level"] = out["v2_level"].astype(np.int32)
  return out


def component_scan(maps: Array, thresholds: ArrayLike, *, quantization: str = "float",
                   normalize: bool = False, backend: str = "auto", want_v1: bool = True,
                   gt: Array | None = None, gt_valid: Array | None = None,
                   iou_thresholds: Sequence[float] = (), box_convention: str = "inclusive",
                   clamp: bool = True, empty_box: tuple[int, int, int, int] | None = None,
                   max_boxes: int = 0, num_threads: int | None = None,
                   threshold_chunk: int = 16) -> dict[str, Array]:
  """Components of every thresholded map, with V1/V2 statistics (jit-friendly).

  The engine under :func:`boxes_from_maps` and
  :mod:`infocam_jax.localization`; most users want those.

  Args:
    maps: real ``[B, H, W]``.
    thresholds: ``[T]``; foreground as in :func:`quantize_maps` with
      ``quantization`` and ``normalize``. Concrete for the gray modes.
    backend: ``"auto" | "numba" | "jax"``.
    want_v1: compute the largest component's box and area.
    gt, gt_valid, iou_thresholds: ground truth ``[B, G, 4]``, ``[B, G]`` bool
      and ascending IoU thresholds; with ``gt`` the V2 hit level (number of
      IoU thresholds met by the best component) is computed.
    box_convention: ``"inclusive" | "contour_clipped" | "contour"``, applied to
      component extents before the V2 IoU.
    clamp: clamped IoU (False: the official infoCAM formula).
    empty_box: box (already in final coordinates) evaluated for an empty
      foreground, or None (an empty foreground never hits).
    max_boxes: K > 0 also returns the K largest components.
    num_threads: numba worker threads (default: all usable CPUs).
    threshold_chunk: thresholds labelled at once by the jax backend (its memory
      grows with batch x chunk x H x W; 100 at batch 64, 224x224 ran on an H200).

  Returns:
    dict of int32 arrays: ``box [B, T, 4]`` (inclusive extent of the largest
    component, zeros if empty), ``area [B, T]``, ``v2_level [B, T]``,
    ``num_components [B, T]``, ``multi_box [B, T, K, 4]``,
    ``multi_area [B, T, K]`` (largest first; area 0 = no component).
  """
  backend = resolve_backend(backend)
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}, got {quantization!r}.")
  if box_convention not in CONVENTIONS:
    raise ValueError(f"`box_convention` must be one of {tuple(CONVENTIONS)}, got "
                     f"{box_convention!r}.")
  maps = jnp.asarray(maps, jnp.float32)
  b, h, w = maps.shape
  t = int(np.shape(thresholds)[0])
  want_v2 = gt is not None
  if want_v2:
    gt = jnp.asarray(gt, jnp.float32)
    gt_valid = jnp.asarray(gt_valid, jnp.bool_)
  else:
    gt = jnp.zeros((b, 0, 4), jnp.float32)
    gt_valid = jnp.zeros((b, 0), jnp.bool_)
  iou_thr = jnp.asarray(iou_threshold_array(iou_thresholds))
  k = int(max_boxes)
  mode = CONVENTIONS[box_convention]
  eb = None if empty_box is None else tuple(int(v) for v in empty_box)
  if backend == "jax":
    from infocam_jax import _components_jax
    levels, q, num_levels = quantize_maps(maps, thresholds, quantization, normalize)
    k_eff = min(k, h * w)
    out = dict(_components_jax.scan_levels(
        levels, q, gt, gt_valid, iou_thr, num_levels=num_levels, want_v1=bool(want_v1),
        want_v2=want_v2, box_mode=mode, clamp=bool(clamp), empty_box=eb, max_boxes=k_eff,
        chunk=int(threshold_chunk)))
    if k_eff < k:
      pad = ((0, 0), (0, 0), (0, k - k_eff))
      out["multi_area"] = jnp.pad(out["multi_area"], pad)
      out["multi_box"] = jnp.pad(out["multi_box"], pad + ((0, 0),))
    return out
  if quantization == "float":
    th = jnp.asarray(thresholds, jnp.float32)
    ts = jnp.sort(th)
    q_float = jnp.searchsorted(ts, th, side="right").astype(jnp.int32)
    table = None
    qmode = 0
  else:
    ts = jnp.zeros((t,), jnp.float32)
    q_float = jnp.zeros((t,), jnp.int32)
    table = gray_threshold_table(np.asarray(thresholds))
    qmode = 1 if quantization == "uint8" else 2
  i32 = jnp.int32
  shapes = {
      "box": jax.ShapeDtypeStruct((b, t, 4), i32),
      "area": jax.ShapeDtypeStruct((b, t), i32),
      "v2_level": jax.ShapeDtypeStruct((b, t), i32),
      "num_components": jax.ShapeDtypeStruct((b, t), i32),
      "multi_box": jax.ShapeDtypeStruct((b, t, k, 4), i32),
      "multi_area": jax.ShapeDtypeStruct((b, t, k), i32),
  }
  cb = functools.partial(_numba_callback, mode=qmode, normalize=bool(normalize), table=table,
                         want_v1=bool(want_v1), want_v2=want_v2, box_mode=mode,
                         clamp=bool(clamp), empty_box=eb, max_boxes=k, num_threads=num_threads)
  return jax.pure_callback(cb, shapes, maps, ts, q_float, gt, gt_valid, iou_thr,
                           vmap_method="sequential")


class MultiBoxes(NamedTuple):
  """Boxes of all components: ``boxes [B, T, K, 4]`` int32 (inclusive),
  ``valid [B, T, K]`` bool, ``num_components [B, T]`` int32 (the true count;
  more than ``K`` means the list was truncated)."""
  boxes: Array
  valid: Array
  num_components: Array


def boxes_from_maps(maps: chex.Array, thresholds: chex.Array, *, multi_contour: bool = False,
                    max_boxes: int = 16, backend: str = "auto",
                    num_threads: int | None = None) -> Array | MultiBoxes:
  """Boxes of the 8-connected components of ``maps > t`` for every map and threshold.

  Args:
    maps: real ``[B, H, W]``, typically min-max normalised to [0, 1]
      (:func:`infocam_jax.cam.normalize_maps`); NaN pixels are never
      foreground. Compared in float32.
    thresholds: ``[T]`` (any order, duplicates allowed); the foreground of
      threshold ``t`` is ``{map > t}`` (strict, as wsolevaluation's
      ``cv2.threshold(..., THRESH_BINARY)``).
    multi_contour: False (V1): the box of the largest component; True (V2):
      the boxes of all components.
    max_boxes: V2 only: at most this many boxes per (map, threshold), the
      largest first (ties: first pixel in raster order). Components beyond
      are dropped from ``boxes``; ``num_components`` still counts them, so
      ``num_components > max_boxes`` flags a truncation. The accumulators in
      :mod:`infocam_jax.localization` never truncate: they evaluate every
      component inside the kernel.
    backend: ``"auto"`` (numba on a CPU default backend, jax otherwise),
      ``"numba"`` or ``"jax"``; both give identical results.
    num_threads: numba threads over the batch (default: all usable CPUs).

  Returns:
    V1: int32 ``[B, T, 4]`` inclusive boxes ``(x0, y0, x1, y1)`` of the
    largest component (most pixels; ties: the component whose first pixel in
    raster order comes first); ``(0, 0, 0, 0)`` when no pixel exceeds the
    threshold (a one-pixel component at the origin gives the same box: test
    ``maps.max() > t`` to tell them apart).
    V2: :class:`MultiBoxes` ``(boxes [B, T, K, 4], valid [B, T, K],
    num_components [B, T])``.

  Works under ``jax.jit`` (the numba backend runs as a ``pure_callback``).
  """
  b, h, w = _checks.require_maps(maps, 3, "[B, H, W]")
  _checks.require_ndim(thresholds, 1, "thresholds", "[T]")
  t = np.shape(thresholds)[0]
  if t < 1 or t > 65535:
    raise ValueError(f"`thresholds` must hold between 1 and 65535 values, got {t}.")
  if _checks.is_concrete(thresholds) and np.isnan(np.asarray(thresholds, np.float64)).any():
    raise ValueError("`thresholds` must not contain NaN.")
  if multi_contour and int(max_boxes) < 1:
    raise ValueError(f"`max_boxes` must be >= 1, got {max_boxes}.")
  out = component_scan(maps, thresholds, quantization="float", normalize=False, backend=backend,
                       want_v1=not multi_contour, max_boxes=int(max_boxes) if multi_contour else 0,
                       num_threads=num_threads)
  if not multi_contour:
    return out["box"]
  return MultiBoxes(out["multi_box"], out["multi_area"] > 0, out["num_components"])
