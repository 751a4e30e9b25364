"""infocam-jax: softmax as a mutual-information estimator, PC-softmax and infoCAM.

A JAX/Flax reimplementation of Qin, Kim & Gedeon, "Rethinking Softmax with
Cross-Entropy: Neural Network Classifier as Mutual Information Estimator"
(arXiv 1911.10688). All information quantities are in nats.

The public names below are imported lazily (on first attribute access) so that
``import infocam_jax`` stays cheap and never pulls in tensorflow-datasets.
Sub-packages and modules, also imported on first access (``ij.models``):
``models``, ``data``, ``train``, ``evaluators``, ``estimators``, ``gaussian``,
``cam``, ``wsol`` (boxes, box metrics, the wsolevaluation command line), ``plotting``, ``io``.
"""

from __future__ import annotations

from infocam_jax import _lazy

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # Mutual-information estimators (nats).
    "pc_log_softmax": "estimators",
    "pc_softmax": "estimators",
    "pc_softmax_cross_entropy": "estimators",
    "pmi": "estimators",
    "mutual_information": "estimators",
    "MIEstimate": "estimators",
    "prior_from_counts": "estimators",
    "mean_with_stderr": "estimators",
    "checked": "estimators",
    # Gaussian-mixture ground truth.
    "GaussianMixture": "gaussian",
    # Class activation maps.
    "class_activation_map": "cam",
    "infocam": "cam",
    "grad_cam": "cam",
    "upsample_maps": "cam",
    "normalize_maps": "cam",
    "region_sum": "cam",
    "grad_cam_from_head": "cam",
    "gap_dense_head": "cam",
    # Boxes and localisation metrics.
    "boxes_from_maps": "wsol.boxes",
    "box_iou": "wsol.boxes",
    "iou_levels": "wsol.boxes",
    "Boxes": "wsol.boxes",
    "MultiBoxes": "wsol.boxes",
    "xywh_to_xyxy": "wsol.boxes",
    "resize_crop_boxes": "wsol.boxes",
    "legacy_resize_crop_boxes": "wsol.boxes",
    "tiny_imagenet_legacy_boxes": "wsol.boxes",
    "max_box_accuracy": "wsol.box_accuracy",
    "BoxAccuracy": "wsol.box_accuracy",
    "BoxAccuracyState": "wsol.box_accuracy",
    "BoxAccuracyResult": "wsol.box_accuracy",
    "PROTOCOLS": "wsol.box_accuracy",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


_SUBMODULES = ("models", "data", "train", "evaluators", "estimators", "gaussian", "cam", "wsol",
               "plotting", "io")

__getattr__, __dir__ = _lazy.lazy_exports(__name__, globals(), _EXPORTS, __all__, _SUBMODULES)
