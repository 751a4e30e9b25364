"""The package surface: every advertised name resolves, and importing stays light."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import infocam_jax

PACKAGES = ("infocam_jax", "infocam_jax.models", "infocam_jax.data", "infocam_jax.train")
ACRONYM_CLASSES = frozenset({"ADL", "MLP", "VGGGAP"})  # classes whose names are all capitals


def _kind(name: str) -> str:
  """What the project's naming says a public name is: ``CONSTANT``, ``Class`` or ``function``."""
  if name.isupper() and name not in ACRONYM_CLASSES:
    return "constant"
  return "class" if name[0].isupper() else "function"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_what_its_name_says(package):
  """Lower-case names are functions, CamelCase names classes (``...Error``: exceptions),
  UPPER_CASE names non-empty constant data; functions and classes are defined inside
  the package and carry a docstring."""
  pkg = importlib.import_module(package)
  assert pkg.__all__, package
  for name in pkg.__all__:
    if name == "__version__":
      assert isinstance(pkg.__version__, str) and pkg.__version__.count(".") == 2
      continue
    obj = getattr(pkg, name)
    kind = _kind(name)
    where = f"{package}.{name}"
    if kind == "constant":
      assert isinstance(obj, (str, tuple, dict, frozenset)) and len(obj) > 0, where
      continue
    if kind == "class":
      assert inspect.isclass(obj), f"{where} is {type(obj).__name__}, expected a class"
      if name.endswith("Error"):
        assert issubclass(obj, Exception), where
    else:
      assert inspect.isfunction(obj), f"{where} is {type(obj).__name__}, expected a function"
    assert obj.__module__.startswith("infocam_jax."), (where, obj.__module__)
    assert obj.__name__ == name, where
    assert inspect.getdoc(obj), f"{where} has no docstring"


def test_top_level_names_come_from_the_documented_modules():
  """Each lazily exported name is the object defined in the module ``_EXPORTS`` names."""
  for name, module in infocam_jax._EXPORTS.items():  # pylint: disable=protected-access
    defining = importlib.import_module(f"infocam_jax.{module}")
    assert getattr(infocam_jax, name) is getattr(defining, name), name
    if _kind(name) != "constant":
      assert getattr(infocam_jax, name).__module__ == defining.__name__, name
  assert set(infocam_jax.__all__) == set(infocam_jax._EXPORTS) | {"__version__"}  # pylint: disable=protected-access
  for sub in PACKAGES[1:]:
    assert inspect.ismodule(importlib.import_module(sub)), sub


def test_unknown_attribute_is_an_attribute_error():
  try:
    infocam_jax.no_such_name  # pylint: disable=pointless-statement
  except AttributeError as e:
    assert "no_such_name" in str(e)
  else:
    raise AssertionError("expected AttributeError")


def test_import_needs_neither_tensorflow_nor_tfds():
  """`import infocam_jax` (and using the estimators) must not pull in tfds or TF;
  `infocam_jax.data` may import tfds but never TensorFlow."""
  code = (
      "import sys, infocam_jax as ij, jax.numpy as jnp\n"
      "ij.pmi(jnp.zeros((2, 3)), jnp.array([0, 1]))\n"
      "assert 'tensorflow_datasets' not in sys.modules, 'tfds imported'\n"
      "import infocam_jax.data, infocam_jax.models, infocam_jax.train\n"
      "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
  subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("package", ["infocam_jax", "infocam_jax.train", "infocam_jax.wsol"])
def test_type_checkers_see_exactly_the_lazy_exports(package):
  """The ``if TYPE_CHECKING:`` imports (what pyright/mypy and IDEs read) name every lazily
  exported name from the module ``_EXPORTS`` gives, and nothing else."""
  import ast  # pylint: disable=g-import-not-at-top
  pkg = importlib.import_module(package)
  tree = ast.parse(inspect.getsource(pkg))
  seen = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
      for stmt in node.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module != package:
          for alias in stmt.names:
            seen[alias.name] = stmt.module
  want = {name: f"{package}.{module}" for name, module in pkg._EXPORTS.items()}  # pylint: disable=protected-access
  assert seen == want


def test_import_is_light():
  """`import infocam_jax` loads neither jax nor numpy (milliseconds; BUILD_NOTES "Dependencies"
  has the measured times): they load on first use of a name."""
  code = ("import sys, infocam_jax\n"
          "heavy = [m for m in ('jax', 'numpy', 'flax', 'tensorflow_datasets', 'numba') "
          "if m in sys.modules]\n"
          "assert not heavy, heavy\n"
          "infocam_jax.pmi\n"
          "assert 'jax' in sys.modules\n")
  subprocess.run([sys.executable, "-c", code], check=True)
