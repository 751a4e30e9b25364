"""``create_model``, ``head_weights`` and ``head_param_mask``: the models' public entry points."""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from infocam_jax.models import layers
from infocam_jax.models.lenet import LeNet
from infocam_jax.models.resnet import ResNet, resnet_adl_positions
from infocam_jax.models.vgg import VGG16_BLOCKS, VGG16_WIDTHS, VGGGAP, vgg_adl_positions

# arch -> (family, fixed constructor arguments)
_ARCHS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet18": ("resnet", dict(block="basic", stage_sizes=(2, 2, 2, 2))),
    "resnet34": ("resnet", dict(block="basic", stage_sizes=(3, 4, 6, 3))),
    "resnet50": ("resnet", dict(block="bottleneck", stage_sizes=(3, 4, 6, 3))),
    # Tests and quick experiments: BasicBlock, one block per stage, widths 8/16/32/64,
    # a 3x3/1 stem without max-pool (total stride 8, or 4 with layer4_stride=1).
    "resnet_tiny": ("resnet", dict(block="basic", stage_sizes=(1, 1, 1, 1),
                                   widths=(8, 16, 32, 64), stem_width=8, stem="small")),
    "vgg16_gap": ("vgg", dict(blocks=VGG16_BLOCKS, widths=VGG16_WIDTHS, conv6_width=1024)),
    # VGG-GAP with the VGG16 layout but 1/8 of the channels (tests).
    "vgg_tiny": ("vgg", dict(blocks=VGG16_BLOCKS, widths=(8, 16, 32, 64, 64), conv6_width=128)),
    # The PyTorch MNIST example net of the paper's PC-softmax MNIST run (models.lenet):
    # no GAP head (no CAM), no BatchNorm, no ADL.
    "lenet": ("lenet", {}),
}

ARCHS: tuple[str, ...] = tuple(_ARCHS)

# Official infoCAM ADL hyper-parameters per family (the run scripts): threshold, drop rate.
_ADL_DEFAULTS = {"resnet": (0.90, 0.75), "vgg": (0.80, 0.75)}

# Parameters trained with the 10x learning rate in the official code (train.py).
_HEAD_MODULES = {"resnet": ("layer4", "fc"), "vgg": ("conv6", "fc"), "lenet": ("fc2",)}


def arch_family(arch: str) -> str:
  """'resnet', 'vgg' or 'lenet'; ValueError for an unknown arch.

  >>> [arch_family(a) for a in ("resnet50", "vgg16_gap", "lenet")]
  ['resnet', 'vgg', 'lenet']
  >>> "resnet_tiny" in ARCHS
  True
  """
  if arch not in _ARCHS:
    raise ValueError(f"`arch` must be one of {', '.join(ARCHS)}, got {arch!r}.")
  return _ARCHS[arch][0]


def valid_adl_positions(arch: str) -> tuple[str, ...]:
  """The ADL position strings ``arch`` accepts, in network order.

  >>> valid_adl_positions("resnet18")  # after block Y of layerX
  ('10', '11', '20', '21', '30', '31', '40', '41')
  """
  family, cfg = arch_family(arch), _ARCHS[arch][1]
  if family == "lenet":
    return ()
  if family == "resnet":
    return resnet_adl_positions(cfg["stage_sizes"])
  return vgg_adl_positions(cfg["blocks"])


def create_model(
    arch: str,
    num_classes: int,
    *,
    dtype: Any = jnp.float32,
    layer4_stride: int | None = None,
    adl_positions: str | tuple[str, ...] | list[str] | None = None,
    adl_threshold: float | None = None,
    adl_drop_rate: float | None = None,
    bn_axis_name: str | None = None,
) -> nn.Module:
  """Builds a backbone + GAP + linear head as a Flax Linen module.

  Args:
    arch: "resnet18", "resnet34", "resnet50", "resnet_tiny", "vgg16_gap" or "vgg_tiny".
    num_classes: K, the number of classes of the head.
    dtype: compute dtype (e.g. ``jnp.bfloat16`` on GPU/TPU). Parameters are always
      float32; BatchNorm statistics, the pooling + head, the returned logits and
      features are float32.
    layer4_stride: ResNet only. 2 (default; torchvision, 7x7 features at 224 input) or
      1 (the official infoCAM ResNet-50, 14x14 at 224). Passing it for VGG is an error.
    adl_positions: ADL layers, e.g. "30 40 42" (ResNet: after block Y of layerX) or
      "3M 4M 53" (VGG: after pool3, pool4, conv5_3; also "XY" after convX_Y and "6" after
      conv6). A string (space/comma separated) or a sequence of strings; None = no ADL.
    adl_threshold: ADL drop threshold (default: official 0.90 ResNet, 0.80 VGG).
    adl_drop_rate: probability of applying the drop mask (default 0.75).
    bn_axis_name: mapped axis name (pmap) over which BatchNorm batch statistics are
      averaged. Accepted and ignored for VGG (no BatchNorm).

  Returns:
    A module with ``init(key, images, train=False) -> {'params', 'batch_stats'}`` (VGG has
    ``params`` only) and ``apply(variables, images, train=False) -> (logits [B, K],
    features [B, h, w, C])``. Training: ``apply(variables, images, train=True,
    rngs={'adl': key}, mutable=['batch_stats'])`` (the 'adl' key is needed only with ADL).
    Images are NHWC floats, already normalised.

  Example (shapes only, with ``jax.eval_shape``: nothing is computed)::

    >>> model = create_model("resnet_tiny", num_classes=3)  # a tiny ResNet for tests
    >>> images = jnp.zeros((2, 32, 32, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), images)
    >>> sorted(variables)
    ['batch_stats', 'params']
    >>> logits, features = jax.eval_shape(model.apply, variables, images)
    >>> logits.shape, features.shape  # [B, K], [B, h, w, C] (total stride 8)
    ((2, 3), (2, 4, 4, 64))
  """
  family = arch_family(arch)
  fixed = dict(_ARCHS[arch][1])
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}.")
  try:
    dtype = jnp.dtype(dtype)
  except TypeError:
    raise ValueError(f"`dtype` must be a floating dtype, got {dtype!r}.") from None
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"`dtype` must be a floating dtype, got {dtype}.")
  if family == "lenet":
    if layer4_stride is not None or adl_positions:
      raise ValueError(f"`layer4_stride` and `adl_positions` do not apply to {arch!r}.")
    return LeNet(num_classes=num_classes, dtype=dtype)
  positions = layers.parse_adl_positions(adl_positions, valid_adl_positions(arch), arch)
  thr_default, rate_default = _ADL_DEFAULTS[family]
  thr = thr_default if adl_threshold is None else adl_threshold
  rate = rate_default if adl_drop_rate is None else adl_drop_rate
  layers.check_adl_hyperparameters(thr, rate)
  if bn_axis_name is not None and not isinstance(bn_axis_name, str):
    raise ValueError(f"`bn_axis_name` must be a string or None, got {bn_axis_name!r}.")

  if family == "resnet":
    stride = 2 if layer4_stride is None else layer4_stride
    if stride not in (1, 2) or isinstance(stride, bool):
      raise ValueError(f"`layer4_stride` must be 1 or 2, got {layer4_stride!r}.")
    return ResNet(num_classes=num_classes, layer4_stride=stride, adl_positions=positions,
                  adl_threshold=float(thr), adl_drop_rate=float(rate), dtype=dtype,
                  bn_axis_name=bn_axis_name, **fixed)
  if layer4_stride is not None:
    raise ValueError(f"`layer4_stride` applies to ResNet archs only, not {arch!r}.")
  return VGGGAP(num_classes=num_classes, adl_positions=positions, adl_threshold=float(thr),
                adl_drop_rate=float(rate), dtype=dtype, **fixed)


def _params_of(variables: Mapping[str, Any], fn: str) -> Mapping[str, Any]:
  if not isinstance(variables, Mapping):
    raise ValueError(f"`{fn}` expects a variables dict ({{'params': ...}}), got "
                     f"{type(variables).__name__}.")
  return variables["params"] if "params" in variables else variables


def head_weights(variables: Mapping[str, Any]) -> tuple[jax.Array, jax.Array]:
  """The linear head: (W [C, K], b [K]), with ``logits = mean_{h,w}(features) @ W + b``.

  Accepts the full variables dict ({'params': ..., 'batch_stats': ...}) or the params.

  >>> from infocam_jax.models import variable_shapes
  >>> shapes = variable_shapes("resnet_tiny", 3)  # or real variables from model.init
  >>> w, b = head_weights(shapes)
  >>> w.shape, b.shape  # [C, K], [K]
  ((64, 3), (3,))
  """
  params = _params_of(variables, "head_weights")
  fc = params.get("fc") if isinstance(params, Mapping) else None
  if fc is None or "kernel" not in fc or "bias" not in fc:
    keys = sorted(params) if isinstance(params, Mapping) else type(params).__name__
    raise ValueError(
        f"`variables` has no head: expected params['fc'] with 'kernel' and 'bias', got "
        f"top-level params {keys}.")
  return fc["kernel"], fc["bias"]


def head_param_mask(arch: str, params: Mapping[str, Any]) -> Any:
  """Pytree of bools like ``params``: True for the parameters trained with the 10x LR.

  As in the official train.py: ResNet ``layer4.*`` and ``fc.*``; VGG-GAP ``conv6`` and
  ``fc`` (everything outside the VGG16 ``features``). Pass ``variables['params']``.

  >>> from infocam_jax.models import variable_shapes
  >>> mask = head_param_mask("resnet_tiny", variable_shapes("resnet_tiny", 3)["params"])
  >>> mask["fc"]["kernel"], mask["layer4"]["0"]["conv1"]["kernel"], mask["conv1"]["kernel"]
  (True, True, False)
  """
  family = arch_family(arch)
  if not isinstance(params, Mapping):
    raise ValueError(f"`params` must be a dict of parameters, got {type(params).__name__}.")
  if "params" in params:
    raise ValueError("`params` looks like a variables dict; pass variables['params'].")
  heads = _HEAD_MODULES[family]
  missing = [h for h in heads if h not in params]
  if missing:
    raise ValueError(
        f"`params` does not look like {arch!r} parameters: missing top-level "
        f"{missing}, got {sorted(params)}.")
  return {k: jax.tree_util.tree_map(lambda _, v=(k in heads): v, sub)
          for k, sub in params.items()}
