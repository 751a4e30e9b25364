r"""The WSOL map methods and the predict function the WSOL evaluator runs.

One forward pass per batch gives the logits and the feature map; every map
(CAM, the infoCAM variants, Grad-CAM) is formed from those same features.
Methods (``METHODS``; maps of the ground-truth class, as the official code and
wsolevaluation do):

* ``cam``: CAM, ``sum_c W[c, y] A_c`` (Zhou et al. 2016).
* ``infocam``: infoCAM, ``variant="mean"``, ``padding="full"`` (official
  ``--sub-oth-cams --conv-cams``: the paper's PMI difference).
* ``infocam_min``: ``variant="min"``, ``padding="full"`` (official
  ``--max-cam --conv-cams``: minus the lowest-scoring class).
* ``infocam_same`` / ``infocam_min_same``: the same with the aligned
  (``padding="same"``) region sum.
* ``cam_region`` / ``cam_region_same``: ``variant="none"``: CAM with the
  region sum only (official ``--conv-cams`` alone, the CUB ADL scripts); with
  ``cam`` they separate infoCAM's two ingredients (class contrast, region sum).
* ``grad_cam``: Grad-CAM through the GAP + dense head (``jax.grad``); for this
  head it equals ``ReLU(CAM) / HW``.

Baselines (``BASELINES``, maps that do not depend on the model): ``centre_box``
and ``full_image_box`` (``baseline_maps``).

Example::

  predict = cam_methods.make_predict_fn(model, ("cam", "infocam"), region_size=4)
  logits, maps = predict(variables, images, labels)   # [B, K] float32, {method: [B, h, w]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax import cam as cam_lib

__all__ = ["MethodSpec", "METHODS", "BASELINES", "make_predict_fn", "baseline_maps"]


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """How a method's map is formed from (logits, features, head): ``METHODS``' entries.

  ``kind``: "cam" | "infocam" | "grad_cam"; ``variant``/``padding``: the
  ``cam.infocam`` arguments of an infoCAM-kind method.

  >>> spec = METHODS["infocam_min"]
  >>> spec.kind, spec.variant, spec.padding, spec.title
  ('infocam', 'min', 'full', 'infoCAM-min')
  """
  kind: str  # "cam" | "infocam" | "grad_cam"
  title: str
  variant: str = ""
  padding: str = ""
  description: str = ""


METHODS: dict[str, MethodSpec] = {
    "cam": MethodSpec("cam", "CAM", description="CAM: sum_c W[c, y] A_c (ground-truth class)"),
    "infocam": MethodSpec("infocam", "infoCAM", "mean", "full",
                          "infoCAM: (W_y - mean_{k!=y} W_k) . A, region sum, full padding "
                          "(official --sub-oth-cams --conv-cams)"),
    "infocam_min": MethodSpec("infocam", "infoCAM-min", "min", "full",
                              "infoCAM: (W_y - W_{argmin logits}) . A, region sum, full padding "
                              "(official --max-cam --conv-cams)"),
    "infocam_same": MethodSpec("infocam", "infoCAM-same", "mean", "same",
                               "infoCAM mean variant, aligned ('same') region sum"),
    "infocam_min_same": MethodSpec("infocam", "infoCAM-min-same", "min", "same",
                                   "infoCAM min variant, aligned ('same') region sum"),
    "cam_region": MethodSpec("infocam", "CAM+region", "none", "full",
                             "CAM with the region sum only, full padding (official --conv-cams "
                             "without subtraction, the CUB ADL scripts): ablation of infoCAM"),
    "cam_region_same": MethodSpec("infocam", "CAM+region-same", "none", "same",
                                  "CAM with the aligned ('same') region sum only: ablation of "
                                  "infocam_same"),
    "grad_cam": MethodSpec("grad_cam", "Grad-CAM",
                           description="Grad-CAM via jax.grad through the GAP + dense head "
                           "(= ReLU(CAM)/HW for this head)"),
}

BASELINES: dict[str, str] = {
    "centre_box": "a centred box with the image's aspect ratio; its size is the map threshold "
                  "(chosen on the validation split like every method's threshold)",
    "full_image_box": "the whole image as the predicted box",
}


def make_predict_fn(model: Any, methods: Sequence[str], region_size: int,
                    image_size: int | None = None) -> Callable:
  """Jitted ``(variables, images, labels) -> (logits [B, K], {method: maps})``.

  One forward pass; every method's map is formed from the same features.
  With ``image_size`` the raw maps are resized to it (float32 bicubic, cv2
  geometry: the clean and paper protocols' resize); otherwise
  they keep their native resolution and every protocol resizes them its own
  way (wsolevaluation: cv2's float64 resize, reproduced exactly): the
  predict function of ``evaluators.wsol.evaluate_split``. ``model.apply(v, x,
  train=False)`` must return ``(logits [B, K], features [B, h, w, C])`` with the
  GAP + dense head ``fc`` (``models.head_weights``), as every backbone here does.

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # features = the image; logits = GAP(features) @ W + b
  ...   @nn.compact
  ...   def __call__(self, x, train=False):
  ...     return nn.Dense(3, name="fc")(x.mean(axis=(1, 2))), x
  >>> model = Net()
  >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 4)))
  >>> predict = make_predict_fn(model, ("cam", "infocam"), region_size=3)
  >>> logits, maps = predict(variables, jnp.ones((2, 8, 8, 4)), jnp.array([0, 2]))
  >>> logits.shape, logits.dtype, maps["cam"].shape
  ((2, 3), dtype('float32'), (2, 8, 8))
  >>> maps["infocam"].shape  # the official "full" region sum grows a map by region_size - 1
  (2, 10, 10)
  """
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  methods = tuple(methods)
  for m in methods:
    if m not in METHODS:
      raise ValueError(f"unknown method {m!r}; known: {list(METHODS)}")

  def forward(variables, images, labels):
    logits, features = model.apply(variables, images, train=False)
    weights, bias = models.head_weights(variables)
    maps = {}
    for name in methods:
      spec = METHODS[name]
      if spec.kind == "cam":
        m = cam_lib.class_activation_map(features, weights, labels)
      elif spec.kind == "infocam":
        m = cam_lib.infocam(features, weights, labels, logits=logits, variant=spec.variant,
                            region_size=region_size, padding=spec.padding)
      else:
        m = cam_lib.grad_cam_from_head(cam_lib.gap_dense_head(weights, bias), features, labels)
      if image_size is not None and m.shape[-2:] != (image_size, image_size):
        m = cam_lib.upsample_maps(m, image_size, "bicubic")
      maps[name] = m
    return logits.astype(jnp.float32), maps

  return jax.jit(forward)


def baseline_maps(image_size: int | Sequence[int]) -> dict[str, np.ndarray]:
  """float32 ``[H, W]`` maps whose thresholded boxes are the baselines' boxes.

  ``centre_box``: ``1 - max(|i - c_y| / (c_y + 1), |j - c_x| / (c_x + 1))``: the
  foreground ``map > t`` (after min-max) is a centred box with the image's
  aspect ratio whose side shrinks as ``t`` grows, so a threshold sweep is a
  sweep over centred-box sizes. ``full_image_box``: ones with one zero corner
  pixel, so every threshold in [0, 1) selects the whole image as one
  component (a constant map would be zeroed by the normalisation).

  >>> maps = baseline_maps(5)
  >>> print(np.round(maps["centre_box"], 2))
  [[0.33 0.33 0.33 0.33 0.33]
   [0.33 0.67 0.67 0.67 0.33]
   [0.33 0.67 1.   0.67 0.33]
   [0.33 0.67 0.67 0.67 0.33]
   [0.33 0.33 0.33 0.33 0.33]]
  >>> int(maps["full_image_box"].sum())  # ones but one corner pixel
  24
  """
  if isinstance(image_size, int) or np.ndim(image_size) == 0:
    h = w = int(image_size)  # type: ignore[arg-type]
  else:
    h, w = map(int, image_size)  # type: ignore[arg-type]
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  dist = np.maximum(np.abs(yy - cy) / (cy + 1.0), np.abs(xx - cx) / (cx + 1.0))
  full = np.ones((h, w), np.float32)
  full[0, 0] = 0.0
  return {"centre_box": (1.0 - dist).astype(np.float32), "full_image_box": full}


# ----------------------------------------------------------------------------
# Streaming evaluation of one split.
# ----------------------------------------------------------------------------
