"""Lazy package attributes (PEP 562): a package's public names are imported on first access."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # (typing is not imported: it would double `import infocam_jax`'s cost)
if TYPE_CHECKING:
  from collections.abc import Callable, Mapping, Sequence
  from types import ModuleType
  from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], exports: Mapping[str, str],
                 public: Sequence[str], submodules: Sequence[str] = (),
                 extras: Mapping[str, str] | None = None,
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
  """``(__getattr__, __dir__)`` for ``package``.

  ``exports`` maps a public name to the submodule defining it; the value is
  cached in ``namespace`` (the package's ``globals()``) on first access.
  ``submodules`` are returned as modules. ``public`` is what ``dir()`` lists
  besides the submodules. ``extras`` maps a submodule to the extra it needs:
  without that extra installed, the access raises ``ImportError`` naming the
  ``pip install`` to run.
  """
  extras = dict(extras or {})

  def _import(module: str) -> ModuleType:
    extra = extras.get(module)
    if extra is None:
      return importlib.import_module(f"{package}.{module}")
    from infocam_jax import _deps  # pylint: disable=g-import-not-at-top
    feature = f"{package}.{module}"
    _deps.require(extra, feature)
    with _deps.extra(extra, feature):
      return importlib.import_module(feature)

  def __getattr__(name: str) -> Any:  # pylint: disable=invalid-name
    if name in submodules:
      return _import(name)
    module = exports.get(name)
    if module is None:
      raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(_import(module), name)
    namespace[name] = value
    return value

  def __dir__() -> list[str]:  # pylint: disable=invalid-name
    return sorted(set(public) | set(submodules))

  return __getattr__, __dir__
