"""ResNet-18/34/50 with torchvision's exact semantics (NHWC, Flax Linen).

Conventions (all chosen so that converted torchvision weights give the same outputs):

* Stem: 7x7 conv stride 2 with explicit padding 3 (no bias), BatchNorm, ReLU, 3x3 max-pool
  stride 2 with padding 1 (padded with -inf). Every conv uses PyTorch's explicit symmetric
  padding ``p`` -> Flax ``((p, p), (p, p))``, never "SAME" (which pads asymmetrically
  for stride 2 and would shift the outputs by one pixel).
* Bottleneck ("v1.5", torchvision): the stride sits on the 3x3 conv (conv2), not the 1x1.
* Downsample (1x1 conv with the block's stride, no bias, + BatchNorm) in the first block
  of a stage whenever the stride is not 1 or the channel count changes. With
  ``layer4_stride=1`` (official infoCAM) layer4's downsample is a 1x1 stride-1 conv, so the
  parameter shapes do not change.
* BatchNorm: PyTorch semantics (eps 1e-5, momentum 0.1, unbiased running variance), see
  ``layers.BatchNorm``. ``use_running_average = not train``.
* Init as torchvision: convs kaiming-normal(fan_out, relu); BN scale 1, bias 0
  (zero_init_residual=False); fc PyTorch's default Linear init
  (uniform +-1/sqrt(fan_in) for weight and bias).
* Names follow torchvision's state-dict keys: ``conv1``, ``bn1``, ``layer1``..``layer4``
  with blocks ``'0'``, ``'1'``, ... holding ``conv1``/``bn1``/...,
  ``downsample`` with ``'0'`` (conv) and ``'1'`` (BN), and ``fc``. A Flax path joined by
  dots is the torchvision key prefix.

``__call__(images, train=False) -> (logits [B, K] float32, features [B, h, w, C] float32)``;
features are the last stage's output (after its final ReLU and any ADL there), i.e. the
pre-pooling map CAM consumes; ``logits = mean_{h,w}(features) @ fc.kernel + fc.bias``,
computed in float32 whatever the compute dtype.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from infocam_jax.models import layers

Dtype = Any

_BLOCKS = ("basic", "bottleneck")
_STEMS = ("imagenet", "small")


def _conv(features: int, kernel: int, stride: int, padding: int, dtype: Dtype, name: str):
  return layers.Conv2d(features, kernel, stride, padding, dtype=dtype, param_dtype=jnp.float32,
                       kernel_init=layers.kaiming_normal_fan_out, name=name)


def _bn(train: bool, dtype: Dtype, axis_name: str | None, name: str):
  return layers.BatchNorm(
      use_running_average=not train, momentum=0.1, epsilon=1e-5, dtype=dtype,
      axis_name=axis_name, name=name)


class Downsample(nn.Module):
  """torchvision's ``downsample = Sequential(conv1x1(stride), BatchNorm2d)``; children '0', '1'."""

  features: int
  stride: int
  dtype: Dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = _conv(self.features, 1, self.stride, 0, self.dtype, "0")(x)
    return _bn(train, self.dtype, self.bn_axis_name, "1")(x)


class BasicBlock(nn.Module):
  """Two 3x3 convs (stride on the first); expansion 1."""

  width: int
  stride: int = 1
  dtype: Dtype = jnp.float32
  bn_axis_name: str | None = None
  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    out_ch = self.width * self.expansion
    identity = x
    y = _conv(self.width, 3, self.stride, 1, self.dtype, "conv1")(x)
    y = nn.relu(_bn(train, self.dtype, self.bn_axis_name, "bn1")(y))
    y = _conv(self.width, 3, 1, 1, self.dtype, "conv2")(y)
    y = _bn(train, self.dtype, self.bn_axis_name, "bn2")(y)
    if self.stride != 1 or x.shape[-1] != out_ch:
      identity = Downsample(out_ch, self.stride, self.dtype, self.bn_axis_name,
                            name="downsample")(x, train)
    return nn.relu(y + identity)


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (stride here, torchvision v1.5) -> 1x1 (x4 channels)."""

  width: int
  stride: int = 1
  dtype: Dtype = jnp.float32
  bn_axis_name: str | None = None
  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    out_ch = self.width * self.expansion
    identity = x
    y = _conv(self.width, 1, 1, 0, self.dtype, "conv1")(x)
    y = nn.relu(_bn(train, self.dtype, self.bn_axis_name, "bn1")(y))
    y = _conv(self.width, 3, self.stride, 1, self.dtype, "conv2")(y)
    y = nn.relu(_bn(train, self.dtype, self.bn_axis_name, "bn2")(y))
    y = _conv(out_ch, 1, 1, 0, self.dtype, "conv3")(y)
    y = _bn(train, self.dtype, self.bn_axis_name, "bn3")(y)
    if self.stride != 1 or x.shape[-1] != out_ch:
      identity = Downsample(out_ch, self.stride, self.dtype, self.bn_axis_name,
                            name="downsample")(x, train)
    return nn.relu(y + identity)


class ResNetStage(nn.Module):
  """torchvision's ``layerX``: blocks named '0', '1', ...; ADL after the listed blocks."""

  block: str
  width: int
  num_blocks: int
  stride: int
  adl_after: tuple[int, ...] = ()
  adl_threshold: float = 0.9
  adl_drop_rate: float = 0.75
  dtype: Dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    block_cls = BasicBlock if self.block == "basic" else Bottleneck
    for i in range(self.num_blocks):
      x = block_cls(self.width, self.stride if i == 0 else 1, self.dtype, self.bn_axis_name,
                    name=str(i))(x, train)
      if i in self.adl_after:
        x = layers.ADL(self.adl_threshold, self.adl_drop_rate, name=f"adl_{i}")(x, train)
    return x


def resnet_adl_positions(stage_sizes: Sequence[int]) -> tuple[str, ...]:
  """Valid ADL positions "XY" = after block Y of layerX (X = 1..4)."""
  return tuple(f"{s + 1}{b}" for s, n in enumerate(stage_sizes) for b in range(n))


class ResNet(nn.Module):
  """torchvision ResNet (see the module docstring for the conventions).

  Attributes:
    num_classes: K, the head's output size.
    block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50).
    stage_sizes: blocks per stage, e.g. (3, 4, 6, 3).
    widths: base widths of the four stages (64, 128, 256, 512 in torchvision).
    stem_width: channels of the stem conv (64).
    stem: "imagenet" (7x7/2 conv pad 3 + BN + ReLU + 3x3/2 max-pool pad 1) or "small"
      (3x3/1 conv pad 1 + BN + ReLU, no pool; for tiny test models on small images).
    layer4_stride: 2 (torchvision, 7x7 features at 224) or 1 (official infoCAM,
      14x14 at 224).
    adl_positions: ADL positions "XY" (after block Y of layerX), canonical tuple.
    adl_threshold: ADL drop threshold (official ResNet: 0.9).
    adl_drop_rate: ADL drop rate (official ResNet: 0.75).
    dtype: compute dtype (e.g. jnp.bfloat16); parameters are float32.
    bn_axis_name: mapped axis over which BatchNorm batch statistics are averaged.

  Build it with :func:`infocam_jax.models.create_model` (the torchvision layouts by name):

  >>> from infocam_jax.models import create_model
  >>> model = create_model("resnet50", 200, layer4_stride=1)  # the official infoCAM ResNet-50
  >>> type(model).__name__, model.block, model.stage_sizes, model.layer4_stride
  ('ResNet', 'bottleneck', (3, 4, 6, 3), 1)
  >>> x = jnp.zeros((1, 224, 224, 3))
  >>> logits, features = jax.eval_shape(  # shapes only: nothing is computed
  ...     lambda x: model.init_with_output(jax.random.key(0), x)[0], x)
  >>> logits.shape, features.shape  # 14x14 features at 224 with layer4_stride=1
  ((1, 200), (1, 14, 14, 2048))
  """

  num_classes: int
  block: str = "bottleneck"
  stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
  widths: tuple[int, ...] = (64, 128, 256, 512)
  stem_width: int = 64
  stem: str = "imagenet"
  layer4_stride: int = 2
  adl_positions: tuple[str, ...] = ()
  adl_threshold: float = 0.9
  adl_drop_rate: float = 0.75
  dtype: Dtype = jnp.float32
  bn_axis_name: str | None = None

  def __post_init__(self):
    if self.block not in _BLOCKS:
      raise ValueError(f"`block` must be one of {_BLOCKS}, got {self.block!r}.")
    if self.stem not in _STEMS:
      raise ValueError(f"`stem` must be one of {_STEMS}, got {self.stem!r}.")
    if len(self.stage_sizes) != 4 or len(self.widths) != 4:
      raise ValueError(
          f"`stage_sizes` and `widths` must have 4 entries, got {self.stage_sizes} and "
          f"{self.widths}.")
    if self.layer4_stride not in (1, 2):
      raise ValueError(f"`layer4_stride` must be 1 or 2, got {self.layer4_stride!r}.")
    layers.check_head_and_adl(self.num_classes, self.adl_positions, resnet_adl_positions(self.stage_sizes),
                              self.adl_threshold, self.adl_drop_rate)
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    layers.check_images(images)
    x = images.astype(self.dtype)
    if self.stem == "imagenet":
      x = _conv(self.stem_width, 7, 2, 3, self.dtype, "conv1")(x)
      x = nn.relu(_bn(train, self.dtype, self.bn_axis_name, "bn1")(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=layers.torch_padding(1))
    else:
      x = _conv(self.stem_width, 3, 1, 1, self.dtype, "conv1")(x)
      x = nn.relu(_bn(train, self.dtype, self.bn_axis_name, "bn1")(x))
    strides = (1, 2, 2, self.layer4_stride)
    for s in range(4):
      adl_after = tuple(int(p[1:]) for p in self.adl_positions if p[0] == str(s + 1))
      x = ResNetStage(
          self.block, self.widths[s], self.stage_sizes[s], strides[s], adl_after,
          self.adl_threshold, self.adl_drop_rate, self.dtype, self.bn_axis_name,
          name=f"layer{s + 1}")(x, train)
    features = x.astype(jnp.float32)
    if not self.is_initializing():
      # Hook for gradients w.r.t. the feature map (Grad-CAM, `cam.grad_cam`): a
      # no-op unless a 'perturbations' collection is passed to `apply`.
      features = self.perturb("features", features)
    logits = classifier_head(features, self.num_classes)
    return logits, features


def classifier_head(features: jax.Array, num_classes: int, kernel_init=None,
                    bias_init=None) -> jax.Array:
  """Global average pooling + Linear ``fc``, in float32 (HIGHEST precision) whatever the
  compute dtype, so ``logits = mean_{h,w}(features) @ W + b`` holds to float32 rounding.

  Default init is PyTorch's nn.Linear default (uniform +-1/sqrt(fan_in) for weight and
  bias). Must be called inside a compact ``__call__`` (it creates the ``fc`` submodule
  of the calling module).
  """
  pooled = jnp.mean(features.astype(jnp.float32), axis=(1, 2))
  fan_in = features.shape[-1]
  return nn.Dense(
      num_classes, dtype=jnp.float32, param_dtype=jnp.float32,
      precision=jax.lax.Precision.HIGHEST,  # full f32 on GPU/TPU too; the head is tiny
      kernel_init=kernel_init or layers.torch_linear_kernel_init,
      bias_init=bias_init or layers.torch_linear_bias_init(fan_in), name="fc")(pooled)
