"""Optional dependencies: which extra installs what, and the error when one is missing.

``pip install infocam-jax`` installs the core (jax, numpy, chex): the
estimators, ``GaussianMixture`` and the CAM / infoCAM maps. Every other part
needs an extra (``pip install 'infocam-jax[EXTRA]'``); a module that needs one
imports its third-party packages under :func:`extra`, which turns a missing
package into an ``ImportError`` naming the command to run.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

# extra -> the top-level modules it provides (those the package imports).
EXTRAS: dict[str, tuple[str, ...]] = {
    "wsol": ("numba", "flax"),
    "models": ("flax",),
    "convert": ("flax", "safetensors"),
    "train": ("flax", "optax", "orbax.checkpoint", "ml_collections", "absl", "tqdm"),
    "data": ("tensorflow_datasets", "importlib_resources", "grain", "array_record", "absl", "numba",
             "PIL", "scipy"),
    "plot": ("matplotlib",),
}
_ALL_OPTIONAL = frozenset(m.split(".")[0] for mods in EXTRAS.values() for m in mods)


class MissingExtraError(ImportError):
  """A feature was used whose optional dependencies are not installed.

  The message names the missing package and the ``pip install`` that adds it.

  >>> from infocam_jax._deps import MissingExtraError
  >>> str(MissingExtraError("infocam_jax.plotting", "matplotlib", "plot"))
  "infocam_jax.plotting needs matplotlib, which is not installed: pip install 'infocam-jax[plot]'"
  """

  def __init__(self, feature: str, module: str, extra: str):
    super().__init__(f"{feature} needs {module}, which is not installed: "
                     f"pip install 'infocam-jax[{extra}]'", name=module)
    self.extra = extra


def install_hint(extra: str) -> str:
  """The command that installs ``extra``: ``pip install 'infocam-jax[EXTRA]'``."""
  if extra not in EXTRAS and extra != "all":
    raise ValueError(f"`extra` must be one of {sorted(EXTRAS) + ['all']}, got {extra!r}.")
  return f"pip install 'infocam-jax[{extra}]'"


@contextlib.contextmanager
def extra(name: str, feature: str) -> Iterator[None]:
  """Imports inside the block that fail for a missing optional package raise
  :class:`MissingExtraError` naming ``pip install 'infocam-jax[name]'``.

  A missing module that no extra provides (a broken install) propagates as is.
  """
  install_hint(name)  # validates the name
  try:
    yield
  except ModuleNotFoundError as e:
    top = (e.name or "").split(".")[0]
    if top in _ALL_OPTIONAL and not isinstance(e, MissingExtraError):
      raise MissingExtraError(feature, top, name) from e
    raise


def require(name: str, feature: str) -> None:
  """Raises :class:`MissingExtraError` unless every module of extra ``name`` is importable.

  Checks without importing (``importlib.util.find_spec``), so it is cheap.
  """
  install_hint(name)
  for module in EXTRAS[name]:
    try:
      found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent is missing
      found = False
    if not found:
      raise MissingExtraError(feature, module.split(".")[0], name)
