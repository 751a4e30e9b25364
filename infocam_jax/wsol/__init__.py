"""Weakly-supervised object localisation (WSOL) evaluation: boxes, box metrics, PxAP, a command line.

Modules (each imported on first access):

* :mod:`~infocam_jax.wsol.boxes`: box conventions, IoU, ground-truth
  transforms, :func:`boxes_from_maps`;
* :mod:`~infocam_jax.wsol.ground_truth`: :func:`protocol_gt_boxes`,
  original-image boxes -> the boxes each protocol evaluates;
* :mod:`~infocam_jax.wsol.box_accuracy`: the streaming MaxBoxAcc / MaxBoxAccV2
  / Top-1 / GT-known Loc metric and its protocols (``clean``,
  ``wsolevaluation``, ``paper``);
* :mod:`~infocam_jax.wsol.pxap`: the streaming PxAP (pixel precision-recall
  AUC of OpenImages masks), as wsolevaluation's ``MaskEvaluator``;
* :mod:`~infocam_jax.wsol.metadata`: readers of wsolevaluation's metadata
  folders (``image_ids.txt``, ``image_sizes.txt``, ``localization.txt``, ...);
* :mod:`~infocam_jax.wsol.scoremaps`: score maps read from ``.npy`` files in
  chunks, reading overlapped with evaluation;
* :mod:`~infocam_jax.wsol.cli`: ``infocam-wsol-eval`` / ``python -m
  infocam_jax.wsol``, a drop-in for wsolevaluation's ``evaluation.py``;
* private engine: :mod:`~infocam_jax.wsol.conventions` (codes and leaves both
  kernels share) <- ``_numba_kernel`` / ``_jax_kernel`` <-
  :mod:`~infocam_jax.wsol.components` (dispatch).
"""

from __future__ import annotations

from infocam_jax import _lazy

_EXPORTS: dict[str, str] = {
    "boxes_from_maps": "boxes",
    "box_iou": "boxes",
    "iou_levels": "boxes",
    "Boxes": "boxes",
    "MultiBoxes": "boxes",
    "xywh_to_xyxy": "boxes",
    "resize_crop_boxes": "boxes",
    "legacy_resize_crop_boxes": "boxes",
    "tiny_imagenet_legacy_boxes": "boxes",
    "protocol_gt_boxes": "ground_truth",
    "max_box_accuracy": "box_accuracy",
    "BoxAccuracy": "box_accuracy",
    "BoxAccuracyState": "box_accuracy",
    "BoxAccuracyResult": "box_accuracy",
    "PROTOCOLS": "box_accuracy",
}

__all__ = sorted(_EXPORTS)

_SUBMODULES = ("boxes", "ground_truth", "box_accuracy", "pxap", "metadata", "scoremaps", "cli", "components",
               "conventions")

# typing.TYPE_CHECKING without importing typing: type checkers read the name as True.
TYPE_CHECKING = False

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error
  __getattr__, __dir__ = _lazy.lazy_exports(__name__, globals(), _EXPORTS, __all__, _SUBMODULES)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily
  from infocam_jax.wsol import (box_accuracy, boxes, cli, components, conventions, ground_truth,
                                metadata, pxap, scoremaps)
  from infocam_jax.wsol.box_accuracy import (PROTOCOLS, BoxAccuracy, BoxAccuracyResult,
                                             BoxAccuracyState, max_box_accuracy)
  from infocam_jax.wsol.boxes import (Boxes, MultiBoxes, box_iou, boxes_from_maps, iou_levels,
                                      legacy_resize_crop_boxes, resize_crop_boxes,
                                      tiny_imagenet_legacy_boxes, xywh_to_xyxy)
  from infocam_jax.wsol.ground_truth import protocol_gt_boxes
