"""Evaluators of trained networks (the library side of the experiments).

* ``classification`` : ``predict`` (one jitted forward pass per model, cached),
  ``classification_metrics`` (accuracy, per-class, minority/majority, the
  objective's NLL and the MI readings in nats), ``weighted_mean`` (the MI
  estimate under the training prior), ``minority_majority``.
* ``cam_methods`` : the WSOL method registry (CAM, infoCAM variants,
  Grad-CAM), the predict function giving logits and every method's map from
  one forward pass, the baselines' maps.
* ``wsol`` : the WSOL evaluator built from that predict function: one
  streaming pass of a split through the box metric of every protocol
  (``evaluate_split``), the protocols' GT boxes and threshold grids. The WSOL
  experiment's threshold selection, summaries, curves and figures are
  ``experiments/_wsol_results.py``.

Example::

  from infocam_jax.evaluators import classification
  logits, labels = classification.predict(model, variables, pipeline)
  m = classification.classification_metrics(logits, labels, objective="pc_softmax",
                                            prior=prior, class_counts_train=counts)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infocam_jax import _lazy

_SUBMODULES = ("cam_methods", "classification", "wsol")
__all__: list[str] = []

if TYPE_CHECKING:
  from infocam_jax.evaluators import cam_methods, classification, wsol
else:
  __getattr__, __dir__ = _lazy.lazy_exports(__name__, globals(), {}, __all__, _SUBMODULES,
                                            {"wsol": "wsol"})
