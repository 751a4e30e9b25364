"""torchvision <-> Flax weight conversion for the backbones (ResNet-18/34/50, VGG16-GAP).

Key mapping. Our Flax module paths mirror torchvision's names, so a ResNet parameter at
``params/layer1/0/downsample/0/kernel`` is torchvision's ``layer1.0.downsample.0.weight``.
VGG convs ``convX_Y`` are torchvision's ``features.N`` (N = 0, 2, 5, 7, 10, 12, 14, 17, 19,
21, 24, 26, 28); ``conv6`` and ``fc`` keep their names (the official infoCAM VGG16-GAP
checkpoint naming). Leaves:

=========================  ==================================  ==========================
Flax                       torchvision                         layout change
=========================  ==================================  ==========================
Conv ``kernel``            ``weight``                          OIHW -> HWIO
Dense ``kernel``           ``weight``                          [out, in] -> [in, out]
``bias``                   ``bias``                            -
BatchNorm ``scale``        ``weight``                          -
batch_stats ``mean``       ``running_mean``                    -
batch_stats ``var``        ``running_var``                     -
(none)                     ``num_batches_tracked``             ignored
=========================  ==================================  ==========================

Loading rules (``convert_torchvision_state_dict`` / ``load_torchvision_weights``):

* A common ``module.`` prefix (``DataParallel``/DDP checkpoints) is stripped; a ``.pth``
  holding ``{'state_dict': ...}`` is unwrapped. timm's ``*.tv_in1k`` ResNet weights use
  torchvision's keys, so they load as they are.
* Head ``fc``: kept when ``num_classes`` is None (K taken from the checkpoint) or equals
  the checkpoint's K; otherwise it is dropped and initialised freshly from ``key`` with
  the model's own initialiser (ResNet: PyTorch's default Linear init; VGG-GAP:
  normal(0, 0.01), bias 0).
* VGG16: only ``features.*`` is read; torchvision's ``classifier.*`` (and timm's
  ``pre_logits.*``/``head.*``) are dropped. ``conv6`` and ``fc`` are read when the
  checkpoint has them (an infoCAM VGG16-GAP checkpoint), else initialised from ``key``.
* A fresh initialisation without ``key`` is a ValueError (randomness is explicit).
* Errors (ValueError, naming the key): a missing key; a shape mismatch (giving both shapes
  in torch layout); unexpected extra keys (error by default; ``strict=False`` turns them
  into a warning); an unknown arch. Parameters are returned as float32.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any, Mapping

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax import _deps
from infocam_jax.models import factory, layers, vgg

_LEAF_TO_TORCH = {
    ("params", "kernel"): "weight",
    ("params", "bias"): "bias",
    ("params", "scale"): "weight",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}

# Modules that may be absent from a checkpoint (then freshly initialised).
_OPTIONAL = {"resnet": ("fc",), "vgg": ("conv6", "fc")}
# Checkpoint key prefixes that are dropped silently (classifiers we replace).
_DROPPED_PREFIXES = {"resnet": (), "vgg": ("classifier.", "pre_logits.", "head.")}
# Input size used only to trace parameter shapes (jax.eval_shape; nothing is computed).
_TRACE_SIZE = 32


def _vgg_conv_indices(blocks: tuple[int, ...]) -> dict[str, int]:
  """convX_Y -> index in torchvision's ``features`` Sequential (conv, ReLU, ..., pool)."""
  out, idx = {}, 0
  for b, n in enumerate(blocks):
    for c in range(n):
      out[f"conv{b + 1}_{c + 1}"] = idx
      idx += 2  # conv, ReLU
    idx += 1  # max-pool (torchvision keeps the 5th; its index is never used)
  return out


def _module_prefix(arch: str, module_path: tuple[str, ...]) -> str:
  if factory.arch_family(arch) == "vgg" and module_path[0].startswith("conv") and \
      module_path[0] != "conv6":
    blocks = factory._ARCHS[arch][1]["blocks"]
    return f"features.{_vgg_conv_indices(blocks)[module_path[0]]}"
  return ".".join(module_path)


def _torch_key(arch: str, collection: str, path: tuple[str, ...]) -> str:
  return f"{_module_prefix(arch, path[:-1])}.{_LEAF_TO_TORCH[(collection, path[-1])]}"


def _to_torch_layout(x: np.ndarray) -> np.ndarray:
  if x.ndim == 4:  # HWIO -> OIHW
    return np.transpose(x, (3, 2, 0, 1))
  if x.ndim == 2:  # [in, out] -> [out, in]
    return x.T
  return x


def _from_torch_layout(x: np.ndarray) -> np.ndarray:
  if x.ndim == 4:  # OIHW -> HWIO
    return np.transpose(x, (2, 3, 1, 0))
  if x.ndim == 2:
    return x.T
  return x


def _torch_shape(flax_shape: tuple[int, ...]) -> tuple[int, ...]:
  if len(flax_shape) == 4:
    h, w, i, o = flax_shape
    return (o, i, h, w)
  if len(flax_shape) == 2:
    return (flax_shape[1], flax_shape[0])
  return tuple(flax_shape)


def _as_numpy(key: str, value: Any) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor
    t = value.detach().cpu()
    if t.is_floating_point() and str(t.dtype) not in ("torch.float32", "torch.float64"):
      t = t.float()
    return t.numpy()
  try:
    return np.asarray(value)
  except Exception as e:  # pragma: no cover - exotic values
    raise ValueError(f"state dict entry {key!r} is not an array ({type(value).__name__}).") from e


def _normalise_state_dict(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
  if not isinstance(state_dict, Mapping):
    raise ValueError(f"`state_dict` must be a mapping of names to arrays, got "
                     f"{type(state_dict).__name__}.")
  if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
    state_dict = state_dict["state_dict"]
  keys = list(state_dict)
  for k in keys:
    if not isinstance(k, str):
      raise ValueError(f"`state_dict` keys must be strings, got {k!r}.")
  strip = "module." if keys and all(k.startswith("module.") for k in keys) else ""
  return {k[len(strip):]: _as_numpy(k, v) for k, v in state_dict.items()
          if not k.endswith("num_batches_tracked")}


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a torchvision-style state dict as NumPy arrays.

  ``.safetensors``: with ``safetensors.numpy`` (no torch). ``.pth``/``.pt``/``.bin``/
  ``.ckpt``: with ``torch.load(path, map_location="cpu", weights_only=True)`` (torch must be
  installed; ``weights_only`` refuses pickles that would run code). ``{'state_dict': ...}``
  wrappers and a ``module.`` prefix are handled; ``num_batches_tracked`` is dropped.

  >>> import os, tempfile
  >>> variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
  ...                          variable_shapes("resnet_tiny", 3))  # or trained ones
  >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
  >>> save_torchvision_weights(variables, path, "resnet_tiny")
  >>> state_dict = read_state_dict(path)
  >>> state_dict["fc.weight"].shape, state_dict["bn1.running_var"].dtype  # torch layout
  ((3, 64), dtype('float32'))
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"weights file not found: {path!r}")
  suffix = os.path.splitext(path)[1].lower()
  if suffix == ".safetensors":
    with _deps.extra("convert", "reading .safetensors weights"):
      from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    try:
      raw = load_file(path)
    except Exception as e:
      raise ValueError(f"could not read {path!r} with safetensors.numpy: {e}") from e
  elif suffix in (".pth", ".pt", ".bin", ".ckpt"):
    try:
      import torch
    except ImportError:
      raise ImportError(
          f"reading {path!r} needs torch (pip install 'infocam-jax[torch]'); or convert it "
          "to .safetensors, which loads without torch.") from None
    raw = torch.load(path, map_location="cpu", weights_only=True)
  else:
    raise ValueError(
        f"unknown weights file type {suffix!r} for {path!r}: expected .safetensors or "
        ".pth/.pt/.bin/.ckpt.")
  return _normalise_state_dict(raw)


def _fresh_module(family: str, module: str, key: jax.Array,
                  shapes: Mapping[str, Any]) -> dict[str, jax.Array]:
  """Initialises ``conv6`` or ``fc`` with the same initialisers as the model."""
  k_kernel, k_bias = jax.random.split(key)
  kshape, bshape = shapes["kernel"].shape, shapes["bias"].shape
  if module == "fc":
    fan_in = kshape[0]
    if family == "resnet":
      kinit, binit = layers.torch_linear_kernel_init, layers.torch_linear_bias_init(fan_in)
    else:
      kinit, binit = vgg.FC_KERNEL_INIT, vgg.FC_BIAS_INIT
  else:  # VGG conv6
    kinit, binit = vgg.CONV_KERNEL_INIT, vgg.CONV_BIAS_INIT
  return {"kernel": kinit(k_kernel, kshape, jnp.float32),
          "bias": binit(k_bias, bshape, jnp.float32)}


@functools.lru_cache(maxsize=32)
def _variable_shapes_cached(arch: str, num_classes: int, options: tuple) -> Any:
  model = factory.create_model(arch, num_classes, **dict(options))
  dummy = jax.ShapeDtypeStruct((1, _TRACE_SIZE, _TRACE_SIZE, 3), jnp.float32)
  return jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), dummy)


def variable_shapes(arch: str, num_classes: int, **options: Any) -> Any:
  """Shapes/dtypes (``jax.ShapeDtypeStruct``) of ``create_model(arch, num_classes,
  **options)``'s variables, traced with ``jax.eval_shape`` (no computation; cached).

  >>> shapes = variable_shapes("resnet18", 10)
  >>> shapes["params"]["fc"]["kernel"].shape, shapes["batch_stats"]["bn1"]["mean"].shape
  ((512, 10), (64,))
  """
  items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
  try:
    hash(items)
  except TypeError:
    return _variable_shapes_cached.__wrapped__(arch, num_classes, items)
  return _variable_shapes_cached(arch, num_classes, items)


def convert_torchvision_state_dict(
    state_dict: Mapping[str, Any],
    arch: str,
    num_classes: int | None = None,
    *,
    key: jax.Array | None = None,
    strict: bool = True,
    **options: Any,
) -> dict[str, Any]:
  """Converts a torchvision state dict (arrays or torch tensors) into Flax variables.

  Args:
    state_dict: name -> array (NumPy or torch), torchvision naming.
    arch: as for ``create_model`` ("resnet18", "resnet34", "resnet50", "vgg16_gap", and the
      tiny test archs).
    num_classes: K of the head. None keeps the checkpoint's head (and its K). A K that
      differs from the checkpoint's drops the checkpoint head and initialises a new one.
    key: PRNG key for freshly initialised modules (a new head; VGG's conv6/fc when the
      checkpoint lacks them). Required exactly when something is initialised freshly.
    strict: unexpected checkpoint keys raise ValueError (True) or only warn (False).
    **options: the ``create_model`` options (``layer4_stride``, ``adl_positions``, ...); they
      must describe the model these variables are for (shapes are checked against it).

  Returns:
    Flax variables, the collections ``params`` and ``batch_stats`` (VGG has ``params`` only) of
    float32 jax arrays, for ``create_model(arch, K, **options)``.

  Example (a round trip; a real state dict comes from :func:`read_state_dict`)::

    >>> variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
    ...                          variable_shapes("resnet_tiny", 3))  # or trained ones
    >>> state_dict = to_torchvision_state_dict(variables, "resnet_tiny")
    >>> back = convert_torchvision_state_dict(state_dict, "resnet_tiny")
    >>> jax.tree.structure(back) == jax.tree.structure(variables)
    True
    >>> new_head = convert_torchvision_state_dict(state_dict, "resnet_tiny", 7,
    ...                                           key=jax.random.key(0))  # a fresh 7-class head
    >>> new_head["params"]["fc"]["kernel"].shape
    (64, 7)
  """
  family = factory.arch_family(arch)
  sd = _normalise_state_dict(state_dict)

  ckpt_k = sd["fc.weight"].shape[0] if "fc.weight" in sd and sd["fc.weight"].ndim == 2 else None
  if num_classes is None:
    if ckpt_k is None:
      raise ValueError(
          f"the checkpoint has no 'fc' head to take num_classes from (arch {arch!r}); pass "
          "`num_classes` (and a `key` for the new head).")
    num_classes = ckpt_k
  keep_head = ckpt_k == num_classes

  shapes = variable_shapes(arch, num_classes, **options)

  optional = _OPTIONAL[family]
  consumed: set[str] = set()
  if not keep_head:
    consumed |= {k for k in sd if k.startswith("fc.")}
  flat_out: dict[tuple[str, ...], Any] = {}
  missing, mismatched = [], []
  fresh: list[str] = []
  fresh_reason: dict[str, str] = {}

  # Optional modules: present in full, absent (-> fresh), or partial (-> missing keys).
  for module in optional:
    leaves = traverse_util.flatten_dict(shapes["params"][module])
    tkeys = [_torch_key(arch, "params", (module,) + p) for p in leaves]
    present = [k for k in tkeys if k in sd]
    if module == "fc" and not keep_head:
      fresh.append(module)
      fresh_reason[module] = (
          f"the checkpoint head has {ckpt_k} classes, num_classes={num_classes}"
          if ckpt_k is not None else "the checkpoint has no 'fc' head")
    elif not present:
      fresh.append(module)
      fresh_reason[module] = f"the checkpoint has no {module!r} weights"

  for collection in shapes:
    for path, leaf in traverse_util.flatten_dict(shapes[collection]).items():
      if path[0] in fresh:
        continue
      tkey = _torch_key(arch, collection, path)
      want = _torch_shape(leaf.shape)
      if tkey not in sd:
        missing.append(tkey)
        continue
      got = sd[tkey]
      consumed.add(tkey)
      if tuple(got.shape) != want:
        mismatched.append(f"{tkey!r}: checkpoint {tuple(got.shape)}, model needs {want}")
        continue
      if not np.issubdtype(got.dtype, np.floating):
        raise ValueError(f"checkpoint key {tkey!r} has non-float dtype {got.dtype}.")
      flat_out[(collection,) + path] = _from_torch_layout(got.astype(np.float32))

  what = f"arch {arch!r} (options {options or {}})"
  if missing:
    raise ValueError(
        f"the checkpoint is missing {len(missing)} key(s) needed by {what}: "
        f"{missing[:8]}{' ...' if len(missing) > 8 else ''}")
  if mismatched:
    raise ValueError(
        f"shape mismatch for {len(mismatched)} key(s) of {what} (torch layout): "
        + "; ".join(mismatched[:8]) + (" ..." if len(mismatched) > 8 else ""))
  dropped = _DROPPED_PREFIXES[family]
  unexpected = sorted(k for k in sd if k not in consumed and not k.startswith(dropped))
  if unexpected:
    msg = (f"{len(unexpected)} unexpected checkpoint key(s) for {what}: "
           f"{unexpected[:8]}{' ...' if len(unexpected) > 8 else ''} (a different arch?)")
    if strict:
      raise ValueError(msg + "; pass strict=False to ignore them.")
    warnings.warn(msg + "; ignored (strict=False).", stacklevel=2)

  if key is not None and not (isinstance(key, jax.Array) and (
      jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,))):
    raise ValueError(f"`key` must be a PRNG key from jax.random.key(seed), got {key!r}.")
  if fresh:
    if key is None:
      reasons = "; ".join(f"{m}: {fresh_reason[m]}" for m in fresh)
      raise ValueError(
          f"{', '.join(fresh)} must be initialised freshly ({reasons}); pass "
          "`key=jax.random.key(seed)`.")
    for module, k in zip(fresh, jax.random.split(key, len(fresh))):
      for leaf, value in _fresh_module(family, module, k, shapes["params"][module]).items():
        flat_out[("params", module, leaf)] = value

  out = traverse_util.unflatten_dict(flat_out)
  return jax.tree_util.tree_map(jnp.asarray, out)


def load_torchvision_weights(
    path: str | os.PathLike,
    arch: str,
    num_classes: int | None = None,
    *,
    key: jax.Array | None = None,
    strict: bool = True,
    **options: Any,
) -> dict[str, Any]:
  """Loads torchvision/timm weights (``.safetensors`` or ``.pth``) as Flax variables.

  ``.safetensors`` needs only NumPy; ``.pth`` needs torch and is read with
  ``torch.load(path, map_location="cpu", weights_only=True)``. See
  ``convert_torchvision_state_dict`` for ``num_classes``, ``key``, ``strict`` and the
  model ``options``; the result is for ``create_model(arch, K, **options)``.

  Example (torchvision's ``resnet50-19c8e357.pth`` works the same with torch installed;
  here a tiny model's weights written by :func:`save_torchvision_weights`)::

    >>> import os, tempfile
    >>> variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
    ...                          variable_shapes("resnet_tiny", 3))  # or trained ones
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> save_torchvision_weights(variables, path, "resnet_tiny")
    >>> loaded = load_torchvision_weights(path, "resnet_tiny")  # keeps the file's 3-class head
    >>> loaded["params"]["fc"]["kernel"].shape
    (64, 3)
    >>> loaded = load_torchvision_weights(path, "resnet_tiny", 200, key=jax.random.key(0))
    >>> loaded["params"]["fc"]["kernel"].shape  # a new 200-class head, the backbone loaded
    (64, 200)
  """
  return convert_torchvision_state_dict(
      read_state_dict(path), arch, num_classes, key=key, strict=strict, **options)


def to_torchvision_state_dict(variables: Mapping[str, Any], arch: str) -> dict[str, np.ndarray]:
  """Flax variables -> torchvision-named float32 NumPy arrays (the inverse mapping).

  VGG-GAP exports ``features.N``, ``conv6`` and ``fc``. ``num_batches_tracked`` is not
  written (``torch.nn.Module.load_state_dict`` fills it in).

  >>> variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
  ...                          variable_shapes("resnet_tiny", 3))  # or trained ones
  >>> state_dict = to_torchvision_state_dict(variables, "resnet_tiny")
  >>> state_dict["conv1.weight"].shape  # torch's [out, in, kh, kw]
  (8, 3, 3, 3)
  """
  factory.arch_family(arch)
  if not isinstance(variables, Mapping) or "params" not in variables:
    raise ValueError("`variables` must be a dict with a 'params' collection.")
  out = {}
  for collection in ("params", "batch_stats"):
    if collection not in variables:
      continue
    for path, value in traverse_util.flatten_dict(dict(variables[collection])).items():
      if (collection, path[-1]) not in _LEAF_TO_TORCH:
        raise ValueError(f"unexpected leaf {collection}/{'/'.join(path)} for arch {arch!r}.")
      arr = np.asarray(jax.device_get(value), dtype=np.float32)
      out[_torch_key(arch, collection, path)] = np.ascontiguousarray(_to_torch_layout(arr))
  return out


def save_torchvision_weights(variables: Mapping[str, Any], path: str | os.PathLike,
                             arch: str) -> None:
  """Writes ``to_torchvision_state_dict(variables, arch)`` to a ``.safetensors`` file.

  >>> import os, tempfile
  >>> variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
  ...                          variable_shapes("resnet_tiny", 3))  # or trained ones
  >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
  >>> save_torchvision_weights(variables, path, "resnet_tiny")
  >>> sorted(read_state_dict(path))[:3]
  ['bn1.bias', 'bn1.running_mean', 'bn1.running_var']
  """
  path = os.fspath(path)
  if os.path.splitext(path)[1].lower() != ".safetensors":
    raise ValueError(f"`path` must end in .safetensors, got {path!r}.")
  with _deps.extra("convert", "writing .safetensors weights"):
    from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  save_file(to_torchvision_state_dict(variables, arch), path)
