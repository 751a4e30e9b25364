"""Conventions and arithmetic shared by both connected-component kernels.

Defined once and passed to the kernels as ints: the codes of the box
conventions (:data:`BOX_MODES`), quantisations (:data:`QUANTIZATIONS`) and
"largest component" rules (:data:`LARGEST`). Also the IoU leaf
:func:`inter_union` (used by :func:`infocam_jax.wsol.boxes.box_iou` and the
jax kernel), :func:`iou_threshold_array` (the rounded-down IoU thresholds of
the division-free hit test), the cubehelix gray table of the official infoCAM
evaluation, wsolevaluation's gray-threshold table and OpenCV's bicubic taps.

Import structure: this module imports no other module of the package; the
kernels (:mod:`infocam_jax.wsol._numba_kernel`,
:mod:`infocam_jax.wsol._jax_kernel`) import it, and
:mod:`infocam_jax.wsol.components` imports it and the kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Array = Any  # a jax.Array; JAX is imported by the functions that need it (the numba
ArrayLike = Any  # kernel and the command line import this module without JAX)


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



# ----------------------------------------------------------------------------
# IoU leaf.
# ----------------------------------------------------------------------------


def inter_union(a: Array, b: Array, clamp: bool) -> tuple[Array, Array]:
  """Intersection and union of float32 inclusive boxes ``[..., 4]`` ("+1" convention).

  ``clamp=False`` drops the ``max(0, ·)`` on the overlap widths (the official
  infoCAM ``calculate_IOU``). Broadcasts like ``a + b``.
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
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

  def channel(p0: float, p1: float) -> np.ndarray:
    return np.clip(x + amp * (p0 * np.cos(phi) + p1 * np.sin(phi)), 0.0, 1.0)

  rgb = np.stack([channel(-0.14861, 1.78277), channel(-0.29227, -0.90649),
                  channel(1.97294, 0.0)], axis=-1)
  rgb8 = (rgb.astype(np.float32) * np.float32(255.0)).astype(np.uint8).astype(np.int64)
  gray = (rgb8[:, 0] * 9798 + rgb8[:, 1] * 19235 + rgb8[:, 2] * 3735 + (1 << 14)) >> 15
  out = gray.astype(np.uint8)
  out.setflags(write=False)
  return out


CUBEHELIX_GRAY = _cubehelix_gray_table()


def gray_threshold_table(thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
  """int32 ``[256, T]``: ``int(t * m) + 1`` for every gray maximum ``m``.

  The first gray level above ``int(t * max(gray))`` (OpenCV ``THRESH_BINARY``
  is strict), computed in float64 exactly as Python's ``int(t * m)``.
  """
  m = np.arange(256, dtype=np.float64)[:, None]
  t = np.asarray(thresholds, np.float64).reshape(1, -1)
  if np.any(t < 0):
    raise ValueError("gray-level thresholds must be >= 0.")
  return (np.floor(t * m) + 1).astype(np.int32)  # t * m >= 0: floor == int()



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
