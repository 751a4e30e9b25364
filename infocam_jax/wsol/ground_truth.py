"""Ground-truth boxes per protocol: original-image boxes -> the boxes a protocol evaluates.

One public function, :func:`protocol_gt_boxes`, holds every protocol's GT rule
(wsolevaluation's ``int()`` truncation with sizes ``(W, H)``, the exact
transform of the clean protocol, the official infoCAM transform of the paper
protocol). NumPy only (JAX is imported for the clean and paper rules), so
the command line reads and resizes GT boxes without importing JAX.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ArrayLike = Any

__all__ = ["protocol_gt_boxes"]


def _size(size: Any, name: str) -> tuple[int, int]:
  """An int (square) or ``(height, width)`` of positive ints."""
  if isinstance(size, (int, np.integer)):
    size = (int(size), int(size))
  try:
    h, w = (int(v) for v in size)
  except (TypeError, ValueError):
    raise ValueError(f"`{name}` must be an int or (height, width), got {size!r}.") from None
  if h < 1 or w < 1:
    raise ValueError(f"`{name}` must be positive, got {size!r}.")
  return h, w


def protocol_gt_boxes(boxes: ArrayLike, image_size_wh: ArrayLike, protocol: str,
                      frame: int | Sequence[int] = 224,
                      resize: int | Sequence[int] | None = None) -> np.ndarray:
  """Original-image GT boxes -> the GT boxes a protocol evaluates, in the map frame.

  The one place where each protocol's ground-truth rule lives (the command
  line and :mod:`infocam_jax.evaluators.wsol` use it). The network input is
  the image resized to ``resize`` and centre-cropped to ``frame`` (``resize
  = None``: no crop, wsolevaluation's ``Resize((224, 224))``).

  * ``"wsolevaluation"``: ``resize_bbox`` of wsolevaluation: every
    coordinate ``int(c * resize_w / W)`` (``int(c * resize_h / H)`` for y),
    float64 arithmetic, truncated; minus the crop offset and clipped to
    ``[0, frame]`` when there is a crop; int64. Sizes are ``(W, H)``, as in
    its ``image_sizes.txt``. An edge at ``x = W`` maps to ``frame_w``.
  * ``"clean"``: the exact transform (:func:`infocam_jax.wsol.boxes.resize_crop_boxes`), clipped to
    the frame's inclusive pixel range; float32.
  * ``"paper"``: the official infoCAM ``load_bbox_size``
    (:func:`infocam_jax.wsol.boxes.legacy_resize_crop_boxes` of ``(x0, y0, x1 - x0, y1 - y0)``);
    float32, not clipped. Needs square sizes.

  Args:
    boxes: ``[..., 4]`` ``(x0, y0, x1, y1)`` in original-image pixels.
    image_size_wh: ``(width, height)``, one pair or ``[..., 2]`` (one per box).
    protocol: ``"wsolevaluation" | "clean" | "paper"``.
    frame: the maps' frame, ``(height, width)`` or one int (224: wsolevaluation's
      ``_RESIZE_LENGTH``).
    resize: ``(height, width)`` or one int of the resize before the centre
      crop; None: ``frame`` (no crop).

  Example::

    >>> protocol_gt_boxes([[60, 27, 385, 331]], (500, 335), "wsolevaluation").tolist()
    [[26, 18, 172, 221]]
  """
  b = np.asarray(boxes, np.float64)
  if b.ndim < 1 or b.shape[-1] != 4:
    raise ValueError(f"`boxes` must have shape [..., 4], got {b.shape}.")
  wh = np.asarray(image_size_wh, np.float64)
  if wh.ndim < 1 or wh.shape[-1] != 2 or np.any(~(wh > 0)):
    raise ValueError(f"`image_size_wh` must be positive (width, height) or [..., 2], got "
                     f"{np.asarray(image_size_wh).tolist()}.")
  fh, fw = _size(frame, "frame")
  rh, rw = (fh, fw) if resize is None else _size(resize, "resize")
  if fh > rh or fw > rw:
    raise ValueError(f"`frame` {(fh, fw)} must not exceed `resize` {(rh, rw)}.")
  w, h = wh[..., 0], wh[..., 1]
  hw = np.broadcast_to(np.stack([h, w], axis=-1), b.shape[:-1] + (2,))
  if protocol == "wsolevaluation":
    # resize_bbox: float(c) * float(new) / float(old), then int() (truncation toward zero).
    out = np.trunc(np.stack([b[..., 0] * float(rw) / w, b[..., 1] * float(rh) / h,
                             b[..., 2] * float(rw) / w, b[..., 3] * float(rh) / h], axis=-1))
    if (rh, rw) != (fh, fw):
      oy, ox = round((rh - fh) / 2.0), round((rw - fw) / 2.0)
      out = out - np.asarray([ox, oy, ox, oy], np.float64)
      out = np.clip(out, 0, np.asarray([fw, fh, fw, fh], np.float64))
    return out.astype(np.int64)
  if protocol == "clean":
    from infocam_jax.wsol.boxes import resize_crop_boxes  # pylint: disable=g-import-not-at-top
    return np.asarray(resize_crop_boxes(b, hw, (rh, rw), (fh, fw)), np.float32)
  if protocol == "paper":
    if fh != fw or rh != rw:
      raise ValueError(f"the paper protocol's GT transform needs square sizes, got frame "
                       f"{(fh, fw)} and resize {(rh, rw)}.")
    from infocam_jax.wsol.boxes import legacy_resize_crop_boxes  # pylint: disable=g-import-not-at-top
    xywh = np.stack([b[..., 0], b[..., 1], b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]], -1)
    return np.asarray(legacy_resize_crop_boxes(xywh, hw, rh, fh), np.float32)
  raise ValueError(f"`protocol` must be one of ('wsolevaluation', 'clean', 'paper'), got "
                   f"{protocol!r}.")
