"""Class activation maps: CAM, infoCAM, Grad-CAM, upsampling and normalisation.

Shapes and conventions (all functions are pure, batched and jit/vmap-safe):

* ``features`` ``[B, H, W, C]`` are the pre-pooling activations (NHWC), i.e. the
  second output of ``model.apply(...) -> (logits, features)``.
* ``weights`` ``[C, K]`` (and ``bias`` ``[K]``) are the dense head after global
  average pooling (GAP): ``logits = mean_{ij} features[:, i, j, :] @ weights + bias``
  (see ``infocam_jax.models.head_weights``).
* ``labels`` ``[B]`` int: the class whose map is formed (the ground truth in the
  official evaluation, §2.1 of the reference spec). Only the requested class
  maps are formed: each example's ``[C]`` weight vector is gathered first and
  then contracted with its features, never all ``K`` maps.
* Maps are float32 ``[B, H', W']`` with no ReLU or clipping (as the official
  code), except Grad-CAM, which applies the customary ReLU.
* Map values are in the units of the logits (nats for log-odds): see `infocam`
  for the decomposition of the image-level PMI difference.

Post-processing for box extraction: `upsample_maps` (cv2.resize geometry,
bilinear or bicubic) then `normalize_maps` (per-map min–max, NaN/constant -> 0).

Value checks (labels in range) run when arrays are concrete; under ``jit`` an
out-of-range label is clamped by the gather (JAX semantics).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax import _checks

__all__ = [
    "class_activation_map",
    "infocam",
    "region_sum",
    "grad_cam",
    "grad_cam_from_head",
    "gap_dense_head",
    "upsample_maps",
    "normalize_maps",
]

_HIGHEST = jax.lax.Precision.HIGHEST


_VARIANTS = ("mean", "min", "none")
_PADDINGS = ("full", "same")
_REDUCTIONS = ("sum", "mean")


# --------------------------------------------------------------------------
# Argument checks.


def _check_features_weights_labels(features, weights, labels) -> tuple[int, int, int, int, int]:
  _checks.require_floating(features, "features")
  _checks.require_ndim(features, 4, "features", "[B, H, W, C], NHWC")
  _checks.require_floating(weights, "weights")
  _checks.require_ndim(weights, 2, "weights", "[C, K]")
  _checks.require_integer(labels, "labels")
  _checks.require_ndim(labels, 1, "labels", "[B]")
  b, h, w, c = (int(d) for d in np.shape(features))
  c_w, k = (int(d) for d in np.shape(weights))
  if c_w != c:
    raise ValueError(f"`weights` must have shape [C, K] with C={c} (the channels of `features` "
                     f"{tuple(np.shape(features))}), got {tuple(np.shape(weights))}.")
  if np.shape(labels)[0] != b:
    raise ValueError(f"`labels` must have shape [B] with B={b}, got {tuple(np.shape(labels))}.")
  if h < 1 or w < 1 or c < 1 or k < 1:
    raise ValueError(f"`features` {tuple(np.shape(features))} and `weights` "
                     f"{tuple(np.shape(weights))} must have non-empty H, W, C and K.")
  _checks.require_labels_in_range(labels, k, "labels")
  return b, h, w, c, k


def _check_choice(value, choices, name: str) -> None:
  if value not in choices:
    raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")


def _check_region_size(region_size) -> int:
  if (isinstance(region_size, bool) or not isinstance(region_size, (int, np.integer))
      or region_size < 1):
    raise ValueError(f"`region_size` must be a positive int (1 = no region summation), "
                     f"got {region_size!r}.")
  return int(region_size)


# --------------------------------------------------------------------------
# Maps.


def _contract(features: jax.Array, class_weights: jax.Array) -> jax.Array:
  """``[B,H,W,C] x [B,C] -> [B,H,W]`` in float32 at full precision."""
  return jnp.einsum("bhwc,bc->bhw", features.astype(jnp.float32),
                    class_weights.astype(jnp.float32), precision=_HIGHEST)


@functools.partial(jax.jit, static_argnames=("reduce",))
def _cam_core(features, weights, labels, reduce):
  class_weights = jnp.take(weights, labels, axis=1).T  # [B, C]
  maps = _contract(features, class_weights)
  if reduce == "mean":
    maps = maps / features.shape[-1]
  return maps


def class_activation_map(features: chex.Array, weights: chex.Array, labels: chex.Array, *,
                         reduce: str = "sum") -> jax.Array:
  """Class activation map (Zhou et al. 2016) of the class ``labels[b]`` per example.

  ``map_b(i, j) = Σ_c W[c, y_b] · A_b(i, j, c)`` (``reduce="sum"``). The head
  bias is not part of the map. ``reduce="mean"`` divides by ``C``: the
  official ADL/infoCAM code's plain CAM is ``cam.mean(1)`` over channels.
  The two differ by the constant factor ``C``, which min–max normalisation
  (`normalize_maps`) removes, so boxes and localisation metrics are identical.
  With ``"sum"`` the mean over positions of the map is ``logit_y - b_y`` for a
  GAP + dense head.

  Args:
    features: float ``[B, H, W, C]`` pre-pooling activations (NHWC).
    weights: float ``[C, K]`` dense-head weights.
    labels: int ``[B]`` classes whose maps are formed.
    reduce: ``"sum"`` (default) or ``"mean"`` over channels.

  Returns:
    float32 ``[B, H, W]``.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> features = jnp.ones((2, 7, 7, 8))   # [B, h, w, C]
    >>> weights = jnp.ones((8, 3))          # [C, K]
    >>> ij.class_activation_map(features, weights, jnp.array([0, 2])).shape
    (2, 7, 7)
  """
  b, h, w, _, _ = _check_features_weights_labels(features, weights, labels)
  _check_choice(reduce, _REDUCTIONS, "reduce")
  maps = _cam_core(features, weights, labels, reduce=reduce)
  chex.assert_shape(maps, (b, h, w))
  return maps


@functools.partial(jax.jit, static_argnames=("region_size", "padding"))
def _region_sum_core(maps, region_size, padding):
  k = region_size
  if k == 1:
    return maps
  if padding == "full":
    pad = (k - 1, k - 1)
  else:
    pad = ((k - 1) // 2, k // 2)
  lead = ((0, 0),) * (maps.ndim - 2)
  window = (1,) * (maps.ndim - 2) + (k, k)
  return jax.lax.reduce_window(maps, 0.0, jax.lax.add, window,
                               (1,) * maps.ndim, lead + (pad, pad))


def region_sum(maps: chex.Array, region_size: int = 4, padding: str = "full") -> jax.Array:
  """Sums each map over every ``k × k`` window (a convolution with a kernel of ones).

  ``padding="full"`` is the official infoCAM aggregation
  ``conv2d(ones(k, k), padding=k-1)``: zero padding of ``k-1`` on every side,
  output ``[..., H+k-1, W+k-1]``; output cell ``(i, j)`` sums input rows
  ``i-k+1 … i`` and columns ``j-k+1 … j``. Every input cell lands in exactly
  ``k²`` windows, so the total is preserved up to the factor ``k²``. Resizing
  this larger map to the whole image (as the official code does) compresses the
  map toward the centre by ``H/(H+k-1)`` (reference spec §5 item 6).

  ``padding="same"`` is the aligned variant: output ``[..., H, W]``, cell
  ``(i, j)`` sums rows ``i-(k-1)//2 … i+k//2`` (zero outside), i.e. the
  ``"SAME"`` convention of ``lax.conv``/TensorFlow; for even ``k`` the window
  is centred half a cell below/right of ``(i, j)``. It equals the ``"full"``
  output cropped to ``[k//2 : k//2+H, k//2 : k//2+W]``.

  Args:
    maps: real ``[..., H, W]``.
    region_size: window side ``k >= 1``; ``1`` returns the maps unchanged.
    padding: ``"full"`` or ``"same"``.

  Returns:
    float32 ``[..., H', W']``.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> print(ij.region_sum(jnp.ones((1, 3, 3)), region_size=2)[0])
    [[1. 2. 2. 1.]
     [2. 4. 4. 2.]
     [2. 4. 4. 2.]
     [1. 2. 2. 1.]]
  """
  _checks.require_maps(maps, None, "[..., H, W]")
  k = _check_region_size(region_size)
  _check_choice(padding, _PADDINGS, "padding")
  return _region_sum_core(jnp.asarray(maps).astype(jnp.float32), region_size=k, padding=padding)


@functools.partial(jax.jit, static_argnames=("variant", "region_size", "padding"))
def _infocam_core(features, weights, labels, logits, variant, region_size, padding):
  w_t = weights.astype(jnp.float32).T  # [K, C]
  w_y = w_t[labels]  # [B, C]
  if variant == "mean":
    num_classes = w_t.shape[0]
    w_eff = w_y - (jnp.sum(w_t, axis=0)[None, :] - w_y) / (num_classes - 1)
  elif variant == "min":
    w_eff = w_y - w_t[jnp.argmin(logits, axis=-1)]
  else:
    w_eff = w_y
  maps = _contract(features, w_eff)
  return _region_sum_core(maps, region_size=region_size, padding=padding)


def infocam(features: chex.Array, weights: chex.Array, labels: chex.Array, *,
            logits: chex.Array | None = None, variant: str = "mean", region_size: int = 4,
            padding: str = "full") -> jax.Array:
  """Informative CAM (infoCAM, Qin, Kim & Gedeon): class-contrastive map + region summation.

  Per example with class ``y`` the channel weights are

  * ``variant="mean"`` (default, the official ``--sub-oth-cams``):
    ``v = W[:, y] - (1/(K-1)) Σ_{k≠y} W[:, k]``;
  * ``variant="min"`` (the official ``--max-cam``): ``v = W[:, y] - W[:, k_min]``
    with ``k_min = argmin(logits)`` the lowest-scoring class of that image
    (first index on ties; an all-zero map if ``y`` itself scores lowest);
    requires ``logits``;
  * ``variant="none"``: ``v = W[:, y]``, plain CAM with region summation only
    (the official CUB ADL scripts' ``--conv-cam`` without subtraction).

  The unsummed map is ``M(i, j) = Σ_c v_c A(i, j, c)``, which is then summed
  over ``region_size × region_size`` windows (see `region_sum` for the
  ``"full"`` = official and ``"same"`` = aligned geometry). Channels are
  summed, not averaged, as the official ones-kernel convolution does.

  **Decomposition** (why it is "informative"). For a GAP + dense head
  ``f_k = (1/HW) Σ_{ij} W[:, k]ᵀ A(i, j) + b_k`` and the paper's PMI estimate
  ``PMI(x; k) = f_k - log Σ_j p_j e^{f_j}`` (the normaliser cancels in any
  difference), the ``variant="mean"`` map with ``region_size=1`` satisfies::

      (1/HW) Σ_{ij} M(i, j) = PMI(x; y) - (1/(K-1)) Σ_{k≠y} PMI(x; k)
                               - (b_y - (1/(K-1)) Σ_{k≠y} b_k)
                           = f_y - mean_{k≠y} f_k - (b_y - mean_{k≠y} b_k)   [nats],

  so ``M(i, j)/HW`` is position ``(i, j)``'s additive share of the image-level
  PMI difference (bias excluded), and a region sum is that region's share.
  With ``padding="full"`` the sum over all output cells is exactly
  ``region_size²·Σ_{ij} M(i, j)``, so the identity also holds for the summed
  map divided by ``region_size²·H·W``; ``"same"`` drops the border windows'
  overhang and does not preserve the total. Likewise ``variant="min"`` gives
  ``f_y - f_{k_min} - (b_y - b_{k_min})``.

  **What the mean variant can add over CAM.** ``v = (K/(K-1))·W[:, y] -
  (1/(K-1))·Σ_k W[:, k]``, and the gradient of softmax (or PC-softmax)
  cross-entropy never changes ``Σ_k W[:, k]`` (its per-row sum over classes is
  ``Σ_k (s_k - 1[k=y]) = 0``; tested). Trained with SGD, ``Σ_k W[:, k]`` is its
  initial value shrunk by weight decay, so after min-max normalisation the
  ``"mean"`` map is CAM + region sum up to that initial-sum term (measured on
  the offline WSOL default: cosine 0.998 between ``v`` and ``W[:, y]``, and
  equal box accuracies; BUILD_NOTES §7). ``"min"`` does depend on the image.

  Args:
    features: float ``[B, H, W, C]`` pre-pooling activations.
    weights: float ``[C, K]`` dense-head weights (``K >= 2`` for ``"mean"``).
    labels: int ``[B]`` classes whose maps are formed.
    logits: float ``[B, K]``, required for ``variant="min"`` (ignored otherwise,
      but shape-checked when given).
    variant: ``"mean"``, ``"min"`` or ``"none"``.
    region_size: window side ``k >= 1`` (official: 4 on CUB's 14×14 maps, 3 on
      Tiny-ImageNet's 4×4 maps); 1 disables region summation.
    padding: ``"full"`` (official; output ``H+k-1``) or ``"same"`` (output ``H``).

  Returns:
    float32 ``[B, H+k-1, W+k-1]`` (``"full"``) or ``[B, H, W]`` (``"same"``).

  Example:
    >>> import jax, jax.numpy as jnp, infocam_jax as ij
    >>> features = jax.random.normal(jax.random.key(0), (2, 7, 7, 8))
    >>> weights = jax.random.normal(jax.random.key(1), (8, 3))
    >>> ij.infocam(features, weights, jnp.array([0, 2])).shape  # 4x4 region sum, "full"
    (2, 10, 10)
    >>> ij.infocam(features, weights, jnp.array([0, 2]), region_size=1).shape
    (2, 7, 7)
  """
  b, h, w, _, k = _check_features_weights_labels(features, weights, labels)
  _check_choice(variant, _VARIANTS, "variant")
  _check_choice(padding, _PADDINGS, "padding")
  size = _check_region_size(region_size)
  if logits is not None:
    _checks.require_floating(logits, "logits")
    if tuple(np.shape(logits)) != (b, k):
      raise ValueError(f"`logits` must have shape [B, K] = {(b, k)}, got "
                       f"{tuple(np.shape(logits))}.")
  if variant == "min" and logits is None:
    raise ValueError("`logits` [B, K] is required for variant='min' (the lowest-scoring class "
                     "of each image is subtracted).")
  if variant == "mean" and k < 2:
    raise ValueError(f"variant='mean' needs at least 2 classes, `weights` has K={k}.")
  if variant != "min":
    logits = None
  maps = _infocam_core(features, weights, labels, logits, variant=variant, region_size=size,
                       padding=padding)
  grow = size - 1 if padding == "full" else 0
  chex.assert_shape(maps, (b, h + grow, w + grow))
  return maps


# --------------------------------------------------------------------------
# Grad-CAM.


def gap_dense_head(weights: chex.Array, bias: chex.Array | None = None
                   ) -> Callable[[jax.Array], jax.Array]:
  """The GAP + dense head ``features [B,H,W,C] -> logits [B,K]`` as a function.

  For `grad_cam_from_head` with the (W, b) of ``models.head_weights``.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> head = ij.gap_dense_head(jnp.ones((8, 3)), jnp.array([0.0, 1.0, 2.0]))
    >>> print(head(jnp.ones((1, 7, 7, 8))))
    [[ 8.  9. 10.]]
  """
  _checks.require_floating(weights, "weights")
  _checks.require_ndim(weights, 2, "weights", "[C, K]")
  if bias is not None:
    _checks.require_floating(bias, "bias")
    if tuple(np.shape(bias)) != (np.shape(weights)[1],):
      raise ValueError(f"`bias` must have shape [K] = ({np.shape(weights)[1]},), got "
                       f"{tuple(np.shape(bias))}.")

  def head(features: jax.Array) -> jax.Array:
    pooled = jnp.mean(features.astype(jnp.float32), axis=(1, 2))
    logits = jnp.dot(pooled, jnp.asarray(weights, jnp.float32), precision=_HIGHEST)
    return logits if bias is None else logits + jnp.asarray(bias, jnp.float32)

  return head


def _selected_logit_sum(logits: jax.Array, labels: jax.Array, batch: int) -> jax.Array:
  if logits.ndim != 2 or logits.shape[0] != batch:
    raise ValueError(f"the head must return logits [B, K] with B={batch}, got shape "
                     f"{tuple(logits.shape)}.")
  return jnp.sum(jnp.take_along_axis(logits.astype(jnp.float32), labels[:, None], axis=1))


def _grad_cam_from_grads(features: jax.Array, grads: jax.Array, relu: bool) -> jax.Array:
  alpha = jnp.mean(grads.astype(jnp.float32), axis=(1, 2))  # [B, C]
  maps = _contract(features, alpha)
  return jax.nn.relu(maps) if relu else maps


def grad_cam_from_head(head_fn: Callable[[jax.Array], jax.Array], features: chex.Array,
                       labels: chex.Array, *, relu: bool = True) -> jax.Array:
  """Grad-CAM (Selvaraju et al. 2017) given the part of the network after the features.

  ``α_{b,c} = (1/HW) Σ_{ij} ∂ f_{y_b}(x_b) / ∂ A_b(i, j, c)`` (``jax.grad``) and
  ``map_b = ReLU(Σ_c α_{b,c} A_b(·, ·, c))``. The gradient is taken of the sum of
  the selected logits over the batch, which equals the per-example gradients
  because ``head_fn`` must treat examples independently (true for any
  inference-mode head; batch-statistics layers would break it).

  For a GAP + dense head (`gap_dense_head`) ``α_c = W[c, y]/(HW)``, so Grad-CAM
  is ``ReLU(CAM)/(HW)``: the same boxes as CAM wherever CAM is positive.

  Args:
    head_fn: ``features [B, H, W, C] -> logits [B, K]``, differentiable.
    features: float ``[B, H, W, C]``.
    labels: int ``[B]`` classes whose maps are formed.
    relu: apply the ReLU (default, as in Grad-CAM).

  Returns:
    float32 ``[B, H, W]``.

  Example:
    >>> import jax, jax.numpy as jnp, infocam_jax as ij
    >>> features = jax.random.normal(jax.random.key(0), (2, 7, 7, 8))
    >>> head = ij.gap_dense_head(jax.random.normal(jax.random.key(1), (8, 3)))
    >>> ij.grad_cam_from_head(head, features, jnp.array([0, 2])).shape
    (2, 7, 7)
  """
  _checks.require_floating(features, "features")
  _checks.require_ndim(features, 4, "features", "[B, H, W, C], NHWC")
  _checks.require_integer(labels, "labels")
  _checks.require_ndim(labels, 1, "labels", "[B]")
  batch = int(np.shape(features)[0])
  if np.shape(labels)[0] != batch:
    raise ValueError(f"`labels` must have shape [B] with B={batch}, got "
                     f"{tuple(np.shape(labels))}.")
  if not callable(head_fn):
    raise ValueError(f"`head_fn` must be a callable features -> logits, got {head_fn!r}.")
  features = jnp.asarray(features)
  logits_shape = tuple(jax.eval_shape(head_fn, features).shape)
  if len(logits_shape) != 2 or logits_shape[0] != batch:
    raise ValueError(f"`head_fn` must return logits [B, K] with B={batch}, got shape "
                     f"{logits_shape}.")
  _checks.require_labels_in_range(labels, logits_shape[1], "labels")
  labels = jnp.asarray(labels)
  grads = jax.grad(lambda f: _selected_logit_sum(head_fn(f), labels, batch))(features)
  return _grad_cam_from_grads(features, grads, relu)


def grad_cam(apply_fn: Callable[..., Any], variables: Mapping[str, Any], images: chex.Array,
             labels: chex.Array, *, perturbation: str = "features",
             collection: str = "perturbations", relu: bool = True,
             **apply_kwargs: Any) -> jax.Array:
  """Grad-CAM of a whole Flax (Linen) model whose apply returns ``(logits, features)``.

  The gradient with respect to the intermediate feature map is taken through
  Flax's perturbation mechanism: the module must pass the map it returns
  through ``features = self.perturb("features", features)`` (a no-op without a
  ``"perturbations"`` collection). This function discovers the perturbation's
  shape with ``jax.eval_shape``, differentiates the selected logits with
  respect to a zero perturbation (one forward and one backward pass) and
  forms ``ReLU(Σ_c α_c A_c)`` with ``α_c`` the spatial mean of the gradient.
  For models without ``perturb``, use `grad_cam_from_head` with the head as a
  function (e.g. `gap_dense_head` of ``models.head_weights(variables)``).

  Args:
    apply_fn: e.g. ``model.apply``; called as
      ``apply_fn(variables, images, **apply_kwargs) -> (logits [B,K], features [B,H,W,C])``
      and with ``mutable=[collection]``.
    variables: the model variables (``{'params', 'batch_stats'}``); a collection
      named ``collection`` among them is ignored (replaced by zeros).
    images: the model input ``[B, ...]``.
    labels: int ``[B]`` classes whose maps are formed.
    perturbation: name given to ``self.perturb`` (the last path component).
    collection: the perturbation collection name.
    relu: apply the ReLU.
    **apply_kwargs: passed to ``apply_fn`` (e.g. ``train=False``).

  Returns:
    float32 ``[B, H, W]``.

  Example:
    >>> import jax, jax.numpy as jnp, infocam_jax as ij
    >>> from infocam_jax import models  # pip install 'infocam-jax[models]'
    >>> model = models.create_model("resnet_tiny", 10)
    >>> images = jnp.zeros((2, 32, 32, 3))
    >>> variables = model.init(jax.random.key(0), images, train=False)
    >>> ij.grad_cam(model.apply, variables, images, jnp.array([1, 2]), train=False).shape
    (2, 4, 4)
  """
  _checks.require_integer(labels, "labels")
  _checks.require_ndim(labels, 1, "labels", "[B]")
  if not isinstance(variables, Mapping):
    raise ValueError(f"`variables` must be a mapping of collections, got {type(variables)}.")
  if "mutable" in apply_kwargs:
    raise ValueError("`mutable` is managed by grad_cam; do not pass it in apply_kwargs.")
  base = {name: value for name, value in variables.items() if name != collection}
  (out_shapes, shapes) = jax.eval_shape(
      lambda v, x: apply_fn(v, x, mutable=[collection], **apply_kwargs), base, images)
  if not (isinstance(out_shapes, (tuple, list)) and len(out_shapes) == 2):
    raise ValueError("`apply_fn` must return (logits [B, K], features [B, H, W, C]).")
  logits_shape = tuple(out_shapes[0].shape)
  if len(logits_shape) != 2 or logits_shape[0] != np.shape(labels)[0]:
    raise ValueError(f"`labels` must have shape [B] matching the logits {logits_shape}, got "
                     f"{tuple(np.shape(labels))}.")
  _checks.require_labels_in_range(labels, logits_shape[1], "labels")
  found = [(path, leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(
      shapes.get(collection, {}))[0] if _last_key(path) == perturbation]
  if len(found) != 1:
    raise ValueError(
        f"grad_cam needs exactly one perturbation named {perturbation!r} in collection "
        f"{collection!r}, found {len(found)}: the model must call "
        f"`self.perturb({perturbation!r}, features)` on the features it returns (or use "
        f"grad_cam_from_head).")
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[collection])
  labels = jnp.asarray(labels)

  def selected(perturbs):
    logits, features = apply_fn({**base, collection: perturbs}, images, **apply_kwargs)
    return _selected_logit_sum(logits, labels, labels.shape[0]), features

  grads, features = jax.grad(selected, has_aux=True)(zeros)
  target = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]
            if _last_key(path) == perturbation][0]
  if features.ndim != 4 or target.shape != features.shape:
    raise ValueError(f"the perturbation {perturbation!r} has shape {target.shape}, but the "
                     f"model returned features of shape {features.shape}; perturb the "
                     f"returned [B, H, W, C] feature map.")
  return _grad_cam_from_grads(features, target, relu)


def _last_key(path) -> Any:
  if not path:
    return None
  entry = path[-1]
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return getattr(entry, attr)
  return entry


# --------------------------------------------------------------------------
# Resizing and normalisation.

_METHODS = ("bilinear", "bicubic")


def _keys_cubic(t: np.ndarray, a: float) -> np.ndarray:
  """Keys' cubic convolution kernel W(t) with parameter ``a`` (float64)."""
  t = np.abs(t)
  inner = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
  outer = ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
  return np.where(t <= 1.0, inner, np.where(t < 2.0, outer, 0.0))


@functools.lru_cache(maxsize=256)
def resize_matrix(in_size: int, out_size: int, method: str, cubic_a: float) -> np.ndarray:
  """[out_size, in_size] float32 interpolation matrix, cv2.resize geometry.

  Output pixel ``o`` samples the source at ``x = (o + 0.5) * in/out - 0.5``
  (half-pixel centres); taps outside ``[0, in_size - 1]`` are clamped to the
  border pixel (``BORDER_REPLICATE``), so every row sums to one.
  """
  scale = in_size / out_size
  x = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
  base = np.floor(x)
  frac = x - base
  if method == "bilinear":
    offsets = np.array([0.0, 1.0])
    weights = np.stack([1.0 - frac, frac], axis=1)
  else:
    offsets = np.array([-1.0, 0.0, 1.0, 2.0])
    weights = _keys_cubic(frac[:, None] - offsets[None, :], cubic_a)
  idx = np.clip(base[:, None] + offsets[None, :], 0, in_size - 1).astype(np.int64)
  rows = np.broadcast_to(np.arange(out_size)[:, None], idx.shape)
  mat = np.zeros((out_size, in_size), np.float64)
  np.add.at(mat, (rows, idx), weights)
  out = mat.astype(np.float32)
  out.setflags(write=False)
  return out


def upsample_maps(maps: chex.Array, size: int | Sequence[int], method: str = "bilinear", *,
                  cubic_a: float = -0.75) -> jax.Array:
  """Resizes maps ``[..., h, w]`` (typically ``[B, h, w]``) to ``size=(H, W)``.

  Exactly the geometry of ``cv2.resize`` for upsampling: output pixel ``o``
  samples the source at ``(o + 0.5) * h / H - 0.5`` (half-pixel centres, the
  map covers the whole image) and taps outside the map replicate the border
  pixel. ``method="bilinear"`` equals ``cv2.INTER_LINEAR`` (and
  ``jax.image.resize(..., "linear")`` when upsampling);
  ``method="bicubic"`` with the default ``cubic_a=-0.75`` equals
  ``cv2.INTER_CUBIC`` (the official infoCAM protocol), ``cubic_a=-0.5`` is the
  Keys kernel of ``jax.image.resize(..., "cubic")`` / PIL, which differ from
  this only at the border (they renormalise instead of replicating). Bicubic
  can overshoot the input range. Downsampling uses the same formula without
  anti-aliasing (cv2 switches to area averaging for an exact 2x reduction;
  this function does not).

  Implemented as two small matrix products ``R_y @ map @ R_xᵀ`` with static
  float32 interpolation matrices, so it is cheap under ``jit`` on any
  accelerator. A constant map stays exactly constant (cv2's float64 resize
  keeps float32 constants exact too). A non-finite value anywhere in a map
  spreads through the products to the whole map; `normalize_maps` then zeroes that map, as
  wsolevaluation zeroes maps containing NaN.

  Args:
    maps: real array ``[..., h, w]``.
    size: output ``(H, W)`` (note: ``cv2.resize`` takes ``(W, H)``), or one int.
    method: ``"bilinear"`` or ``"bicubic"``.
    cubic_a: Keys parameter for ``"bicubic"``.

  Returns:
    float32 array ``[..., H, W]``.

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> up = ij.upsample_maps(jnp.array([[[0.0, 1.0], [1.0, 2.0]]]), (4, 4))  # bilinear
    >>> print(up[0])
    [[0.   0.25 0.75 1.  ]
     [0.25 0.5  1.   1.25]
     [0.75 1.   1.5  1.75]
     [1.   1.25 1.75 2.  ]]
  """
  _checks.require_maps(maps, None, "[..., h, w]")
  if method not in _METHODS:
    raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
  out_h, out_w = _checks.parse_size(size)
  a = float(cubic_a)
  if not np.isfinite(a):
    raise ValueError(f"`cubic_a` must be finite, got {cubic_a!r}.")
  out = _upsample_core(jnp.asarray(maps), size=(out_h, out_w), method=method, cubic_a=a)
  chex.assert_shape(out, tuple(np.shape(maps)[:-2]) + (out_h, out_w))
  return out


@functools.partial(jax.jit, static_argnames=("size", "method", "cubic_a"))
def _upsample_core(maps, size, method, cubic_a):
  in_h, in_w = maps.shape[-2:]
  ry = resize_matrix(int(in_h), size[0], method, cubic_a)
  rx = resize_matrix(int(in_w), size[1], method, cubic_a)
  maps = maps.astype(jnp.float32)
  x = jnp.einsum("...hw,pw->...hp", maps, rx, precision=_HIGHEST)
  out = jnp.einsum("oh,...hp->...op", ry, x, precision=_HIGHEST)
  # A constant map stays exactly constant (the products would add float32 rounding noise,
  # which a later min-max normalisation would stretch to a whole-image foreground).
  lo = jnp.min(maps, axis=(-2, -1), keepdims=True)
  hi = jnp.max(maps, axis=(-2, -1), keepdims=True)
  return jnp.where(lo == hi, lo, out)


def normalize_maps(maps: chex.Array) -> jax.Array:
  """Per-map min–max normalisation of ``[..., H, W]`` (typically ``[B, H, W]``) to [0, 1].

  Each map becomes ``(m - min m) / (max m - min m)``. A constant map, or one
  with any NaN or ±inf value, becomes all zeros (wsolevaluation's
  ``normalize_scoremap`` zeroes constant and NaN maps; infinities are treated
  like NaN here so the output is always finite). Never returns NaN or inf.
  Where the backend flushes subnormals to zero (XLA:CPU), a map whose range is
  below ~2.4e-38 (twice float32's smallest normal) counts as constant.

  Returns:
    float32 array of the same shape, values in [0, 1].

  Example:
    >>> import jax.numpy as jnp, infocam_jax as ij
    >>> print(ij.normalize_maps(jnp.array([[[0.0, 2.0], [1.0, 4.0]], [[3.0, 3.0], [3.0, 3.0]]])))
    [[[0.   0.5 ]
      [0.25 1.  ]]
    <BLANKLINE>
     [[0.   0.  ]
      [0.   0.  ]]]
  """
  _checks.require_maps(maps, None, "[..., H, W]")
  return _normalize_core(jnp.asarray(maps))


@jax.jit
def _normalize_core(maps):
  x = maps.astype(jnp.float32)
  axes = (-2, -1)
  finite = jnp.all(jnp.isfinite(x), axis=axes, keepdims=True)
  x = jnp.where(finite, x, 0.0)
  # Halve before subtracting so that a range wider than float32's max cannot overflow.
  lo = 0.5 * jnp.min(x, axis=axes, keepdims=True)
  hi = 0.5 * jnp.max(x, axis=axes, keepdims=True)
  span = hi - lo
  ok = finite & (span > 0)
  # Divide by the span's mantissa after an exact power-of-two rescaling: XLA on
  # CPU flushes subnormals, so ``num * (1 / span)`` would vanish for spans > 2**126.
  mant, expo = jnp.frexp(jnp.where(ok, span, 1.0))
  y = jnp.ldexp(0.5 * x - lo, -expo) / mant
  return jnp.where(ok, jnp.clip(y, 0.0, 1.0), 0.0)
