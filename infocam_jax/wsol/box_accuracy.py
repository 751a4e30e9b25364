"""Streaming WSOL box metrics: MaxBoxAcc (V1), MaxBoxAccV2, Top-1 Loc, GT-known Loc.

Usage::

    ev = max_box_accuracy("clean", image_size=(224, 224))
    state = ev.init()
    for batch in batches:                      # any number of batches
      cams = ...                               # [B, h, w] raw maps (any resolution)
      state = ev.update(state, cams, batch["bbox"], batch["bbox_mask"],
                        correct=logits.argmax(-1) == batch["label"],
                        valid=batch["mask"])
    result = ev.compute(state)                 # BoxAccuracyResult
    result.max_box_acc, result.max_box_acc_v2, result.top1_loc, result.protocol

The state (:class:`BoxAccuracyState`) is a pytree of counts, so a whole test
set streams through in batches, states can be carried through ``jax.jit`` /
``lax.scan``, checkpointed, and summed across hosts (:meth:`BoxAccuracy.merge`).
``update`` is jitted (one trace per batch shape: pad a final partial batch and
pass ``valid``); the numba kernel runs inside it as a ``jax.pure_callback``.

Metrics (all in percent)
------------------------
For every map threshold ``t`` (``cam_thresholds``, default
``np.arange(0, 1, 0.01)``) and IoU threshold ``delta`` (``iou_thresholds``,
default (0.3, 0.5, 0.7)), an image *hits* when its predicted box has
IoU >= delta with **any** of its ground-truth boxes (the maximum IoU over the
valid GT boxes, as wsolevaluation). An image without a valid GT box never
hits.

* V1 (largest component): the box of the largest 8-connected component of
  the thresholded map. ``box_acc_curve[j, t]`` = GT-known hit rate;
  **MaxBoxAcc** = max over ``t`` at IoU 0.5 (Choe et al. 2020).
* V2 (all components): an image hits when *any* component's box hits.
  **MaxBoxAccV2** = mean over the IoU thresholds of the max over ``t``.
* **GT-known Loc** = V1 hit rate at the fixed ``loc_threshold`` (0.2) and IoU
  0.5 (the map of the ground-truth class, classification ignored);
  **Top-1 Loc** additionally requires a correct top-1 class (``correct``).
  ``top1_loc_curve`` gives Top-1 Loc at every threshold.

Protocols
---------
Every result records the protocol that produced it (``result.protocol``).

``"clean"`` (default; recommended)
  maps resized to ``image_size`` with ``cv2.INTER_CUBIC`` geometry (Keys
  a=-0.75, half-pixel centres, replicated border) when their size differs
  (a constant raw map stays constant), min-max normalised per map in float32
  (a constant map, or one with a NaN or inf, becomes zeros), foreground
  ``map > t`` on the float map (strict, as both references; no
  quantisation), the largest component is the one with most pixels, boxes
  are the components' inclusive pixel extents, clamped IoU, an empty
  foreground predicts nothing (a miss), every rate is hits / images over the
  whole set.
``"wsolevaluation"`` (Choe et al., clovaai/wsolevaluation ``evaluation.py``,
  ``inference.py``), the peer's arithmetic as it runs: ``cv2.resize`` of the
  float64 map (reproduced bit for bit; a constant float32 raw map stays
  constant, float32 values times OpenCV's float32 tap weights being exact in
  float64), float64 min-max (NaN or constant -> zeros), ``gray = uint8(map * 255)``, foreground ``gray >
  int(t * max(gray))`` (OpenCV ``THRESH_BINARY``; ``int`` of the float64
  product), the largest component by ``cv2.contourArea`` of its outer
  contour (OpenCV's order for ties), boxes in OpenCV's ``(x, y, x + w,
  y + h)`` convention clipped to ``(W - 1, H - 1)``, V2 also evaluates the
  box of every hole contour (``RETR_TREE``), an empty foreground gives the
  box ``(0, 0, 0, 0)`` (which is evaluated), clamped IoU, hits / images.
``"paper"`` (the official infoCAM evaluation, reference spec §2.2-2.3, §5)
  bicubic resize (``cv2.INTER_CUBIC``; float32 here; a constant raw map gives
  an empty foreground), min-max in float64, the matplotlib ``cubehelix``
  colour map to uint8 RGB and OpenCV's RGB->gray (reproduced bit-exactly by a
  256-entry table), foreground ``gray > int(t * max(gray))``, boxes
  ``(x, y, x + w, y + h)`` not clipped, an empty foreground gives the box
  ``(0, 0, 1, 1)``, the largest component by ``cv2.contourArea`` as in
  wsolevaluation (V2, which the official code does not compute, boxes the
  outer contours only), IoU **without** the clamp at zero overlap (boxes disjoint
  in both axes can hit), and the headline Top-1 Loc / GT-known Loc are the
  official *running meters*: after each ``update`` (= batch) the cumulative
  ratio ``100 * hits / images`` is averaged, weighted by the batch size, so
  the value depends on batch size and order (``*_pooled`` gives hits /
  images). Default thresholds ``np.arange(0, 1, 0.05)`` (the official
  ``cam_curve`` grid), headline at 0.2. The GT quirks are transforms of the
  boxes you pass: :func:`infocam_jax.wsol.boxes.legacy_resize_crop_boxes` (CUB
  255/-15) and :func:`infocam_jax.wsol.boxes.tiny_imagenet_legacy_boxes` (corner
  boxes read as xywh).

Ground-truth boxes must lie in the frame of the maps (``image_size``, or the
maps' size): ``0 <= x0 <= x1 <= W`` and ``0 <= y0 <= y1 <= H`` (``W`` itself is
allowed: wsolevaluation's ``resize_bbox`` produces it for boxes that reach
the image edge); under ``"paper"`` the official transforms' legacy boxes
reach past the crop (CUB by 15-16 px, Tiny-ImageNet's corner boxes read as
``xywh`` up to twice the size), so there any coordinate in ``[-H, 2H]`` /
``[-W, 2W]`` is accepted. Anything else raises ``ValueError``.

Maps with a NaN or inf are counted (``result.num_invalid_maps``, with a
warning from :meth:`BoxAccuracy.compute`) and evaluated as all-zero maps
(an empty foreground), never as NaN.

Parity with the references (numba backend; tested cell for cell against
OpenCV re-implementations of both, tests/test_localization.py):
``"wsolevaluation"`` reproduces ``BoxEvaluator`` exactly (resize,
arithmetic, contour area and tie order, hole boxes). ``"paper"`` reproduces
the official code except for ``cv2.resize``'s float32 arithmetic (OpenCV's
vectorised float32 path is not reproduced bit for bit: a pixel within a few
float32 ulps of a gray-level boundary can move one level) and constant raw
maps (the official float32 resize turns them into rounding noise with a box;
here they give an empty foreground). The jax backend (accelerators) keeps
the pixel-count "largest", evaluates no hole boxes and resizes in float32
under every protocol (a warning says so).

Backends: ``backend="numba"`` (the default, ``"auto"``, on every host) runs the one-pass component
scan on the host inside the jitted ``update`` (``jax.pure_callback``);
``backend="jax"`` (only when asked for) labels every threshold with a
data-parallel algorithm. Both give identical counts (tested).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax.wsol import components as _ccl
from infocam_jax import _checks
from infocam_jax.wsol import boxes as boxes_lib
from infocam_jax import cam as cam_lib

Array = jax.Array
ArrayLike = Any


# ----------------------------------------------------------------------------
# Protocols.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How maps become boxes and boxes become numbers (see the module docstring).

  Attributes:
    name: ``"clean" | "wsolevaluation" | "paper"``.
    resize_method: ``upsample_maps`` method used when the maps' size differs
      from ``image_size``.
    quantization: ``"float"`` (``map > t``), ``"uint8"`` (``uint8(255 map) >
      int(t max)``) or ``"cubehelix"`` (the official colour-map gray).
    box_convention: ``"inclusive" | "contour_clipped" | "contour"`` (see
      :mod:`infocam_jax.wsol.boxes`).
    clamp_iou: IoU with ``max(0, ·)`` on the overlap.
    empty_box: box evaluated when the foreground is empty, or None (a miss).
    running_meters: headline Top-1/GT-known Loc are the official running
      meters rather than hits / images.
    default_thresholds: ``(start, stop, step)`` for ``np.arange``.
    largest: V1 "largest component": ``"pixels"`` or ``"contour_area"``
      (``cv2.contourArea`` of the outer contour; numba backend).
    hole_boxes: V2 also evaluates the boxes of hole contours (numba backend).
    resize_float64: resize as ``cv2.resize`` of the float64 map, bit for bit
      (numba backend); otherwise float32 matrix products, with constant raw
      maps kept constant.
    gt_margin: how far past the frame a GT coordinate may reach, in units of
      the frame size (0: none; 1: the paper's legacy boxes).
  """
  name: str
  resize_method: str
  quantization: str
  box_convention: str
  clamp_iou: bool
  empty_box: tuple[int, int, int, int] | None
  running_meters: bool
  default_thresholds: tuple[float, float, float]
  largest: str = "pixels"
  hole_boxes: bool = False
  resize_float64: bool = False
  gt_margin: float = 0.0


PROTOCOLS: dict[str, Protocol] = {
    "clean": Protocol("clean", "bicubic", "float", "inclusive", True, None, False,
                      (0.0, 1.0, 0.01)),
    "wsolevaluation": Protocol("wsolevaluation", "bicubic", "uint8", "contour_clipped", True,
                               (0, 0, 0, 0), False, (0.0, 1.0, 0.01), largest="contour_area",
                               hole_boxes=True, resize_float64=True),
    "paper": Protocol("paper", "bicubic", "cubehelix", "contour", False, (0, 0, 1, 1), True,
                      (0.0, 1.0, 0.05), largest="contour_area", gt_margin=1.0),
}


# ----------------------------------------------------------------------------
# State and result.
# ----------------------------------------------------------------------------


@flax.struct.dataclass
class BoxAccuracyState:
  """Counts accumulated by :meth:`BoxAccuracy.update` (a pytree of arrays).

  ``J`` = number of IoU thresholds, ``T`` = number of map thresholds.

  Attributes:
    num_images: int32 ``[]``, images counted (``valid`` ones).
    num_with_correct: int32 ``[]``, images whose top-1 correctness was given.
    num_correct: int32 ``[]``, of those, correctly classified.
    hits: int32 ``[J, T]``, V1 (largest component) GT-known hits.
    hits_top1: int32 ``[J, T]``, V1 hits with a correct top-1 class.
    hits_v2: int32 ``[J, T]``, V2 (any component) hits.
    hits_v2_top1: int32 ``[J, T]``.
    meter_known: float32 ``[J, T]``, sum over updates of ``batch_size * 100 *
      hits / num_images`` (cumulative values after that update): the official
      running meter's numerator.
    meter_top1: float32 ``[J, T]``, the same for Top-1 hits.
    meter_weight: int32 ``[]``, sum of batch sizes (= ``num_images``).
    num_updates: int32 ``[]``.
    num_invalid_maps: int32 ``[]``, maps (of valid images) with a NaN or inf,
      evaluated as all-zero maps.

  Example::

    >>> maps = np.zeros((2, 8, 8), np.float32); maps[:, 2:6, 2:6] = 1.0  # a lit square
    >>> gt = np.array([[[2, 2, 5, 5]], [[0, 0, 1, 1]]])  # [B, G, 4]: image 0's box is the square
    >>> ev = max_box_accuracy(cam_thresholds=[0.2, 0.5])
    >>> state = ev.init()
    >>> state.hits.shape  # [J IoU thresholds, T map thresholds]
    (3, 2)
    >>> state = ev.update(state, maps, gt)
    >>> int(state.num_images), np.asarray(state.hits).tolist()  # image 0 hits everywhere
    (2, [[1, 1], [1, 1], [1, 1]])
  """
  num_images: Array
  num_with_correct: Array
  num_correct: Array
  hits: Array
  hits_top1: Array
  hits_v2: Array
  hits_v2_top1: Array
  meter_known: Array
  meter_top1: Array
  meter_weight: Array
  num_updates: Array
  num_invalid_maps: Array


@dataclasses.dataclass(frozen=True)
class BoxAccuracyResult:
  """Final numbers of a :class:`BoxAccuracy` evaluation (percent, NumPy/Python).

  Attributes:
    protocol: the protocol name that produced every number here.
    num_images: images evaluated.
    cam_thresholds: ``[T]`` map thresholds.
    iou_thresholds: ``[J]`` IoU thresholds.
    box_acc_curve: ``[J, T]`` V1 GT-known hit rate per IoU and map threshold.
    top1_loc_curve: ``[J, T]`` V1 Top-1 hit rate (NaN without ``correct``).
    box_acc_v2_curve: ``[J, T]`` V2 GT-known hit rate.
    top1_loc_v2_curve: ``[J, T]`` V2 Top-1 hit rate.
    max_box_acc: MaxBoxAcc, max over thresholds of V1 at IoU ``loc_iou``.
    max_box_acc_threshold: the smallest map threshold attaining it.
    max_box_acc_v2: MaxBoxAccV2, mean over IoU thresholds of max_t V2.
    max_box_acc_v2_per_iou: ``[J]`` max over thresholds of V2 per IoU threshold.
    max_box_acc_v2_thresholds: ``[J]`` the map thresholds attaining them.
    loc_threshold: the map threshold where the fixed-threshold metrics are read.
    loc_iou: the IoU threshold of MaxBoxAcc and the fixed-threshold metrics.
    gt_known_loc: the headline fixed-threshold GT-known Loc (the running meter
      for the "paper" protocol, hits / images otherwise).
    top1_loc: the headline fixed-threshold Top-1 Loc (likewise).
    gt_known_loc_pooled: GT-known Loc as hits / images.
    top1_loc_pooled: Top-1 Loc as hits / images.
    gt_known_loc_meter: GT-known Loc as the official batch-weighted running meter.
    top1_loc_meter: Top-1 Loc as the official batch-weighted running meter.
    top1_cls: top-1 classification accuracy of the images with ``correct``.
    num_invalid_maps: maps with a NaN or inf (evaluated as all-zero maps).

  Example::

    >>> maps = np.zeros((2, 8, 8), np.float32); maps[:, 2:6, 2:6] = 1.0  # a lit square
    >>> gt = np.array([[[2, 2, 5, 5]], [[0, 0, 1, 1]]])  # [B, G, 4]: image 0's box is the square
    >>> result = max_box_accuracy(cam_thresholds=[0.2, 0.5]).evaluate(maps, gt)
    >>> result.protocol, result.num_images, result.box_acc_curve.shape
    ('clean', 2, (3, 2))
    >>> result.to_dict()["max_box_acc"]
    50.0
  """
  protocol: str
  num_images: int
  cam_thresholds: np.ndarray
  iou_thresholds: np.ndarray
  box_acc_curve: np.ndarray
  top1_loc_curve: np.ndarray
  box_acc_v2_curve: np.ndarray
  top1_loc_v2_curve: np.ndarray
  max_box_acc: float
  max_box_acc_threshold: float
  max_box_acc_v2: float
  max_box_acc_v2_per_iou: np.ndarray
  max_box_acc_v2_thresholds: np.ndarray
  loc_threshold: float
  loc_iou: float
  gt_known_loc: float
  top1_loc: float
  gt_known_loc_pooled: float
  top1_loc_pooled: float
  gt_known_loc_meter: float
  top1_loc_meter: float
  top1_cls: float
  num_invalid_maps: int = 0

  def to_dict(self) -> dict[str, Any]:
    """JSON-serialisable dict (arrays as lists, NaN as None)."""
    def conv(v: Any) -> Any:
      if isinstance(v, np.ndarray):
        return [conv(x) for x in v.tolist()] if v.ndim else conv(v.item())
      if isinstance(v, list):
        return [conv(x) for x in v]
      if isinstance(v, float) and math.isnan(v):
        return None
      return v
    return {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}


# ----------------------------------------------------------------------------
# The evaluator.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BoxAccuracy:
  """Streaming box-accuracy evaluator; build it with :func:`max_box_accuracy`.

  Immutable and hashable (it is the static configuration of the jitted
  ``update``); the accumulated counts live in :class:`BoxAccuracyState`.

  Example::

    >>> maps = np.zeros((2, 8, 8), np.float32); maps[:, 2:6, 2:6] = 1.0  # a lit square
    >>> gt = np.array([[[2, 2, 5, 5]], [[0, 0, 1, 1]]])  # [B, G, 4]: image 0's box is the square
    >>> ev = max_box_accuracy(cam_thresholds=[0.2, 0.5])
    >>> a = ev.update(ev.init(), maps[:1], gt[:1])  # two shards of a set ...
    >>> b = ev.update(ev.init(), maps[1:], gt[1:])
    >>> ev.compute(ev.merge(a, b)).max_box_acc  # ... merged: 1 hit in 2 images
    50.0
  """
  protocol: Protocol
  cam_thresholds: tuple[float, ...]
  iou_thresholds: tuple[float, ...]
  loc_threshold: float
  loc_iou: float
  image_size: tuple[int, int] | None
  v1: bool
  v2: bool
  backend: str
  num_threads: int | None
  threshold_chunk: int
  normalize: bool = True

  # -- state ------------------------------------------------------------------

  def init(self) -> BoxAccuracyState:
    """Zero counts."""
    j, t = len(self.iou_thresholds), len(self.cam_thresholds)
    zi = lambda *s: jnp.zeros(s, jnp.int32)
    zf = lambda *s: jnp.zeros(s, jnp.float32)
    return BoxAccuracyState(num_images=zi(), num_with_correct=zi(), num_correct=zi(),
                            hits=zi(j, t), hits_top1=zi(j, t), hits_v2=zi(j, t),
                            hits_v2_top1=zi(j, t), meter_known=zf(j, t), meter_top1=zf(j, t),
                            meter_weight=zi(), num_updates=zi(), num_invalid_maps=zi())

  def merge(self, a: BoxAccuracyState, b: BoxAccuracyState) -> BoxAccuracyState:
    """Sum of two states (e.g. from two hosts or two halves of a test set).

    Counts add exactly. The running meters add too, which equals the meter
    of the batch sequence "all of ``a``, then all of ``b``" only when ``b``'s
    ratios are unaffected by ``a`` -- the official meter is order dependent
    by construction; compare ``*_pooled`` across shardings.
    """
    return jax.tree.map(jnp.add, a, b)

  # -- update -----------------------------------------------------------------

  def update(self, state: BoxAccuracyState, maps: ArrayLike, gt_boxes: ArrayLike,
             gt_mask: ArrayLike | None = None, correct: ArrayLike | None = None,
             valid: ArrayLike | None = None) -> BoxAccuracyState:
    """Adds one batch to the counts (jitted; works inside an outer ``jit`` too).

    Args:
      state: from :meth:`init` or a previous ``update``.
      maps: real ``[B, h, w]`` score maps of the ground-truth class (raw
        CAMs: they are resized to ``image_size`` when their size differs and
        min-max normalised per map, as the protocol prescribes; already
        normalised maps pass through unchanged).
      gt_boxes: ``[B, G, 4]`` ground-truth boxes ``(x0, y0, x1, y1)``,
        inclusive pixel indices of the ``image_size`` frame (float allowed).
      gt_mask: bool ``[B, G]``, which GT boxes are real (default: all).
      correct: bool ``[B]``, top-1 prediction correct; None: Top-1 metrics
        are not accumulated for this batch (Top-1 results become NaN unless
        every batch provides it).
      valid: bool ``[B]``, False for padding (default: all valid).

    Returns:
      The new state.

    Raises:
      ValueError: bad shapes/dtypes; with concrete values also GT boxes with
        ``x1 < x0`` or ``y1 < y0`` among the valid ones, or outside the frame
        (see the module docstring).
    """
    maps, gt_boxes, gt_mask, correct, valid = self._check(maps, gt_boxes, gt_mask, correct, valid)
    maps = _exact_gray_input(self, maps)
    if _scans_on_host(self, state, maps, gt_boxes, gt_mask, correct, valid):
      out, hw = _scan(self, maps, gt_boxes, gt_mask)
      return _update_from_scan_jit(self, hw, state, out, gt_boxes, gt_mask, correct, valid)
    return _update_jit(self, state, maps, gt_boxes, gt_mask, correct, valid)

  def image_hits(self, maps: ArrayLike, gt_boxes: ArrayLike, gt_mask: ArrayLike | None = None
                 ) -> tuple[Array, Array]:
    """Per-image hit decisions, for analysis: bool ``([B, J, T], [B, J, T])`` for V1, V2.

    ``[b, j, t]`` is True when image ``b``'s V1 box (V2: any box) at map
    threshold ``t`` has IoU >= ``iou_thresholds[j]`` with one of its GT boxes.
    Arguments as in :meth:`update`; jitted.
    """
    maps, gt_boxes, gt_mask, _, _ = self._check(maps, gt_boxes, gt_mask, None, None)
    if _scans_on_host(self, maps, gt_boxes, gt_mask):
      out, hw = _scan(self, maps, gt_boxes, gt_mask)
      return _hits_from_scan_jit(self, out, hw, gt_boxes, gt_mask)
    return _image_hits_jit(self, maps, gt_boxes, gt_mask)

  def update_fn(self, state: BoxAccuracyState, maps: ArrayLike, gt_boxes: ArrayLike,
                gt_mask: ArrayLike, correct: ArrayLike | None,
                valid: ArrayLike) -> BoxAccuracyState:
    """The un-jitted pure update (same contract as :meth:`update`, no defaults)."""
    return _update_impl(self, state, maps, gt_boxes, gt_mask, correct, valid)

  def _check(self, maps: ArrayLike, gt_boxes: ArrayLike, gt_mask: ArrayLike | None,
             correct: ArrayLike | None, valid: ArrayLike | None
             ) -> tuple[ArrayLike, ArrayLike, Array, Array | None, Array]:
    b, h, w = _checks.require_maps(maps, 3, "[B, h, w]")
    _checks.require_ndim(gt_boxes, 3, "gt_boxes", "[B, G, 4]")
    if np.shape(gt_boxes)[0] != b or np.shape(gt_boxes)[2] != 4:
      raise ValueError(f"`gt_boxes` must have shape [B={b}, G, 4], got "
                       f"{tuple(np.shape(gt_boxes))}.")
    _checks.require_real(gt_boxes, "gt_boxes")
    g = np.shape(gt_boxes)[1]
    if gt_mask is None:
      gt_mask = jnp.ones((b, g), jnp.bool_)
    else:
      _check_bool(gt_mask, (b, g), "gt_mask")
    if correct is not None:
      _check_bool(correct, (b,), "correct")
    if valid is None:
      valid = jnp.ones((b,), jnp.bool_)
    else:
      _check_bool(valid, (b,), "valid")
    if _checks.is_concrete(gt_boxes) and _checks.is_concrete(gt_mask):
      gb = np.asarray(gt_boxes, np.float64)
      gm = np.asarray(gt_mask, bool)
      if np.isnan(gb[gm]).any():
        raise ValueError("`gt_boxes` contains NaN among the boxes selected by `gt_mask`.")
      bad = gm & ((gb[..., 2] < gb[..., 0]) | (gb[..., 3] < gb[..., 1]))
      if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"`gt_boxes` must be (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1; "
                         f"box {i} is {gb[i].tolist()}.")
      fh, fw = self.image_size if self.image_size is not None else (h, w)
      mg = self.protocol.gt_margin
      lo_x, lo_y, hi_x, hi_y = -mg * fw, -mg * fh, fw + mg * fw, fh + mg * fh
      if not self.normalize and self.image_size is None:
        # Maps as saved (evaluation.py): GT boxes live in their own frame (224 x 224 there),
        # whatever the maps' size; only non-negative coordinates are required.
        hi_x = hi_y = np.inf
      out = gm & ((gb[..., 0] < lo_x) | (gb[..., 1] < lo_y) | (gb[..., 2] > hi_x)
                  | (gb[..., 3] > hi_y))
      if out.any():
        i = tuple(int(v) for v in np.argwhere(out)[0])
        where = ("`image_size`" if self.image_size is not None else "the maps' size (no "
                 "`image_size` given)")
        raise ValueError(
            f"`gt_boxes` box {i} = {gb[i].tolist()} lies outside the {fh}x{fw} (HxW) frame of "
            f"{where}: under protocol {self.protocol.name!r} coordinates must be in "
            f"x [{lo_x:g}, {hi_x:g}], y [{lo_y:g}, {hi_y:g}]. Boxes must be in the pixel "
            f"coordinates of the {fh}x{fw} frame (e.g. transformed with "
            "infocam_jax.wsol.boxes.resize_crop_boxes).")
    return (maps, gt_boxes, jnp.asarray(gt_mask, jnp.bool_),
            None if correct is None else jnp.asarray(correct, jnp.bool_),
            jnp.asarray(valid, jnp.bool_))

  # -- compute ----------------------------------------------------------------

  def compute(self, state: BoxAccuracyState) -> BoxAccuracyResult:
    """Final metrics (host side, NumPy). Raises ValueError if no image was added."""
    s = jax.tree.map(np.asarray, state)
    n = int(s.num_images)
    if n <= 0:
      raise ValueError("No images were accumulated (num_images == 0); call `update` first.")
    if int(s.num_invalid_maps) > 0:
      warnings.warn(f"{int(s.num_invalid_maps)} of {n} maps contain NaN or inf; they were "
                    "evaluated as all-zero maps (empty foregrounds). See "
                    "`BoxAccuracyResult.num_invalid_maps`.", RuntimeWarning, stacklevel=2)
    th = np.asarray(self.cam_thresholds, np.float64)
    iou = np.asarray(self.iou_thresholds, np.float64)
    j0 = int(np.argmin(np.abs(iou - self.loc_iou)))
    has_t0 = not math.isnan(self.loc_threshold)
    t0 = int(np.argmin(np.abs(th - self.loc_threshold))) if has_t0 else 0
    nan = np.float64("nan")
    top1_ok = int(s.num_with_correct) == n
    rate = lambda h: 100.0 * h.astype(np.float64) / n
    v1 = rate(s.hits) if self.v1 else np.full(s.hits.shape, nan)
    v1_top1 = rate(s.hits_top1) if (self.v1 and top1_ok) else np.full(s.hits.shape, nan)
    v2 = rate(s.hits_v2) if self.v2 else np.full(s.hits.shape, nan)
    v2_top1 = rate(s.hits_v2_top1) if (self.v2 and top1_ok) else np.full(s.hits.shape, nan)
    if self.v1:
      best_t = int(np.argmax(v1[j0]))
      mba, mba_t = float(v1[j0, best_t]), float(th[best_t])
    else:
      mba, mba_t = nan, nan
    if self.v2:
      per_iou = v2.max(axis=1)
      per_iou_t = th[np.argmax(v2, axis=1)]
      mba2 = float(per_iou.mean())
    else:
      per_iou = np.full(len(iou), nan)
      per_iou_t = np.full(len(iou), nan)
      mba2 = nan
    w = float(s.meter_weight)
    fixed = self.v1 and has_t0 and w > 0
    meter_known = float(s.meter_known[j0, t0]) / w if fixed else nan
    meter_top1 = float(s.meter_top1[j0, t0]) / w if (fixed and top1_ok) else nan
    pooled_known = float(v1[j0, t0]) if has_t0 else nan
    pooled_top1 = float(v1_top1[j0, t0]) if has_t0 else nan
    meters = self.protocol.running_meters
    nwc = int(s.num_with_correct)
    return BoxAccuracyResult(
        protocol=self.protocol.name, num_images=n, cam_thresholds=th, iou_thresholds=iou,
        box_acc_curve=v1, top1_loc_curve=v1_top1, box_acc_v2_curve=v2, top1_loc_v2_curve=v2_top1,
        max_box_acc=mba, max_box_acc_threshold=mba_t, max_box_acc_v2=mba2,
        max_box_acc_v2_per_iou=per_iou, max_box_acc_v2_thresholds=per_iou_t,
        loc_threshold=float(th[t0]) if has_t0 else nan, loc_iou=float(iou[j0]),
        gt_known_loc=meter_known if meters else pooled_known,
        top1_loc=meter_top1 if meters else pooled_top1,
        gt_known_loc_pooled=pooled_known, top1_loc_pooled=pooled_top1,
        gt_known_loc_meter=meter_known, top1_loc_meter=meter_top1,
        top1_cls=100.0 * int(s.num_correct) / nwc if nwc > 0 else nan,
        num_invalid_maps=int(s.num_invalid_maps))

  # -- convenience ------------------------------------------------------------

  def evaluate(self, maps: ArrayLike, gt_boxes: ArrayLike, gt_mask: ArrayLike | None = None,
               correct: ArrayLike | None = None, *, batch_size: int = 64) -> BoxAccuracyResult:
    """``init`` + ``update`` over consecutive batches + ``compute`` for arrays in memory.

    The last partial batch is padded (``valid=False``) so ``update`` traces
    once; with the "paper" protocol ``batch_size`` changes the running meters,
    exactly as the official loader's batch size does.
    """
    n = int(np.shape(maps)[0]) if np.ndim(maps) else 0
    bs = int(batch_size)
    if bs < 1:
      raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    bs = max(1, min(bs, n))
    maps = np.asarray(maps)
    gt_boxes = np.asarray(gt_boxes)
    g = gt_boxes.shape[1] if gt_boxes.ndim == 3 else 0
    gt_mask = np.ones((n, g), bool) if gt_mask is None else np.asarray(gt_mask, bool)
    correct = None if correct is None else np.asarray(correct, bool)
    state = self.init()
    for lo in range(0, n, bs):
      hi = min(lo + bs, n)
      pad = bs - (hi - lo)

      def padded(x: np.ndarray, lo: int = lo, hi: int = hi, pad: int = pad) -> np.ndarray:
        return np.concatenate([x[lo:hi], np.repeat(x[hi - 1:hi], pad, 0)]) if pad else x[lo:hi]

      valid = np.arange(bs) < hi - lo
      state = self.update(state, padded(maps), padded(gt_boxes), padded(gt_mask),
                          None if correct is None else padded(correct), valid)
    return self.compute(state)


_GRAY_AS_FLOAT32 = ((np.arange(256) + 0.5) / 255.0).astype(np.float32)  # level g -> (g + 0.5) / 255


def _exact_gray_input(ev: BoxAccuracy, maps: ArrayLike) -> ArrayLike:
  """float64 maps used as given under the uint8 rule: the gray levels ``uint8(255 m)`` of the
  float64 values (wsolevaluation's arithmetic), handed to the float32 kernel as the float32
  values ``(g + 0.5) / 255``, whose levels are ``g`` again. Other inputs pass unchanged."""
  if (ev.normalize or ev.protocol.quantization != "uint8" or not _checks.is_concrete(maps)
      or _checks.dtype_of(maps) != np.float64):
    return maps
  m = np.asarray(maps)
  lo, hi = (m.min(), m.max()) if m.size else (0.0, 0.0)
  if 0.0 <= lo and hi <= 1.0:  # the common case: three passes, no temporaries beyond them
    return _GRAY_AS_FLOAT32[(m * 255.0).astype(np.uint8)]
  gray = (np.clip(np.where(np.isnan(m), 0.0, m), 0.0, 1.0) * 255).astype(np.uint8)
  out = _GRAY_AS_FLOAT32[gray]
  bad = ~np.isfinite(m)
  if bad.any():  # NaN and inf pass as themselves (counted as invalid maps, as float32 maps)
    out[bad] = m[bad].astype(np.float32)
  return out


def _check_bool(x: ArrayLike, shape: Sequence[int], name: str) -> None:
  if tuple(np.shape(x)) != tuple(shape):
    raise ValueError(f"`{name}` must have shape {list(shape)}, got {tuple(np.shape(x))}.")
  if _checks.dtype_of(x) != np.bool_:
    raise ValueError(f"`{name}` must be a bool array, got dtype {_checks.dtype_of(x)}.")


def _scan(ev: BoxAccuracy, maps: ArrayLike, gt_boxes: ArrayLike, gt_mask: ArrayLike
          ) -> tuple[dict[str, Any], tuple[int, int]]:
  """The component scan of a batch: (its output dict, the frame (H, W) of the boxes)."""
  proto = ev.protocol
  backend = _ccl.resolve_backend(ev.backend)
  exact = backend == "numba"  # contour area, hole boxes and the float64 resize
  b, h, w = np.shape(maps)
  resize_to = None
  if ev.image_size is not None and (h, w) != tuple(ev.image_size):
    if proto.resize_float64 and exact:
      resize_to = ev.image_size  # cv2.resize of the float64 map, inside the kernel
    else:  # a constant raw map stays constant (upsample_maps), so it has no foreground
      maps = cam_lib.upsample_maps(jnp.asarray(maps, jnp.float32), ev.image_size,
                                   proto.resize_method)
    h, w = ev.image_size
  out = _ccl.component_scan(
      maps, ev.cam_thresholds, quantization=proto.quantization, normalize=ev.normalize,
      resize_to=resize_to, backend=backend, want_v1=ev.v1,
      largest=proto.largest if exact else "pixels",
      gt=gt_boxes if ev.v2 else None, gt_valid=gt_mask, iou_thresholds=ev.iou_thresholds,
      box_convention=proto.box_convention, clamp=proto.clamp_iou, empty_box=proto.empty_box,
      hole_boxes=proto.hole_boxes and exact, num_threads=ev.num_threads,
      threshold_chunk=ev.threshold_chunk)
  return out, (h, w)


def _scans_on_host(ev: BoxAccuracy, *args: Any) -> bool:
  """True when the scan can run eagerly on host arrays (numba backend, no tracers): then
  the maps are read in place rather than copied into a jit call and out to a callback."""
  return _ccl.resolve_backend(ev.backend) == "numba" and not _ccl._is_traced(*args)


def _hits_from_scan(ev: BoxAccuracy, out: dict[str, Any], hw: tuple[int, int],
                    gt_boxes: ArrayLike, gt_mask: ArrayLike) -> tuple[Array, Array]:
  """Per-image hits ``[B, J, T]`` for V1 and V2 (all False where disabled)."""
  proto = ev.protocol
  gt = jnp.asarray(gt_boxes, jnp.float32)
  gt_mask = jnp.asarray(gt_mask, jnp.bool_)
  b = gt.shape[0]
  j, t = len(ev.iou_thresholds), len(ev.cam_thresholds)
  if ev.v1:
    box = jnp.asarray(out["box"])
    if proto.box_convention == "contour_clipped":
      box = boxes_lib.to_contour_convention(box, hw)
    elif proto.box_convention == "contour":
      box = boxes_lib.to_contour_convention(box)
    empty = jnp.asarray(out["area"]) == 0
    if proto.empty_box is not None:
      box = jnp.where(empty[..., None], jnp.asarray(proto.empty_box, box.dtype), box)
    level = boxes_lib.iou_levels(box[:, :, None, :], gt[:, None, :, :], ev.iou_thresholds,
                                 clamp=proto.clamp_iou)  # [B, T, G]
    level = jnp.max(jnp.where(gt_mask[:, None, :], level, 0), axis=-1, initial=0)  # [B, T]
    hit = level[:, None, :] > jnp.arange(j)[None, :, None]  # [B, J, T]
    if proto.empty_box is None:
      hit = hit & ~empty[:, None, :]
  else:
    hit = jnp.zeros((b, j, t), jnp.bool_)
  if ev.v2:
    hit2 = jnp.asarray(out["v2_level"])[:, None, :] > jnp.arange(j)[None, :, None]
  else:
    hit2 = jnp.zeros((b, j, t), jnp.bool_)
  return hit, hit2


def _image_hits_impl(ev: BoxAccuracy, maps: ArrayLike, gt_boxes: ArrayLike,
                     gt_mask: ArrayLike) -> tuple[Array, Array]:
  """Per-image hits ``[B, J, T]`` for V1 and V2 (all False where disabled)."""
  out, hw = _scan(ev, maps, gt_boxes, gt_mask)
  return _hits_from_scan(ev, out, hw, gt_boxes, gt_mask)


_image_hits_jit = jax.jit(_image_hits_impl, static_argnums=0)
_hits_from_scan_jit = jax.jit(_hits_from_scan, static_argnums=(0, 2))


def _accumulate(ev: BoxAccuracy, state: BoxAccuracyState, hit: Array, hit2: Array,
                invalid: ArrayLike, correct: Array | None, valid: ArrayLike) -> BoxAccuracyState:
  """The state after one batch's hits (bool ``[B, J, T]``) and invalid-map flags ``[B]``."""
  valid = jnp.asarray(valid, jnp.bool_)
  invalid = jnp.asarray(invalid, jnp.bool_)
  ok = valid[:, None, None]
  ok_top1 = ok & (correct[:, None, None] if correct is not None else False)

  count = lambda x: jnp.sum(x, axis=0, dtype=jnp.int32)
  bs = jnp.sum(valid, dtype=jnp.int32)
  num_images = state.num_images + bs
  hits = state.hits + count(hit & ok)
  hits_top1 = state.hits_top1 + count(hit & ok_top1)
  denom = jnp.maximum(num_images, 1).astype(jnp.float32)
  bsf = bs.astype(jnp.float32)
  if correct is not None:
    num_with_correct = state.num_with_correct + bs
    num_correct = state.num_correct + jnp.sum(valid & correct, dtype=jnp.int32)
  else:
    num_with_correct, num_correct = state.num_with_correct, state.num_correct
  return BoxAccuracyState(
      num_images=num_images, num_with_correct=num_with_correct, num_correct=num_correct,
      hits=hits, hits_top1=hits_top1,
      hits_v2=state.hits_v2 + count(hit2 & ok),
      hits_v2_top1=state.hits_v2_top1 + count(hit2 & ok_top1),
      meter_known=state.meter_known + bsf * (100.0 * hits.astype(jnp.float32) / denom),
      meter_top1=state.meter_top1 + bsf * (100.0 * hits_top1.astype(jnp.float32) / denom),
      meter_weight=state.meter_weight + bs, num_updates=state.num_updates + 1,
      num_invalid_maps=state.num_invalid_maps + jnp.sum(invalid & valid, dtype=jnp.int32))


def _update_from_scan(ev: BoxAccuracy, hw: tuple[int, int], state: BoxAccuracyState,
                      out: dict[str, Any], gt_boxes: ArrayLike, gt_mask: ArrayLike,
                      correct: Array | None, valid: ArrayLike) -> BoxAccuracyState:
  hit, hit2 = _hits_from_scan(ev, out, hw, gt_boxes, gt_mask)
  return _accumulate(ev, state, hit, hit2, out["invalid"], correct, valid)


def _update_impl(ev: BoxAccuracy, state: BoxAccuracyState, maps: ArrayLike, gt_boxes: ArrayLike,
                 gt_mask: ArrayLike, correct: Array | None, valid: ArrayLike) -> BoxAccuracyState:
  out, hw = _scan(ev, maps, gt_boxes, gt_mask)
  return _update_from_scan(ev, hw, state, out, gt_boxes, gt_mask, correct, valid)


_update_jit = jax.jit(_update_impl, static_argnums=0)
_update_from_scan_jit = jax.jit(_update_from_scan, static_argnums=(0, 1))


def max_box_accuracy(protocol: str = "clean", *, cam_thresholds: ArrayLike | None = None,
                     iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
                     loc_threshold: float | None = None, loc_iou: float = 0.5,
                     image_size: int | Sequence[int] | None = None, v1: bool = True,
                     v2: bool = True, backend: str = "auto", num_threads: int | None = None,
                     threshold_chunk: int = 16, normalize: bool = True) -> BoxAccuracy:
  """Builds a streaming MaxBoxAcc / MaxBoxAccV2 / Top-1 Loc / GT-known Loc evaluator.

  Args:
    protocol: ``"clean"`` (default), ``"wsolevaluation"`` or ``"paper"``;
      see the module docstring for exactly what each does.
    cam_thresholds: map thresholds (strictly increasing, in [0, 1]); default
      ``np.arange(0, 1, 0.01)`` (``0.05`` steps for "paper").
    iou_thresholds: strictly increasing, in (0, 1]; MaxBoxAccV2 averages over
      all of them (wsolevaluation: 0.3, 0.5, 0.7).
    loc_threshold: map threshold of the fixed-threshold GT-known / Top-1 Loc;
      must be one of ``cam_thresholds``. None (default): 0.2 when it is one of
      them, else the fixed-threshold metrics are NaN.
    loc_iou: IoU threshold of MaxBoxAcc (V1) and the fixed-threshold metrics;
      must be one of ``iou_thresholds``.
    image_size: ``(H, W)`` of the frame of the GT boxes; maps of another size
      are resized to it. None: maps are already in that frame.
    v1, v2: accumulate V1 (largest component) / V2 (all components) counts.
    backend: ``"auto" | "numba" | "jax"`` (see
      :func:`infocam_jax.wsol.boxes.boxes_from_maps`).
    num_threads: numba threads (default: all usable CPUs).
    threshold_chunk: thresholds labelled at once by the jax backend (memory grows
      with batch x chunk x H x W; larger is faster on a big GPU).
    normalize: min-max normalise every map (after any resize), as the
      protocol prescribes (default). False: maps are used as given, as
      wsolevaluation's ``evaluation.py`` does with saved score maps (they
      must then lie in [0, 1]; the "wsolevaluation" protocol reads
      ``uint8(255 map)`` of the float64 value of the map). With
      ``image_size=None`` the GT boxes then need not lie inside the maps'
      frame (evaluation.py compares 224-frame GT boxes with the boxes of maps
      of any size), only be non-negative.

  Returns:
    A :class:`BoxAccuracy` with ``init``, ``update``, ``compute``, ``merge``,
    ``evaluate``.

  Example::

    >>> maps = np.zeros((2, 8, 8), np.float32); maps[:, 2:6, 2:6] = 1.0  # a lit square
    >>> gt = np.array([[[2, 2, 5, 5]], [[0, 0, 1, 1]]])  # [B, G, 4]: image 0's box is the square
    >>> sorted(PROTOCOLS)
    ['clean', 'paper', 'wsolevaluation']
    >>> ev = max_box_accuracy("clean", cam_thresholds=[0.2, 0.5])
    >>> r = ev.evaluate(maps, gt, correct=np.array([True, False]))
    >>> r.max_box_acc, r.max_box_acc_v2, r.gt_known_loc, r.top1_loc, r.top1_cls  # percent
    (50.0, 50.0, 50.0, 50.0, 50.0)
  """
  if protocol not in PROTOCOLS:
    raise ValueError(f"`protocol` must be one of {tuple(PROTOCOLS)}, got {protocol!r}.")
  proto = PROTOCOLS[protocol]
  if cam_thresholds is None:
    cam_thresholds = np.arange(*proto.default_thresholds)
  th = np.asarray(cam_thresholds, np.float64).reshape(-1) if np.ndim(cam_thresholds) <= 1 else None
  if th is None or th.size == 0:
    raise ValueError(f"`cam_thresholds` must be a non-empty 1-D sequence, got shape "
                     f"{np.shape(cam_thresholds)}.")
  if not np.all(np.isfinite(th)) or th.min() < 0 or th.max() > 1 or np.any(np.diff(th) <= 0):
    raise ValueError("`cam_thresholds` must be finite, in [0, 1] and strictly increasing.")
  if th.size > 65535:
    raise ValueError(f"`cam_thresholds` must hold at most 65535 values, got {th.size}.")
  iou = np.asarray(iou_thresholds, np.float64).reshape(-1)
  if (iou.size == 0 or not np.all(np.isfinite(iou)) or iou.min() <= 0 or iou.max() > 1
      or np.any(np.diff(iou) <= 0)):
    raise ValueError(f"`iou_thresholds` must be non-empty, in (0, 1] and strictly increasing, "
                     f"got {list(iou_thresholds)}.")
  if loc_threshold is None:
    loc_threshold = 0.2 if np.any(np.abs(th - 0.2) < 1e-9) else float("nan")
  elif not np.any(np.abs(th - loc_threshold) < 1e-9):
    raise ValueError(f"`loc_threshold`={loc_threshold} must be one of `cam_thresholds`.")
  if not np.any(np.abs(iou - loc_iou) < 1e-9):
    raise ValueError(f"`loc_iou`={loc_iou} must be one of `iou_thresholds` {iou.tolist()}.")
  size = None if image_size is None else _checks.parse_size(image_size, "image_size")
  _ccl.resolve_backend(backend)
  if not (v1 or v2):
    raise ValueError("At least one of `v1` and `v2` must be True.")
  if int(threshold_chunk) < 1:
    raise ValueError(f"`threshold_chunk` must be >= 1, got {threshold_chunk}.")
  if protocol != "clean" and _ccl.resolve_backend(backend) == "jax":
    warnings.warn(f"protocol {protocol!r} on the jax backend: the largest component is the one "
                  "with most pixels, hole boxes are not evaluated and maps are resized in "
                  "float32; use backend='numba' for exact parity with the reference.",
                  UserWarning, stacklevel=2)
  return BoxAccuracy(protocol=proto, cam_thresholds=tuple(float(x) for x in th),
                     iou_thresholds=tuple(float(x) for x in iou),
                     loc_threshold=float(loc_threshold), loc_iou=float(loc_iou), image_size=size,
                     v1=bool(v1), v2=bool(v2), backend=backend,
                     num_threads=None if num_threads is None else int(num_threads),
                     threshold_chunk=int(threshold_chunk), normalize=bool(normalize))
