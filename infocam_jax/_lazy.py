"""Lazy package attributes (PEP 562): a package's public names are imported on first access."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], exports: Mapping[str, str],
                 public: Sequence[str], submodules: Sequence[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
  """``(__getattr__, __dir__)`` for ``package``.

  ``exports`` maps a public name to the submodule defining it; the value is
  cached in ``namespace`` (the package's ``globals()``) on first access.
  ``submodules`` are returned as modules. ``public`` is what ``dir()`` lists
  besides the submodules.
  """
  def __getattr__(name: str) -> Any:  # pylint: disable=invalid-name
    if name in submodules:
      return importlib.import_module(f"{package}.{name}")
    module = exports.get(name)
    if module is None:
      raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{package}.{module}"), name)
    namespace[name] = value
    return value

  def __dir__() -> list[str]:  # pylint: disable=invalid-name
    return sorted(set(public) | set(submodules))

  return __getattr__, __dir__
