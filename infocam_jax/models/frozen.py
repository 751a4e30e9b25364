"""A frozen-backbone wrapper: train only the classifier head of a network.

Example::

  net = models.create_model("resnet50", 200)
  model = LastLayerOnly(net, trainable=head_names("resnet50"))   # only "fc" learns
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from infocam_jax.models.factory import arch_family


def head_names(arch: str) -> tuple[str, ...]:
  """Top-level params of the last (classifier) layer: ``fc`` (ResNet/VGG), ``fc2`` (LeNet).

  >>> head_names("resnet50"), head_names("lenet")
  (('fc',), ('fc2',))
  """
  return ("fc2",) if arch_family(arch) == "lenet" else ("fc",)


class LastLayerOnly(nn.Module):
  """``inner`` with a frozen backbone: only the top-level params in ``trainable`` learn.

  The variables are exactly ``inner``'s (``nn.share_scope``: same tree, same
  initialisation, loadable by ``inner`` itself). Every other parameter is read
  through ``stop_gradient`` (its gradient is exactly zero, and no backward pass
  is computed for it) and ``inner`` always runs in inference mode (BatchNorm
  uses and keeps its running statistics, ADL is off), as when a fixed
  pretrained network's features feed a trained linear classifier.

  Example::

    >>> from infocam_jax.models import create_model
    >>> net = create_model("resnet_tiny", 3)
    >>> model = LastLayerOnly(net, trainable=head_names("resnet_tiny"))
    >>> x = jnp.ones((2, 16, 16, 3))
    >>> variables = model.init(jax.random.key(0), x)  # the same tree as net's
    >>> def loss(params):
    ...   logits, _ = model.apply({**variables, "params": params}, x)
    ...   return logits.sum()
    >>> grads = jax.grad(loss)(variables["params"])
    >>> bool(jnp.all(grads["conv1"]["kernel"] == 0)), bool(jnp.any(grads["fc"]["kernel"] != 0))
    (True, True)
  """
  inner: nn.Module
  trainable: tuple[str, ...] = ("fc",)

  def setup(self):
    nn.share_scope(self, self.inner)

  def __call__(self, images: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    del train  # the backbone is always in inference mode
    trainable = self.trainable

    def freeze(variables):
      params = variables.get("params", {})
      params = {k: v if k in trainable else jax.tree.map(jax.lax.stop_gradient, v)
                for k, v in params.items()}
      return {**variables, "params": params}

    frozen = nn.map_variables(lambda m, x: m.inner(x, train=False), ["params"],
                              trans_in_fn=freeze, init=self.is_initializing(), mutable=False)
    return frozen(self, images)
