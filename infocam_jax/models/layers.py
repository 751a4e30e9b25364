"""Building blocks shared by the backbones: PyTorch-semantics BatchNorm, ADL, initialisers.

Layout is NHWC throughout. Parameters are float32 (``param_dtype``); ``dtype`` is the
compute dtype of convolutions and of the activations passed between layers.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Dtype = Any

# torchvision: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), i.e. an
# untruncated normal with std = sqrt(2 / (out_channels * kh * kw)). For an HWIO kernel
# jax's variance_scaling computes fan_out = kh * kw * O, the same number.
kaiming_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# PyTorch's default nn.Linear weight init: kaiming_uniform_(a=sqrt(5)), i.e.
# uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)). variance_scaling(1/3, fan_in, uniform) has
# bound sqrt(3 * (1/3) / fan_in) = 1/sqrt(fan_in).
torch_linear_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_linear_bias_init(fan_in: int):
  """PyTorch's default nn.Linear bias init: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_padding(p: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """PyTorch's symmetric ``padding=p`` of a 2-D conv/pool as a Flax explicit padding."""
  return ((p, p), (p, p))


class Conv2d(nn.Module):
  """Bias-free 2-D convolution, NHWC input, HWIO ``kernel`` [k, k, C_in, features], PyTorch's
  symmetric zero ``padding`` and ``stride``: the same parameters and outputs as
  ``nn.Conv(features, (k, k), strides=(s, s), padding=((p, p), (p, p)), use_bias=False)``
  (and as ``torch.nn.Conv2d(..., bias=False)`` after the HWIO transpose), written so that
  XLA's CPU backend runs it fast. Measured on XLA:CPU (jaxlib 0.10.2, see BUILD_NOTES):

  * 1x1 convs (ResNet's bottleneck and downsample convs) are a strided slice and one
    matmul over channels. As a convolution, their *filter gradient* is a convolution
    whose window is the whole feature map, run after transposing both operands to
    batch-minor layouts; that and the transposes were about half of a ResNet-50 CPU
    step. As a matmul the filter gradient is one GEMM (x^T dy) with no transposes.
  * A k x k conv whose input or output map is smaller than its kernel (H * W < k * k or
    H' * W' < k * k, e.g. ResNet-18's layer4 at 64 pixels: 4x4 -> 2x2) is an explicit
    im2col matmul: as a convolution (the forward one, or the input-gradient one, whose
    input is the output gradient), XLA swaps its operands and the swapped form falls
    back to a naive loop emitter (~0.4 s per conv at batch 16, 256-512 channels).
  * Every other conv is ``lax.conv_general_dilated``.

  Sums run in another order than a single convolution, so results agree to float32
  rounding, not bit for bit. ``dtype`` is the compute dtype (inputs and kernel are cast
  to it, output in it); the parameter is ``param_dtype``.

  Example: ``Conv2d(64, kernel_size=3, stride=2, padding=1)(x)`` for x [B, H, W, C].
  """

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  kernel_init: Any = kaiming_normal_fan_out

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s, p = self.kernel_size, self.stride, self.padding
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features),
                        self.param_dtype)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return conv2d(x, kernel, s, p)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  """``Conv2d``'s computation: x [B, H, W, C], kernel [k, k, C, O] -> [B, H', W', O]."""
  k, _, c, o = kernel.shape
  s, p = stride, padding
  if k == 1 and p == 0:
    if s > 1:
      x = x[:, ::s, ::s, :]
    return lax.dot_general(x, kernel.reshape(c, o), (((3,), (0,)), ((), ())))
  ho, wo = (x.shape[1] + 2 * p - k) // s + 1, (x.shape[2] + 2 * p - k) // s + 1
  if min(x.shape[1] * x.shape[2], ho * wo) < k * k:
    x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    b = x.shape[0]
    taps = [lax.slice(x, (0, i, j, 0), (b, i + s * (ho - 1) + 1, j + s * (wo - 1) + 1, c),
                      (1, s, s, 1)) for i in range(k) for j in range(k)]
    patches = jnp.concatenate(taps, axis=-1)  # [B, H', W', k*k*C], (i, j, c) order
    return lax.dot_general(patches, kernel.reshape(k * k * c, o), (((3,), (0,)), ((), ())))
  return lax.conv_general_dilated(x, kernel, (s, s), ((p, p), (p, p)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


class BatchNorm(nn.Module):
  """BatchNorm over the last axis with PyTorch's semantics (``torch.nn.BatchNorm2d``).

  * Training (``use_running_average=False``): normalise with the batch mean and the
    *biased* batch variance; update the running statistics as
    ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased*
    variance (n / (n - 1)), as PyTorch does. ``momentum=0.1`` is PyTorch's convention
    (Flax's ``nn.BatchNorm`` would call this momentum 0.9 and use the biased variance).
    Statistics are not updated while the module is initialising.
  * Evaluation: normalise with the running statistics.
  * Statistics and the normalisation are computed in float32 whatever the input dtype;
    the output is cast to ``dtype`` (default: the input's dtype).
  * ``axis_name``: batch statistics averaged over that mapped axis (``jax.pmap`` /
    ``shard_map``), i.e. synchronised BatchNorm; n counts the examples on all devices.

  Variables: params ``scale`` (init 1) and ``bias`` (init 0); batch_stats ``mean``
  (init 0) and ``var`` (init 1), all float32 [C].

  >>> bn = BatchNorm()
  >>> x = jnp.arange(8.0).reshape(4, 2)  # [N, C]
  >>> variables = bn.init(jax.random.key(0), x)
  >>> y, updates = bn.apply(variables, x, mutable=["batch_stats"])
  >>> y.mean(axis=0).round(6).tolist()  # normalised with the batch statistics
  [0.0, 0.0]
  >>> updates["batch_stats"]["mean"].tolist()  # 0.9 * 0 + 0.1 * batch mean
  [0.30000001192092896, 0.4000000059604645]
  """

  use_running_average: bool = False
  momentum: float = 0.1
  epsilon: float = 1e-5
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)

    x32 = x.astype(jnp.float32)
    if self.use_running_average:
      mean, var = running_mean.value, running_var.value
    else:
      axes = tuple(range(x.ndim - 1))
      count = math.prod(x.shape[:-1])
      mean = jnp.mean(x32, axis=axes)
      if self.axis_name is not None:
        mean = lax.pmean(mean, self.axis_name)
        count = count * lax.psum(1, self.axis_name)
      # Two-pass variance (no E[x^2] - E[x]^2 cancellation).
      var = jnp.mean(jnp.square(x32 - mean), axis=axes)
      if self.axis_name is not None:
        var = lax.pmean(var, self.axis_name)
      if not self.is_initializing():
        unbiased = var * (count / jnp.maximum(count - 1, 1))
        m = self.momentum
        running_mean.value = (1.0 - m) * running_mean.value + m * mean
        running_var.value = (1.0 - m) * running_var.value + m * unbiased

    mul = lax.rsqrt(var + self.epsilon) * scale.astype(jnp.float32)
    y = (x32 - mean) * mul + bias.astype(jnp.float32)
    return y.astype(self.dtype if self.dtype is not None else x.dtype)


class ADL(nn.Module):
  """Attention-based Dropout Layer (Choe & Shim, CVPR 2019), as in the official infoCAM code.

  Identity when ``train`` is False. In training, for x [B, H, W, C]:

  * attention a = mean of x over channels, [B, H, W, 1] (float32);
  * importance map sigma(a);
  * drop mask 1[a < threshold * max_{h,w} a], the max taken per example;
  * one uniform scalar u per call (one per ADL layer and forward pass, shared by the
    batch) from the ``'adl'`` PRNG collection: with probability ``drop_rate``
    (u < drop_rate) x is multiplied by the drop mask, otherwise by sigma(a).

  The official code draws ``floor(rand() + drop_rate)``, which is 1 with the same
  probability ``drop_rate``. The layer has no parameters.

  >>> adl = ADL(threshold=0.9, drop_rate=0.75)
  >>> x = jnp.ones((1, 4, 4, 2))
  >>> bool(jnp.all(adl.apply({}, x) == x))  # identity at inference
  True
  >>> adl.apply({}, x, train=True, rngs={"adl": jax.random.key(0)}).shape
  (1, 4, 4, 2)
  """

  threshold: float = 0.9
  drop_rate: float = 0.75

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if not train:
      return x
    if not self.has_rng("adl"):
      raise ValueError(
          "ADL is active in training and needs a PRNG key: call "
          "`model.apply(variables, images, train=True, rngs={'adl': key}, "
          "mutable=['batch_stats'])`.")
    u = jax.random.uniform(self.make_rng("adl"), ())
    x32 = x.astype(jnp.float32)
    attention = jnp.mean(x32, axis=-1, keepdims=True)
    importance = jax.nn.sigmoid(attention)
    max_val = jnp.max(attention, axis=(1, 2), keepdims=True)
    drop_mask = (attention < self.threshold * max_val).astype(jnp.float32)
    selected = jnp.where(u < self.drop_rate, drop_mask, importance)
    return (x32 * selected).astype(x.dtype)


def parse_adl_positions(positions: Any, valid: tuple[str, ...], arch: str) -> tuple[str, ...]:
  """Normalises ``adl_positions`` ("30 40 42", ["30", "40"], None) to a tuple of strings.

  Raises ValueError for an unknown position (listing the valid ones) or a duplicate.
  """
  if positions is None:
    return ()
  if isinstance(positions, str):
    items = positions.replace(",", " ").split()
  else:
    try:
      items = list(positions)
    except TypeError:
      raise ValueError(
          f"`adl_positions` must be a string like '30 40 42' or a sequence of strings, "
          f"got {positions!r}.") from None
    for p in items:
      if not isinstance(p, str):
        raise ValueError(
            f"`adl_positions` entries must be strings (e.g. '30', '3M'), got {p!r} of type "
            f"{type(p).__name__}.")
    items = [p.strip() for p in items]
  seen = set()
  for p in items:
    if p not in valid:
      raise ValueError(
          f"`adl_positions`: unknown position {p!r} for arch {arch!r}; valid positions are "
          f"{' '.join(valid)}.")
    if p in seen:
      raise ValueError(f"`adl_positions`: position {p!r} given twice.")
    seen.add(p)
  return tuple(p for p in valid if p in seen)  # canonical (network) order


def check_head_and_adl(num_classes: Any, positions: Any, valid: Any, threshold: Any,
                       drop_rate: Any) -> None:
  """Shared constructor checks: class count, ADL positions (``valid``: the allowed ones), ADL
  threshold and drop rate."""
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}.")
  for p in positions:
    if p not in valid:
      raise ValueError(
          f"`adl_positions`: unknown position {p!r}; valid positions are {' '.join(valid)}.")
  check_adl_hyperparameters(threshold, drop_rate)


def check_adl_hyperparameters(threshold: Any, drop_rate: Any) -> None:
  if not isinstance(threshold, (int, float)) or not 0.0 <= float(threshold) <= 1.0:
    raise ValueError(f"`adl_threshold` must be a number in [0, 1], got {threshold!r}.")
  if not isinstance(drop_rate, (int, float)) or not 0.0 <= float(drop_rate) <= 1.0:
    raise ValueError(f"`adl_drop_rate` must be a number in [0, 1], got {drop_rate!r}.")


def check_images(images: Any) -> None:
  """Images are NHWC floats (already normalised)."""
  if getattr(images, "ndim", None) != 4:
    raise ValueError(
        f"`images` must be a 4-D NHWC array [B, H, W, C], got shape "
        f"{tuple(getattr(images, 'shape', ()))}.")
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(
        f"`images` must be floating point (normalised NHWC), got dtype {images.dtype}.")
