"""LeNet of the PyTorch MNIST example: the network of the paper's MNIST PC-softmax experiment.

Layout (paper-spec.md §3.2; the classic ``pytorch/examples`` MNIST net):

    conv1  5x5, 1 -> 20 channels, stride 1, no padding  -> ReLU -> max-pool 2x2/2
    conv2  5x5, 20 -> 50 channels, stride 1, no padding -> ReLU -> max-pool 2x2/2
    flatten (C, H, W order, as torch's ``x.view(-1, 4*4*50)``)
    fc1    800 -> 500 -> ReLU
    fc2    500 -> num_classes (the logits; no softmax)

At 28x28x1 input the feature map after conv2 + pool is 4x4x50 (800 values) and
the network has 431,080 parameters for 10 classes (conv1 520, conv2 25,050,
fc1 400,500, fc2 5,010), like the torch model. Other input sizes work
(``fc1``'s input width is inferred at ``init``): 32x32 gives a 5x5x50 map.

Conventions (chosen so that a converted torch state dict gives the same outputs):

* NHWC inputs, already normalised (MNIST: mean 0.1307, std 0.3081).
* Flattening transposes to NCHW first, so ``fc1.kernel`` rows are in torch's
  order: ``fc1.kernel == fc1.weight.T`` and convs ``kernel == weight.permute(2, 3, 1, 0)``.
* Init as PyTorch's defaults: weights and biases uniform in +-1/sqrt(fan_in).
* Parameters float32; ``dtype`` is the compute dtype; the logits are float32.

``__call__(images, train=False) -> (logits [B, K] float32, features [B, h, w, 50]
float32)`` follows the project's model contract (``train`` is accepted and
unused: no dropout, no BatchNorm, so there are no ``batch_stats``). The
features are the pooled conv2 map; unlike the GAP backbones the logits are
*not* a linear function of their spatial mean, so CAM does not apply here.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from infocam_jax.models import layers

Dtype = Any


def _torch_bias_init(fan_in: int):
  return layers.torch_linear_bias_init(fan_in)


class LeNet(nn.Module):
  """The PyTorch-MNIST-example LeNet (see the module docstring).

  Attributes:
    num_classes: K, the output size of ``fc2``.
    conv_widths: channels of conv1 and conv2 (20, 50).
    hidden: width of fc1 (500).
    kernel_size: conv kernel side (5).
    dtype: compute dtype (parameters stay float32; logits are float32).
  """

  num_classes: int = 10
  conv_widths: tuple[int, int] = (20, 50)
  hidden: int = 500
  kernel_size: int = 5
  dtype: Dtype = jnp.float32

  def __post_init__(self):
    if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or \
        self.num_classes < 1:
      raise ValueError(f"`num_classes` must be a positive int, got {self.num_classes!r}.")
    if len(self.conv_widths) != 2 or any(int(w) < 1 for w in self.conv_widths):
      raise ValueError(f"`conv_widths` must be two positive ints, got {self.conv_widths!r}.")
    if self.hidden < 1 or self.kernel_size < 1:
      raise ValueError(f"`hidden` and `kernel_size` must be >= 1, got {self.hidden!r}, "
                       f"{self.kernel_size!r}.")
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    del train  # no dropout or BatchNorm in this network
    layers.check_images(images)
    k = self.kernel_size
    min_side = 3 * k + 1  # conv, pool, conv, pool leave >= 1 pixel
    if images.shape[1] < min_side or images.shape[2] < min_side:
      raise ValueError(f"`images` must be at least {min_side}x{min_side} for LeNet with "
                       f"{k}x{k} kernels, got {images.shape[1]}x{images.shape[2]}.")
    x = images.astype(self.dtype)
    for i, width in enumerate(self.conv_widths):
      fan_in = k * k * x.shape[-1]
      x = nn.Conv(width, (k, k), strides=(1, 1), padding="VALID", dtype=self.dtype,
                  param_dtype=jnp.float32, kernel_init=layers.torch_linear_kernel_init,
                  bias_init=_torch_bias_init(fan_in), name=f"conv{i + 1}")(x)
      x = nn.relu(x)
      x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    features = x.astype(jnp.float32)
    flat = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # torch's C, H, W order
    x = nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32,
                 kernel_init=layers.torch_linear_kernel_init,
                 bias_init=_torch_bias_init(flat.shape[-1]), name="fc1")(flat)
    x = nn.relu(x)
    logits = nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=jnp.float32,
                      kernel_init=layers.torch_linear_kernel_init,
                      bias_init=_torch_bias_init(self.hidden), name="fc2")(
                          x.astype(jnp.float32))
    return logits, features

