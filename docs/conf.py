"""Sphinx configuration of the infocam-jax reference (built by tests/test_docs.py, warnings as errors).

The API pages are generated here from the package's own tables (``infocam_jax._EXPORTS``,
``_BOX_MODULES`` and the sub-packages' ``__all__``), so a name added, removed or moved in the
package is added, removed or moved in the reference without editing the docs.
"""

from __future__ import annotations

import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import infocam_jax  # noqa: E402  pylint: disable=wrong-import-position

project = "infocam-jax"
author = "infocam-jax authors"
copyright = "infocam-jax authors, Apache-2.0"  # pylint: disable=redefined-builtin
release = version = infocam_jax.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "results"]  # docs/results: recorded result files of the tables
html_theme = "furo"
html_title = f"infocam-jax {release}"
myst_heading_anchors = 3
autodoc_typehints = "signature"
autodoc_type_aliases = {"ArrayLike": "ArrayLike", "DTypeLike": "DTypeLike"}
autodoc_member_order = "bysource"
autodoc_default_options = {"members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# The README is included in pieces: its relative links point into the repository.
suppress_warnings = ["myst.header", "myst.xref_missing"]
nitpicky = False

# -- API pages, generated from the package's tables ------------------------------------------

# (page, title, intro, [(module, names)])
_top = infocam_jax._EXPORTS  # pylint: disable=protected-access
_box_modules = set(infocam_jax._BOX_MODULES.values())  # pylint: disable=protected-access


def _names(modules):
  return [(f"infocam_jax.{m}", [n for n, mm in _top.items() if mm == m]) for m in modules]


def _package(name):
  pkg = importlib.import_module(name)
  out = {}
  for n in pkg.__all__:
    obj = getattr(pkg, n)
    module = getattr(obj, "__module__", None) if callable(obj) else None
    out.setdefault(module or name, []).append(n)
  return sorted(out.items())


PAGES = [
    ("estimators", "Estimators (core)",
     "Point-wise and mutual-information estimates from logits, PC-softmax (nats). "
     "Importable as ``infocam_jax.NAME``.", _names(["estimators", "gaussian"])),
    ("cam", "Class activation maps (core)",
     "CAM, infoCAM, Grad-CAM and map post-processing. Importable as ``infocam_jax.NAME``.",
     _names(["cam"])),
    ("boxes", "Boxes and localisation metrics ([wsol])",
     "Boxes from maps (all thresholds in one pass) and the streaming MaxBoxAcc / Top-1 Loc "
     "metric. Needs ``pip install 'infocam-jax[wsol]'``. Importable as ``infocam_jax.NAME``.",
     _names(sorted(_box_modules))),
    ("models", "Backbones ([models])", "``infocam_jax.models``. Needs the ``[models]`` extra "
     "(``[convert]`` for .safetensors weights).", "infocam_jax.models"),
    ("data", "Data ([data])", "``infocam_jax.data``. Needs the ``[data]`` extra.",
     "infocam_jax.data"),
    ("train", "Training ([train])", "``infocam_jax.train``. Needs the ``[train]`` extra.",
     "infocam_jax.train"),
]


def _write_api_pages(app):  # pylint: disable=unused-argument
  out_dir = os.path.join(app.srcdir, "api")
  os.makedirs(out_dir, exist_ok=True)
  index = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
  for page, title, intro, groups in PAGES:
    if isinstance(groups, str):
      groups = _package(groups)
    lines = [title, "=" * len(title), "", intro, ""]
    for module, names in groups:
      lines += [f".. currentmodule:: {module}", ""]
      for n in names:
        obj = getattr(importlib.import_module(module), n)
        if isinstance(obj, type):
          lines += [f".. autoclass:: {n}", "   :members:", "   :exclude-members: "
                    "tree_flatten, tree_unflatten, replace", ""]
        elif callable(obj):
          lines += [f".. autofunction:: {n}", ""]
        else:  # a constant: its type's docstring is not its documentation
          value = repr(obj)
          value = value if len(value) <= 300 else value[:300] + " ..."
          lines += [f".. py:data:: {n}", f"   :type: {type(obj).__name__}", "",
                    f"   Constant of ``{module}``::", "", f"      {value}", ""]
    text = "\n".join(lines)
    path = os.path.join(out_dir, f"{page}.rst")
    if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
      with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    index.append(f"   {page}")
  with open(os.path.join(out_dir, "index.rst"), "w", encoding="utf-8") as f:
    f.write("\n".join(index) + "\n")


def setup(app):
  app.connect("builder-inited", _write_api_pages)
