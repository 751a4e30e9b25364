"""PxAP: the pixel-wise precision-recall AUC of score maps against masks (OpenImages).

Identical to wsolevaluation's ``MaskEvaluator`` (Choe et al. 2020): for the
map thresholds ``cam_thresholds = np.arange(0, 1, interval)`` the score of
every foreground pixel (mask 1) and background pixel (mask 0) -- pixels of
the ignore region (255) are left out -- is counted in the bins
``[t_0, t_1), ..., [t_{T-1}, 1), [1, 2), [2, 3]`` (``np.histogram`` with the
edges ``thresholds + [1, 2, 3]``; a score of exactly 1 falls in ``[1, 2)``),
in float64, as the peer casts maps to float64. Then, from the highest bin
down, ``tp``/``fp`` are the cumulative foreground/background counts,
``precision = tp / (tp + fp)``, ``recall = tp / num_foreground`` and

    PxAP = 100 * sum_{i >= 1, tp_i + fp_i != 0} precision_i * (recall_i - recall_{i-1}).

Masks (:func:`load_mask`): every instance mask and the ignore mask are read
as 8-bit gray with OpenCV, resized to 224 x 224 with ``INTER_NEAREST`` and
thresholded at 0.5; the ignore region is the ignore mask minus the union of
the instance masks (so a pixel in both is foreground -- the peer's rule,
under which its "ignore and foreground masks intersect" check can never
fire). The state is a pair of int64 histograms, so streaming any number of
maps in any chunks gives the same numbers as one batch.

Example::

    ev = PxAP(np.arange(0, 1, 0.01))
    state = ev.init()
    state = ev.update(state, scoremap, mask)      # float [H, W] in [0, 1]; uint8 mask 0/1/255
    ev.compute(state).pxap
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

RESIZE_LENGTH = 224


class PxAPError(ValueError):
  """No positive ground truth or no positive prediction in the evaluated set."""


@dataclasses.dataclass(frozen=True)
class PxAPState:
  """Histograms (int64 ``[T + 2]``) of the scores of foreground / background pixels."""
  gt_true_hist: np.ndarray
  gt_false_hist: np.ndarray
  num_maps: int = 0


@dataclasses.dataclass(frozen=True)
class PxAPResult:
  """``pxap`` (percent) and the curve it integrates (``[T + 3]``, highest bin first)."""
  pxap: float
  precision: np.ndarray
  recall: np.ndarray
  bin_edges: np.ndarray
  num_maps: int


@dataclasses.dataclass(frozen=True)
class PxAP:
  """Streaming PxAP for map thresholds ``cam_thresholds`` (ascending, in [0, 1))."""
  cam_thresholds: tuple[float, ...]
  if TYPE_CHECKING:  # set in __init__, not dataclass fields (equality and hash: the thresholds)
    _edges: np.ndarray
    _inv_step: float

  def __init__(self, cam_thresholds: Sequence[float] | np.ndarray):
    th = np.asarray(cam_thresholds, np.float64).reshape(-1)
    if th.size == 0 or np.any(np.diff(th) <= 0) or th[0] < 0 or th[-1] >= 1:
      raise ValueError("`cam_thresholds` must be non-empty, strictly increasing and in [0, 1).")
    object.__setattr__(self, "cam_thresholds", tuple(float(x) for x in th))
    object.__setattr__(self, "_edges", np.append(th, [1.0, 2.0, 3.0]))
    object.__setattr__(self, "_inv_step", float(len(th)) / (1.0 - th[0]))

  @property
  def bin_edges(self) -> np.ndarray:
    """``thresholds + [1, 2, 3]`` (float64), the peer's ``threshold_list_right_edge``."""
    return np.append(np.asarray(self.cam_thresholds, np.float64), [1.0, 2.0, 3.0])

  def init(self) -> PxAPState:
    n = len(self.cam_thresholds) + 2
    return PxAPState(np.zeros(n, np.int64), np.zeros(n, np.int64), 0)

  def histograms(self, scoremap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-map histograms ``(foreground, background)``, int64 ``[T + 2]``.

    ``scoremap``: real ``[H, W]`` in [0, 1] (cast to float64); ``mask``: ``[H, W]``
    with 1 = foreground, 0 = background, anything else ignored.
    """
    fg, bg, _ = self.histograms_and_stats(scoremap, mask)
    return fg, bg

  def histograms_and_stats(self, scoremap: np.ndarray, mask: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`histograms` and the map's ``(min, max, has NaN)`` (float64 ``[3]``; min and max
    count a NaN as 0), from one pass of the numba kernel (it releases the GIL)."""
    from infocam_jax.wsol import _numba_kernel
    m = np.asarray(scoremap)
    if m.dtype not in (np.float32, np.float64):
      m = m.astype(np.float64)  # float32 scores are read as their (exact) float64 values
    mk = np.asarray(mask)
    if m.ndim != 2 or mk.shape != m.shape:
      raise ValueError(f"score map {m.shape} and mask {mk.shape} must be the same 2-D shape.")
    if mk.dtype != np.uint8:
      mk = np.where(mk == 1, 1, np.where(mk == 0, 0, 255)).astype(np.uint8)
    edges = self._edges
    fg = np.empty(edges.size - 1, np.int64)
    bg = np.empty(edges.size - 1, np.int64)
    stats = np.empty(3, np.float64)
    # np.histogram's bins: [e_i, e_{i+1}) and the last one closed.
    _numba_kernel.mask_histograms(np.ascontiguousarray(m), np.ascontiguousarray(mk), edges,
                                  self._inv_step, fg, bg, stats)
    return fg, bg, stats

  def update(self, state: PxAPState, scoremap: np.ndarray, mask: np.ndarray) -> PxAPState:
    t, f = self.histograms(scoremap, mask)
    return PxAPState(state.gt_true_hist + t, state.gt_false_hist + f, state.num_maps + 1)

  @staticmethod
  def merge(a: PxAPState, b: PxAPState) -> PxAPState:
    return PxAPState(a.gt_true_hist + b.gt_true_hist, a.gt_false_hist + b.gt_false_hist,
                     a.num_maps + b.num_maps)

  def compute(self, state: PxAPState) -> PxAPResult:
    """The peer's ``MaskEvaluator.compute`` on the accumulated histograms."""
    true_hist = state.gt_true_hist.astype(np.float64)
    false_hist = state.gt_false_hist.astype(np.float64)
    num_gt_true = true_hist.sum()
    tp = true_hist[::-1].cumsum()
    fn = num_gt_true - tp
    num_gt_false = false_hist.sum()
    fp = false_hist[::-1].cumsum()
    if ((tp + fn) <= 0).all():
      raise PxAPError("No positive ground truth in the eval set (every mask is empty).")
    if ((tp + fp) <= 0).all():
      raise PxAPError("No positive prediction in the eval set.")
    non_zero = (tp + fp) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
      precision = tp / (tp + fp)
      recall = tp / (tp + fn)
    auc = (precision[1:] * np.diff(recall))[non_zero[1:]].sum()
    auc *= 100
    return PxAPResult(pxap=float(auc), precision=precision, recall=recall,
                      bin_edges=self.bin_edges, num_maps=state.num_maps)


def _read_mask(path: str, size: int) -> np.ndarray:
  import cv2
  if not os.path.isfile(path):
    raise FileNotFoundError(path)
  img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
  if img is None:
    raise ValueError(f"{path}: not an image OpenCV can read.")
  # The peer resizes float32(img) and takes > 0.5. INTER_NEAREST copies source pixels (the
  # same picks for every depth), so resizing the uint8 image and taking > 0 is the same mask
  # without converting the full-size image to float32 (tested against the float32 path).
  return cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST) > 0


def load_mask(mask_root: str, mask_paths: Sequence[str], ignore_path: str,
              size: int = RESIZE_LENGTH) -> np.ndarray:
  """uint8 ``[size, size]`` mask: 1 = foreground (any instance), 255 = ignore, 0 = background.

  ``mask_root`` is the folder the metadata paths are relative to (the peer's
  ``<mask_root>/OpenImages``).
  """
  fg = np.zeros((size, size), bool)
  for p in mask_paths:
    fg |= _read_mask(os.path.join(mask_root, p), size)
  ignore = _read_mask(os.path.join(mask_root, ignore_path), size) & ~fg
  return fg.astype(np.uint8) + 255 * ignore.astype(np.uint8)
