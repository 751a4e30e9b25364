"""Optimiser recipes: the paper's SGD (PyTorch semantics), Adam, LR schedules.

PyTorch's ``SGD(params, lr, momentum=m, weight_decay=wd, nesterov=True)`` does,
per parameter ``p`` with gradient ``g`` (``buf`` starts as ``g`` on the first step):

    d = g + wd * p;  buf = m * buf + d;  d = d + m * buf;  p = p - lr * d

i.e. L2 weight decay is *added to the gradient before momentum* and is applied
to every parameter (BatchNorm scales and biases included, torch's default).
``sgd_torch`` reproduces this as ``chain(add_decayed_weights(wd),
trace(m, nesterov=True), scale_by_learning_rate(lr))``; optax's trace starts at
zero, so its first buffer is ``g + wd*p`` exactly like torch's clone. The
numerical equivalence is tested against ``torch.optim.SGD``.

Per-group learning rates (the paper's 10x on the head: ResNet ``layer4`` and
``fc``, VGG-GAP ``conv6`` and ``fc``) use ``optax.partition`` with the labels
``"base"``/``"head"`` from a boolean mask; the momentum buffers are independent
of the learning rate, as in torch, so scaling the learning rate of one group is
the same as torch's param group with ``lr * 10``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

PyTree = Any

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")


def step_decay_schedule(learning_rate: float, *, decay_every_steps: int,
                        decay_factor: float = 0.1, warmup_steps: int = 0) -> optax.Schedule:
  """``lr * decay_factor ** floor(step / decay_every_steps)`` (torch ``StepLR``).

  ``step`` counts optimizer updates already applied, so the first update uses
  ``learning_rate`` and the update with index ``decay_every_steps`` (0-based) is
  the first at the decayed rate; this matches calling ``StepLR.step()`` once per
  epoch with ``decay_every_steps = step_size * steps_per_epoch``. An optional
  linear warm-up from 0 over ``warmup_steps`` updates precedes it.

  >>> schedule = step_decay_schedule(0.1, decay_every_steps=10)
  >>> [round(float(schedule(step)), 6) for step in (0, 9, 10, 25)]
  [0.1, 0.1, 0.01, 0.001]
  """
  if decay_every_steps < 1:
    raise ValueError(f"`decay_every_steps` must be >= 1, got {decay_every_steps}.")
  if not 0.0 < decay_factor <= 1.0:
    raise ValueError(f"`decay_factor` must lie in (0, 1], got {decay_factor}.")
  base = optax.exponential_decay(learning_rate, transition_steps=decay_every_steps,
                                 decay_rate=decay_factor, staircase=True)
  return _with_warmup(base, learning_rate, warmup_steps)


def _with_warmup(schedule: optax.Schedule, learning_rate: float, warmup_steps: int, *,
                 absolute: bool = True) -> optax.Schedule:
  """Linear warm-up from 0, then ``schedule``.

  ``absolute``: ``schedule`` is evaluated at the absolute update count (step
  decay boundaries stay where they would be without warm-up); otherwise at the
  count since the end of the warm-up (cosine).
  """
  if warmup_steps < 0:
    raise ValueError(f"`warmup_steps` must be >= 0, got {warmup_steps}.")
  if warmup_steps == 0:
    return schedule
  warm = optax.linear_schedule(0.0, learning_rate, warmup_steps)
  after = (lambda c: schedule(c + warmup_steps)) if absolute else schedule
  return optax.join_schedules([warm, after], [warmup_steps])


def make_schedule(name: str, learning_rate: float, *, total_steps: int,
                  decay_every_steps: int = 0, decay_factor: float = 0.1,
                  warmup_steps: int = 0) -> optax.Schedule:
  """The learning-rate schedule by name: ``constant``, ``step`` or ``cosine``.

  >>> schedule = make_schedule("step", 0.1, total_steps=100, decay_every_steps=30)
  >>> [round(float(schedule(s)), 6) for s in (0, 30, 60)]
  [0.1, 0.01, 0.001]
  >>> round(float(make_schedule("cosine", 0.1, total_steps=100, warmup_steps=10)(10)), 6)
  0.1
  """
  if learning_rate <= 0:
    raise ValueError(f"`learning_rate` must be > 0, got {learning_rate}.")
  if name == "constant":
    return _with_warmup(optax.constant_schedule(learning_rate), learning_rate, warmup_steps)
  if name == "step":
    return step_decay_schedule(learning_rate, decay_every_steps=decay_every_steps,
                               decay_factor=decay_factor, warmup_steps=warmup_steps)
  if name == "cosine":
    decay = optax.cosine_decay_schedule(learning_rate, max(1, total_steps - warmup_steps))
    return _with_warmup(decay, learning_rate, warmup_steps, absolute=False)
  raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {name!r}.")


def warmup_cosine_decay(step: jax.Array, warmup_steps: jax.Array, total_steps: jax.Array,
                        peak: float, final_fraction: float) -> jax.Array:
  """Linear warm-up to ``peak``, then cosine decay to ``peak * final_fraction``.

  Unlike ``make_schedule`` (an optax schedule of Python step counts), the
  step counts here may be traced values, so one compiled training epoch serves
  runs of different lengths (the synthetic MI study's settings).

  >>> float(warmup_cosine_decay(jnp.int32(0), 2, 10, 1.0, 0.0))
  0.5
  """
  step = step.astype(jnp.float32)
  warm = peak * (step + 1) / jnp.maximum(warmup_steps, 1)
  progress = jnp.clip((step - warmup_steps) / jnp.maximum(total_steps - warmup_steps, 1), 0, 1)
  cosine = peak * (final_fraction + (1 - final_fraction) * 0.5 * (1 + jnp.cos(jnp.pi * progress)))
  return jnp.where(step < warmup_steps, warm, cosine)


def sgd_torch(learning_rate: float | optax.Schedule, *, momentum: float = 0.9,
              nesterov: bool = True, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """``torch.optim.SGD`` semantics (L2 decay added to the gradient, all params).

  >>> tx = sgd_torch(0.1, momentum=0.0, nesterov=False, weight_decay=0.5)
  >>> params = {"w": jnp.array([1.0])}
  >>> updates, _ = tx.update({"w": jnp.array([2.0])}, tx.init(params), params)
  >>> updates["w"].tolist()  # -lr * (grad + weight_decay * w)
  [-0.25]
  """
  parts = []
  if weight_decay:
    parts.append(optax.add_decayed_weights(weight_decay))
  if momentum:
    parts.append(optax.trace(decay=momentum, nesterov=nesterov))
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)


def adam_torch(learning_rate: float | optax.Schedule, *, b1: float = 0.9, b2: float = 0.999,
               eps: float = 1e-8, weight_decay: float = 0.0,
               decoupled: bool = False) -> optax.GradientTransformation:
  """``torch.optim.Adam`` (L2 added to the gradient) or ``AdamW`` (``decoupled``).

  >>> tx = adam_torch(1e-3, weight_decay=1e-4, decoupled=True)  # torch.optim.AdamW
  >>> params = {"w": jnp.ones(3)}
  >>> updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
  >>> updates["w"].shape
  (3,)
  """
  if decoupled:
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
  parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
  parts.append(optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))
  return optax.chain(*parts)


def _scaled(schedule: float | optax.Schedule, factor: float) -> float | optax.Schedule:
  if factor == 1.0:
    return schedule
  if callable(schedule):
    return lambda count: factor * schedule(count)
  return factor * schedule


def make_optimizer(name: str = "sgd", *, learning_rate: float | optax.Schedule,
                   momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 0.0,
                   head_mask: PyTree | None = None, head_lr_multiplier: float = 1.0,
                   grad_clip_norm: float = 0.0, b1: float = 0.9, b2: float = 0.999,
                   eps: float = 1e-8) -> optax.GradientTransformation:
  """The full optimiser: optional clipping, then the recipe, per-group LR.

  Args:
    name: ``"sgd"`` (torch SGD semantics), ``"adam"`` (torch Adam, L2 added to
      the gradient) or ``"adamw"`` (decoupled decay).
    learning_rate: base learning rate or schedule (of the update count).
    momentum, nesterov: SGD only.
    weight_decay: L2 coefficient applied to *all* parameters.
    head_mask: pytree of bools with the structure of the params; ``True`` leaves
      get ``head_lr_multiplier * learning_rate``. ``None``: one group.
    head_lr_multiplier: the head's learning-rate factor (paper: 10).
    grad_clip_norm: clip the raw gradient to this global L2 norm before weight
      decay (``torch.nn.utils.clip_grad_norm_`` order); 0 disables.

  >>> params = {"backbone": {"w": jnp.ones(2)}, "fc": {"w": jnp.ones(2)}}
  >>> head = {"backbone": {"w": False}, "fc": {"w": True}}  # models.head_param_mask(arch, params)
  >>> tx = make_optimizer("sgd", learning_rate=0.1, momentum=0.0, nesterov=False,
  ...                     head_mask=head, head_lr_multiplier=10.0)
  >>> grads = jax.tree.map(jnp.ones_like, params)
  >>> updates, _ = tx.update(grads, tx.init(params), params)
  >>> updates["backbone"]["w"].tolist(), updates["fc"]["w"].tolist()  # the head learns 10x faster
  ([-0.1, -0.1], [-1.0, -1.0])
  """
  if name not in OPTIMIZERS:
    raise ValueError(f"`name` must be one of {OPTIMIZERS}, got {name!r}.")
  if not 0.0 <= momentum < 1.0:
    raise ValueError(f"`momentum` must lie in [0, 1), got {momentum}.")
  if weight_decay < 0:
    raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay}.")
  if head_lr_multiplier <= 0:
    raise ValueError(f"`head_lr_multiplier` must be > 0, got {head_lr_multiplier}.")
  if grad_clip_norm < 0:
    raise ValueError(f"`grad_clip_norm` must be >= 0 (0 disables), got {grad_clip_norm}.")

  def recipe(lr):
    if name == "sgd":
      return sgd_torch(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    return adam_torch(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                      decoupled=(name == "adamw"))

  if head_mask is None or head_lr_multiplier == 1.0:
    tx = recipe(learning_rate)
  else:
    labels = jax.tree.map(lambda m: "head" if bool(m) else "base", head_mask)
    partition = getattr(optax, "partition", None) or optax.multi_transform  # optax < 0.2.5
    tx = partition(
        {"base": recipe(learning_rate),
         "head": recipe(_scaled(learning_rate, head_lr_multiplier))}, labels)
  if grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  return tx


def optimizer_from_config(opt: Mapping[str, Any], *, total_steps: int, steps_per_epoch: int,
                          head_mask: PyTree | None = None) -> tuple[optax.GradientTransformation,
                                                                     optax.Schedule]:
  """Builds ``(tx, base_schedule)`` from the ``config.optimizer`` section.

  ``decay_every_epochs`` is converted to updates with ``steps_per_epoch``; a
  positive ``decay_every_steps`` overrides it.

  >>> from infocam_jax.train import default_train_config
  >>> opt = default_train_config().optimizer  # SGD, lr 0.01, step decay every 60 epochs
  >>> tx, schedule = optimizer_from_config(opt, total_steps=1000, steps_per_epoch=10)
  >>> [round(float(schedule(s)), 6) for s in (0, 599, 600)]
  [0.01, 0.01, 0.001]
  """
  decay_steps = int(opt.get("decay_every_steps", 0) or 0)
  if decay_steps <= 0 and opt.get("schedule", "constant") == "step":
    decay_steps = int(round(float(opt["decay_every_epochs"]) * steps_per_epoch))
  schedule = make_schedule(
      opt.get("schedule", "constant"), float(opt["learning_rate"]), total_steps=total_steps,
      decay_every_steps=max(1, decay_steps), decay_factor=float(opt.get("decay_factor", 0.1)),
      warmup_steps=int(opt.get("warmup_steps", 0)))
  tx = make_optimizer(
      opt.get("name", "sgd"), learning_rate=schedule,
      momentum=float(opt.get("momentum", 0.9)), nesterov=bool(opt.get("nesterov", True)),
      weight_decay=float(opt.get("weight_decay", 0.0)), head_mask=head_mask,
      head_lr_multiplier=float(opt.get("head_lr_multiplier", 1.0)),
      grad_clip_norm=float(opt.get("grad_clip_norm", 0.0)),
      b1=float(opt.get("b1", 0.9)), b2=float(opt.get("b2", 0.999)), eps=float(opt.get("eps", 1e-8)))
  return tx, schedule


def global_norm(tree: PyTree) -> jax.Array:
  """L2 norm over all leaves, accumulated in float32."""
  tree = jax.tree.map(lambda x: x.astype(jnp.float32), tree)
  tree_lib = getattr(optax, "tree", None)
  if tree_lib is not None and hasattr(tree_lib, "norm"):
    return tree_lib.norm(tree)
  return optax.global_norm(tree)  # optax < 0.2.6


ScheduleFn = Callable[[jax.Array], jax.Array]
