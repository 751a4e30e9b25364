"""Evaluators of trained networks (the library side of the experiments).

* ``classification`` : ``predict`` (one jitted forward pass per model, cached),
  ``classification_metrics`` (accuracy, per-class, minority/majority, the
  objective's NLL and the MI readings in nats), ``weighted_mean`` (the MI
  estimate under the training prior), ``minority_majority``.
* ``wsol`` : the WSOL method registry (CAM, infoCAM variants, Grad-CAM),
  baselines, the streaming evaluation of a split under every protocol,
  thresholds chosen on validation, results/curves/figures.

Example::

  from infocam_jax.evaluators import classification
  logits, labels = classification.predict(model, variables, pipeline)
  m = classification.classification_metrics(logits, labels, objective="pc_softmax",
                                            prior=prior, class_counts_train=counts)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infocam_jax import _lazy

_SUBMODULES = ("classification", "wsol")
__all__: list[str] = []

if TYPE_CHECKING:
  from infocam_jax.evaluators import classification, wsol
else:
  __getattr__, __dir__ = _lazy.lazy_exports(__name__, globals(), {}, __all__, _SUBMODULES,
                                            {"wsol": "wsol"})
