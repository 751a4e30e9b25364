"""Backbones for CAM work: torchvision-exact ResNet-18/34/50, VGG16-GAP, ADL, weight import.

* ``create_model(arch, num_classes, **options)`` -> Flax Linen module,
  ``apply(variables, images, train=False) -> (logits [B, K], features [B, h, w, C])``.
* ``head_weights(variables) -> (W [C, K], b [K])``; ``head_param_mask(arch, params)``.
* ``load_torchvision_weights(path, arch, num_classes=None, *, key=None, ...)`` -> Flax
  variables; ``to_torchvision_state_dict`` / ``save_torchvision_weights`` the inverse.
* ``MLP`` (``infocam_jax.models.mlp``): the synthetic-experiment network.
* ``LastLayerOnly(model, trainable=head_names(arch))``: a frozen backbone, only the head learns.
"""

from __future__ import annotations

from infocam_jax import _deps

_deps.require("models", "infocam_jax.models")

from infocam_jax.models.convert import (
    convert_torchvision_state_dict,
    load_torchvision_weights,
    read_state_dict,
    save_torchvision_weights,
    to_torchvision_state_dict,
    variable_shapes,
)
from infocam_jax.models.factory import (
    ARCHS,
    arch_family,
    create_model,
    head_param_mask,
    head_weights,
    valid_adl_positions,
)
from infocam_jax.models.frozen import LastLayerOnly, head_names
from infocam_jax.models.layers import ADL, BatchNorm
from infocam_jax.models.mlp import MLP
from infocam_jax.models.resnet import ResNet
from infocam_jax.models.vgg import VGGGAP

__all__ = [
    "ADL",
    "ARCHS",
    "BatchNorm",
    "LastLayerOnly",
    "MLP",
    "ResNet",
    "VGGGAP",
    "arch_family",
    "convert_torchvision_state_dict",
    "create_model",
    "head_names",
    "head_param_mask",
    "head_weights",
    "load_torchvision_weights",
    "read_state_dict",
    "save_torchvision_weights",
    "to_torchvision_state_dict",
    "valid_adl_positions",
    "variable_shapes",
]
