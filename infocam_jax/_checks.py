"""Argument checks shared by the public API.

Every check raises ``ValueError`` naming the argument and what was expected.
Shape and dtype checks are static and therefore also run under ``jax.jit``;
checks on *values* (a prior summing to one, labels in range) run only when the
value is concrete (a NumPy array or a committed ``jax.Array``) and are skipped
for tracers. Callers that want value checks inside ``jit`` use the
``jax.experimental.checkify`` helpers in the modules that need them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
  """True when ``x`` holds values (not a tracer inside jit/vmap/grad)."""
  return not isinstance(x, jax.core.Tracer)


def dtype_of(x: Any) -> np.dtype:
  return np.asarray(x).dtype if not hasattr(x, "dtype") else np.dtype(x.dtype)


def require_floating(x: Any, name: str) -> None:
  if not jnp.issubdtype(dtype_of(x), jnp.floating):
    raise ValueError(f"`{name}` must be a floating-point array, got dtype {dtype_of(x)}.")


def require_integer(x: Any, name: str) -> None:
  if not jnp.issubdtype(dtype_of(x), jnp.integer):
    raise ValueError(f"`{name}` must be an integer array, got dtype {dtype_of(x)}.")


def require_ndim(x: Any, ndim: int | tuple[int, ...], name: str, what: str = "") -> None:
  allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
  if np.ndim(x) not in allowed:
    shape = tuple(np.shape(x))
    want = " or ".join(str(n) for n in allowed)
    extra = f" ({what})" if what else ""
    raise ValueError(f"`{name}` must have {want} dimensions{extra}, got shape {shape}.")


def require_real(x: Any, name: str, what: str = "") -> None:
  """Floating or integer dtype (not bool); ``what`` describes the expected array."""
  dt = dtype_of(x)
  if dt == np.bool_ or not (jnp.issubdtype(dt, jnp.floating) or jnp.issubdtype(dt, jnp.integer)):
    extra = f" {what}" if what else ""
    raise ValueError(f"`{name}` must be a real (floating or integer) array{extra}, got dtype {dt}.")


def require_maps(maps: Any, ndim: int | None, layout: str, name: str = "maps"
                 ) -> tuple[int, ...]:
  """Real-valued score maps with non-empty spatial (last two) dimensions; returns the shape.

  ``ndim``: the exact number of dimensions, or None for "at least 2" (``[..., H, W]``).
  """
  require_real(maps, name, layout)
  if ndim is None:
    if np.ndim(maps) < 2:
      raise ValueError(f"`{name}` must have at least 2 dimensions {layout}, got shape "
                       f"{tuple(np.shape(maps))}.")
  else:
    require_ndim(maps, ndim, name, layout)
  shape = tuple(np.shape(maps))
  if min(shape[-2:]) < 1:
    raise ValueError(f"`{name}` must have non-empty spatial dimensions, got shape {shape}.")
  return shape


def require_labels_in_range(labels: Any, num_classes: int, name: str = "labels") -> None:
  """Value check: 0 <= labels < num_classes (skipped for tracers)."""
  if not is_concrete(labels):
    return
  lab = np.asarray(labels)
  if lab.size == 0:
    return
  lo, hi = int(lab.min()), int(lab.max())
  if lo < 0 or hi >= num_classes:
    raise ValueError(
        f"`{name}` must lie in [0, {num_classes - 1}] (num_classes={num_classes}), "
        f"got values in [{lo}, {hi}].")


def parse_size(size: Any, name: str = "size") -> tuple[int, int]:
  """An int ``s`` (square) or a pair ``(height, width)`` of positive ints -> ``(h, w)``."""
  if isinstance(size, (int, np.integer)):
    size = (int(size), int(size))
  try:
    h, w = (int(s) for s in size)
    ok = all(float(s) == int(s) for s in size)
  except (TypeError, ValueError):
    raise ValueError(f"`{name}` must be an int or a pair (height, width) of positive ints, "
                     f"got {size!r}.") from None
  if not ok or h < 1 or w < 1:
    raise ValueError(f"`{name}` must be positive ints (height, width), got {size!r}.")
  return h, w
