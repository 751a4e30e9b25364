"""A plain multi-layer perceptron classifier (the synthetic-MI network of Qin et al.)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """``d -> hidden_sizes... -> num_classes`` with ``activation`` between layers.

  The default ``hidden_sizes=(100, 100, 100)`` with ReLU is the paper's
  synthetic-MI model. Input ``x`` is [..., d] float; the output is the logits
  [..., num_classes] (no softmax), in ``dtype`` (default: float32).
  Parameters are float32 (``param_dtype``).

  >>> mlp = MLP(num_classes=5, hidden_sizes=(16, 16))
  >>> x = jnp.zeros((8, 2))
  >>> params = mlp.init(jax.random.key(0), x)
  >>> mlp.apply(params, x).shape  # logits
  (8, 5)
  """
  num_classes: int
  hidden_sizes: Sequence[int] = (100, 100, 100)
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.num_classes < 1:
      raise ValueError(f"`num_classes` must be >= 1, got {self.num_classes}.")
    if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
      raise ValueError(
          f"`x` must be a floating-point array [..., d], got dtype {jnp.asarray(x).dtype}.")
    for i, width in enumerate(self.hidden_sizes):
      x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                   kernel_init=self.kernel_init, name=f"hidden_{i}")(x)
      x = self.activation(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                    kernel_init=self.kernel_init, name="logits")(x)
