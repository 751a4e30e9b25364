"""infocam-jax: softmax as a mutual-information estimator, PC-softmax and infoCAM.

A JAX/Flax reimplementation of Qin, Kim & Gedeon, "Rethinking Softmax with
Cross-Entropy: Neural Network Classifier as Mutual Information Estimator"
(arXiv 1911.10688). All information quantities are in nats.

The public names below are imported lazily (on first attribute access) so that
``import infocam_jax`` stays cheap and never pulls in tensorflow-datasets.
``pip install infocam-jax`` installs the core (jax, numpy, chex): the
estimators, ``GaussianMixture`` and the CAM / infoCAM maps. The box API
(``boxes_from_maps``, ``max_box_accuracy``, ...) needs the extra ``[wsol]``,
``models`` ``[models]``, ``data`` ``[data]``, ``train`` ``[train]``, ``plotting``
``[plot]``; without it, using them raises an ``ImportError`` naming the
``pip install`` to run.
Sub-packages and modules, also imported on first access (``ij.models``):
``models``, ``data``, ``train``, ``evaluators``, ``estimators``, ``gaussian``,
``cam``, ``wsol`` (boxes, box metrics, the wsolevaluation command line), ``plotting``, ``io``.
"""

from __future__ import annotations

from infocam_jax import _lazy

# typing.TYPE_CHECKING without importing typing (~10 ms): type checkers read the name as True.
TYPE_CHECKING = False

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

# The box subsystem's modules (extra [wsol]); one table so that moving them is a
# one-line change here (the TYPE_CHECKING imports below are checked against it
# by tests/test_package.py).
_BOX_MODULES: dict[str, str] = {
    "boxes": "wsol.boxes",
    "localization": "wsol.box_accuracy",
}

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # Mutual-information estimators (nats).
    "pc_log_softmax": "estimators",
    "pc_softmax": "estimators",
    "pc_softmax_cross_entropy": "estimators",
    "pc_softmax_cross_entropy_with_integer_labels": "estimators",
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
    # Boxes and localisation metrics (extra [wsol]).
    "boxes_from_maps": _BOX_MODULES["boxes"],
    "box_iou": _BOX_MODULES["boxes"],
    "iou_levels": _BOX_MODULES["boxes"],
    "Boxes": _BOX_MODULES["boxes"],
    "MultiBoxes": _BOX_MODULES["boxes"],
    "xywh_to_xyxy": _BOX_MODULES["boxes"],
    "resize_crop_boxes": _BOX_MODULES["boxes"],
    "legacy_resize_crop_boxes": _BOX_MODULES["boxes"],
    "tiny_imagenet_legacy_boxes": _BOX_MODULES["boxes"],
    "max_box_accuracy": _BOX_MODULES["localization"],
    "BoxAccuracy": _BOX_MODULES["localization"],
    "BoxAccuracyState": _BOX_MODULES["localization"],
    "BoxAccuracyResult": _BOX_MODULES["localization"],
    "PROTOCOLS": _BOX_MODULES["localization"],
}

__all__ = sorted(_EXPORTS) + ["__version__"]


_SUBMODULES = ("models", "data", "train", "evaluators", "estimators", "gaussian", "cam", "wsol",
               "plotting", "io")

# module or sub-package -> the extra it needs (the core needs none).
_EXTRAS: dict[str, str] = {
    _BOX_MODULES["boxes"]: "wsol",
    _BOX_MODULES["localization"]: "wsol",
    "wsol": "wsol",
    "models": "models",
    "data": "data",
    "train": "train",
    "plotting": "plot",
}

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error
  __getattr__, __dir__ = _lazy.lazy_exports(__name__, globals(), _EXPORTS, __all__, _SUBMODULES,
                                            _EXTRAS)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily
  from infocam_jax import (cam, data, estimators, evaluators, gaussian, io, models, plotting, train,
                           wsol)
  from infocam_jax.wsol.boxes import (Boxes, MultiBoxes, box_iou, boxes_from_maps, iou_levels,
                                 legacy_resize_crop_boxes, resize_crop_boxes,
                                 tiny_imagenet_legacy_boxes, xywh_to_xyxy)
  from infocam_jax.cam import (class_activation_map, gap_dense_head, grad_cam, grad_cam_from_head,
                               infocam, normalize_maps, region_sum, upsample_maps)
  from infocam_jax.estimators import (MIEstimate, checked, mean_with_stderr, mutual_information,
                                      pc_log_softmax, pc_softmax, pc_softmax_cross_entropy,
                                      pc_softmax_cross_entropy_with_integer_labels, pmi,
                                      prior_from_counts)
  from infocam_jax.gaussian import GaussianMixture
  from infocam_jax.wsol.box_accuracy import (PROTOCOLS, BoxAccuracy, BoxAccuracyResult,
                                             BoxAccuracyState, max_box_accuracy)
