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
  reproduce the paper's protocol (see :mod:`infocam_jax.wsol.box_accuracy`).
* OpenCV's ``boundingRect`` gives ``(x, y, w, h)`` and both reference
  evaluators turn it into ``(x, y, x + w, y + h)``: one pixel wider and taller
  than the inclusive extent. :func:`to_contour_convention` converts.

Boxes from maps
---------------
:func:`boxes_from_maps` returns, for every map and threshold, the box of the
largest 8-connected component of ``map > t`` (V1) or of all components (V2),
with a validity mask (an empty foreground has no box). "Largest" = most
pixels; ties go to the component whose first pixel in raster order
(row-major, top-left first) comes first. (The evaluators of
:mod:`infocam_jax.wsol.box_accuracy` under the ``"wsolevaluation"`` and ``"paper"``
protocols use the reference evaluators' rule instead: the largest
``cv2.contourArea`` of the outer contour, plus hole contours in V2.)

The engine is private (:mod:`infocam_jax.wsol.components`): two backends compute the
same result, ``"numba"`` (one pass over the pixels in decreasing level order
with a union-find, on the host CPU, threads over the batch; inside ``jit`` via
``jax.pure_callback``) and ``"jax"`` (per-threshold data-parallel labelling,
for GPU/TPU). ``"auto"`` picks numba on every host (it is the exact engine of
every protocol of :mod:`infocam_jax.wsol.box_accuracy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax.wsol import components as _ccl
from infocam_jax import _checks
from infocam_jax.wsol.components import BACKENDS, resolve_backend
from infocam_jax.wsol.conventions import iou_threshold_array

__all__ = ["BACKENDS", "Boxes", "MultiBoxes", "box_area", "box_iou", "boxes_from_maps",
           "iou_levels", "iou_threshold_array", "legacy_resize_crop_boxes", "resize_crop_boxes",
           "resolve_backend", "tiny_imagenet_legacy_boxes", "to_contour_convention",
           "xywh_to_xyxy"]

Array = jax.Array
ArrayLike = Any


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

  Example::

    >>> a = np.array([0, 0, 3, 3]); b = np.array([2, 0, 5, 3])  # 4x4 boxes sharing 2 columns
    >>> round(float(box_iou(a, b)), 4)  # 8 / (16 + 16 - 8)
    0.3333
    >>> box_iou(np.zeros((3, 1, 4)), np.zeros((1, 5, 4))).shape  # all pairs
    (3, 5)
  """
  a = _as_boxes(boxes_a, "boxes_a")
  b = _as_boxes(boxes_b, "boxes_b")
  try:
    np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
  except ValueError:
    raise ValueError(f"`boxes_a` {tuple(a.shape)} and `boxes_b` {tuple(b.shape)} do not "
                     "broadcast over their leading axes.") from None
  inter, union = _ccl.inter_union(a, b, clamp)
  ok = union > 0
  return jnp.where(ok, inter / jnp.where(ok, union, 1.0), 0.0)

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

  Example::

    >>> a = np.array([[0, 0, 3, 3], [0, 0, 1, 0]])  # IoU 1/3 and exactly 1/2 with b
    >>> b = np.array([[2, 0, 5, 3], [0, 0, 0, 0]])
    >>> iou_levels(a, b, [0.3, 0.5, 0.7]).tolist()  # meets 0.3; meets 0.3 and 0.5
    [1, 2]
  """
  a = _as_boxes(boxes_a, "boxes_a")
  b = _as_boxes(boxes_b, "boxes_b")
  thr = jnp.asarray(iou_threshold_array(thresholds))
  inter, union = _ccl.inter_union(a, b, clamp)
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

  Example::

    >>> xywh_to_xyxy(np.array([10, 20, 30, 40])).tolist()
    [10.0, 20.0, 40.0, 60.0]
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

  Example::

    >>> box = np.array([64, 64, 320, 320])  # in a 512 x 512 image
    >>> resize_crop_boxes(box, (512, 512), 256, 224).tolist()  # x * 256/512 - 16
    [16.0, 16.0, 144.0, 144.0]
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

  Example::

    >>> xywh = np.array([64, 64, 256, 256])  # in a 512 x 512 image
    >>> legacy_resize_crop_boxes(xywh, (512, 512)).tolist()  # x / 512 * 255 - 15
    [16.875, 16.875, 144.375, 144.375]
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

  Example::

    >>> corners = np.array([10, 20, 30, 40])  # (x0, y0, x1, y1), read as (x, y, w, h)
    >>> tiny_imagenet_legacy_boxes(corners).tolist()  # right edge 10 + 30, times 63/64, + 1
    [10.84375, 20.6875, 40.375, 60.0625]
  """
  return legacy_resize_crop_boxes(boxes_xyxy, image_size, resize_size, crop_size)


# ----------------------------------------------------------------------------
# Connected components of thresholded maps.
# ----------------------------------------------------------------------------


class Boxes(NamedTuple):
  """Box of the largest component: ``boxes [B, T, 4]`` int32 (inclusive
  ``(x0, y0, x1, y1)``; zeros where not valid) and ``valid [B, T]`` bool
  (False: no pixel above the threshold, so no box).

  Example::

    >>> m = np.zeros((1, 4, 6), np.float32); m[0, 1:3, 2:5] = 1.0
    >>> out = boxes_from_maps(m, np.array([0.5]))  # one map, one threshold
    >>> type(out).__name__, out.boxes.shape, out.valid.shape
    ('Boxes', (1, 1, 4), (1, 1))
  """
  boxes: Array
  valid: Array


class MultiBoxes(NamedTuple):
  """Boxes of all components: ``boxes [B, T, K, 4]`` int32 (inclusive),
  ``valid [B, T, K]`` bool, ``num_components [B, T]`` int32 (the true count;
  more than ``K`` means the list was truncated).

  Example::

    >>> m = np.zeros((1, 5, 5), np.float32); m[0, 0, 0] = m[0, 4, 3:] = 1.0  # two components
    >>> out = boxes_from_maps(m, np.array([0.5]), multi_contour=True, max_boxes=4)
    >>> np.asarray(out.boxes)[0, 0, :2].tolist(), np.asarray(out.num_components).tolist()
    ([[3, 4, 4, 4], [0, 0, 0, 0]], [[2]])
  """
  boxes: Array
  valid: Array
  num_components: Array


def boxes_from_maps(maps: chex.Array, thresholds: chex.Array, *, multi_contour: bool = False,
                    max_boxes: int = 16, backend: str = "auto",
                    num_threads: int | None = None) -> Boxes | MultiBoxes:
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
      :mod:`infocam_jax.wsol.box_accuracy` never truncate: they evaluate every
      component inside the kernel.
    backend: ``"auto"`` (numba, on every host),
      ``"numba"`` or ``"jax"``; both give identical results.
    num_threads: numba threads over the batch (default: all usable CPUs).

  Returns:
    V1: :class:`Boxes` ``(boxes [B, T, 4], valid [B, T])``: int32 inclusive
    boxes ``(x0, y0, x1, y1)`` of the largest component (most pixels; ties:
    the component whose first pixel in raster order comes first), and
    whether there is one (False when no pixel exceeds the threshold; the box
    is then zeros, which ``valid`` tells apart from a one-pixel component at
    the origin).
    V2: :class:`MultiBoxes` ``(boxes [B, T, K, 4], valid [B, T, K],
    num_components [B, T])``.

  Works under ``jax.jit`` (the numba backend runs as a ``pure_callback``).

  Example::

    >>> m = np.zeros((1, 4, 6), np.float32); m[0, 1:3, 2:5] = 1.0
    >>> out = boxes_from_maps(m, np.array([0.5, 1.0]))
    >>> np.asarray(out.boxes)[0].tolist(), np.asarray(out.valid)[0].tolist()
    ([[2, 1, 4, 2], [0, 0, 0, 0]], [True, False])
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
  out = _ccl.component_scan(maps, thresholds, quantization="float", normalize=False,
                            backend=backend, want_v1=not multi_contour,
                            max_boxes=int(max_boxes) if multi_contour else 0,
                            num_threads=num_threads)
  if not multi_contour:
    return Boxes(out["box"], out["area"] > 0)
  return MultiBoxes(out["multi_box"], out["multi_area"] > 0, out["num_components"])
