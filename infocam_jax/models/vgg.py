"""VGG16-GAP as in the official infoCAM code (NHWC, Flax Linen).

* VGG16 (torchvision cfg "D") conv layers ``conv1_1`` ... ``conv5_3``: 3x3, padding 1,
  bias, each followed by ReLU; 2x2/2 max-pools after blocks 1-4; the fifth (last)
  max-pool is removed, so the map is 14x14x512 at 224 input (4x4 at 64).
* ``conv6``: a new 3x3 conv (padding 1) to 1024 channels + ReLU; ``features`` = its output
  (after ADL at position '6', if any).
* Global average pooling and a dense head ``fc`` (1024 -> K), in float32.
* Init: every conv kaiming-normal(fan_out, relu) with bias 0 (torchvision's VGG init and
  the official conv6 init); ``fc`` normal(0, 0.01), bias 0.
* ADL positions: "XY" = after convX_Y (after its ReLU), "XM" = after the max-pool of
  block X (X = 1..4), "6" = after conv6 (after its ReLU). Official: "3M 4M 53".

torchvision's ``features.N`` indices of the convs (N = 0, 2, 5, ..., 28) are mapped to
these names by ``infocam_jax.models.convert``; this module has no BatchNorm (no
``batch_stats`` collection).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from infocam_jax.models import layers
from infocam_jax.models.resnet import classifier_head

Dtype = Any

# Initialisers shared with the weight converter (fresh conv6 / fc).
CONV_KERNEL_INIT = layers.kaiming_normal_fan_out
CONV_BIAS_INIT = nn.initializers.zeros
FC_KERNEL_INIT = nn.initializers.normal(stddev=0.01)
FC_BIAS_INIT = nn.initializers.zeros

VGG16_BLOCKS = (2, 2, 3, 3, 3)  # convs per block, torchvision cfg "D"
VGG16_WIDTHS = (64, 128, 256, 512, 512)


def vgg_adl_positions(blocks: tuple[int, ...] = VGG16_BLOCKS) -> tuple[str, ...]:
  """Valid ADL positions in network order: '11', '12', '1M', '21', ..., '53', '6'."""
  out = []
  for b, n in enumerate(blocks):
    out += [f"{b + 1}{c + 1}" for c in range(n)]
    if b < len(blocks) - 1:
      out.append(f"{b + 1}M")
  out.append("6")
  return tuple(out)


class VGGGAP(nn.Module):
  """VGG16-GAP (see the module docstring).

  Attributes:
    num_classes: K.
    blocks: convs per block (VGG16: (2, 2, 3, 3, 3)).
    widths: channels per block (VGG16: (64, 128, 256, 512, 512)).
    conv6_width: channels of the extra conv (1024).
    adl_positions: canonical tuple of ADL positions (see ``vgg_adl_positions``).
    adl_threshold: ADL drop threshold (official VGG: 0.8).
    adl_drop_rate: ADL drop rate (official VGG: 0.75).
    dtype: compute dtype; parameters are float32.

  Build it with :func:`infocam_jax.models.create_model`:

  >>> from infocam_jax.models import create_model
  >>> model = create_model("vgg16_gap", 200)
  >>> x = jnp.zeros((1, 224, 224, 3))
  >>> logits, features = jax.eval_shape(  # shapes only: nothing is computed
  ...     lambda x: model.init_with_output(jax.random.key(0), x)[0], x)
  >>> type(model).__name__, logits.shape, features.shape
  ('VGGGAP', (1, 200), (1, 14, 14, 1024))
  """

  num_classes: int
  blocks: tuple[int, ...] = VGG16_BLOCKS
  widths: tuple[int, ...] = VGG16_WIDTHS
  conv6_width: int = 1024
  adl_positions: tuple[str, ...] = ()
  adl_threshold: float = 0.8
  adl_drop_rate: float = 0.75
  dtype: Dtype = jnp.float32

  def __post_init__(self):
    if len(self.blocks) != len(self.widths) or not self.blocks:
      raise ValueError(
          f"`blocks` and `widths` must have the same non-zero length, got {self.blocks} "
          f"and {self.widths}.")
    layers.check_head_and_adl(self.num_classes, self.adl_positions, vgg_adl_positions(self.blocks),
                              self.adl_threshold, self.adl_drop_rate)
    super().__post_init__()

  def _conv(self, features: int, name: str):
    return nn.Conv(
        features, (3, 3), strides=(1, 1), padding=layers.torch_padding(1), use_bias=True,
        dtype=self.dtype, param_dtype=jnp.float32,
        kernel_init=CONV_KERNEL_INIT, bias_init=CONV_BIAS_INIT, name=name)

  def _adl(self, x: jax.Array, position: str, train: bool) -> jax.Array:
    if position in self.adl_positions:
      x = layers.ADL(self.adl_threshold, self.adl_drop_rate, name=f"adl_{position}")(x, train)
    return x

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    layers.check_images(images)
    x = images.astype(self.dtype)
    for b, (n, width) in enumerate(zip(self.blocks, self.widths)):
      for c in range(n):
        x = nn.relu(self._conv(width, f"conv{b + 1}_{c + 1}")(x))
        x = self._adl(x, f"{b + 1}{c + 1}", train)
      if b < len(self.blocks) - 1:  # the last max-pool is removed
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        x = self._adl(x, f"{b + 1}M", train)
    x = nn.relu(self._conv(self.conv6_width, "conv6")(x))
    x = self._adl(x, "6", train)
    features = x.astype(jnp.float32)
    if not self.is_initializing():
      # Hook for gradients w.r.t. the feature map (Grad-CAM, `cam.grad_cam`): a
      # no-op unless a 'perturbations' collection is passed to `apply`.
      features = self.perturb("features", features)
    logits = classifier_head(
        features, self.num_classes,
        kernel_init=FC_KERNEL_INIT, bias_init=FC_BIAS_INIT)
    return logits, features
