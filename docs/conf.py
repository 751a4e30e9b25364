"""Sphinx configuration of the infocam-jax reference (built by tests/test_docs.py, warnings as errors).

The API pages are generated here from the package's own tables (``infocam_jax._EXPORTS``,
``_BOX_MODULES`` and the sub-packages' ``__all__``), so a name added, removed or moved in the
package is added, removed or moved in the reference without editing the docs.
"""

from __future__ import annotations

import importlib
import os
import re
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
exclude_patterns = ["_build", "results", "_generated"]  # docs/results: recorded result files of the tables
html_theme = "furo"
html_title = f"infocam-jax {release}"
myst_heading_anchors = 3
autodoc_typehints = "signature"
autodoc_type_aliases = {"ArrayLike": "ArrayLike", "DTypeLike": "DTypeLike"}
autodoc_member_order = "bysource"
autodoc_default_options: dict[str, object] = {}  # members are listed per class (:members:)
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields: autodoc lists the members themselves
# The README is included in pieces: its relative links point into the repository.
suppress_warnings = ["myst.header", "myst.xref_missing"]
nitpicky = False

# -- API pages, generated from the package's tables ------------------------------------------

# (page, title, intro, [(module, names)])
_top = infocam_jax._EXPORTS  # pylint: disable=protected-access


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
     "``infocam_jax.wsol``: boxes from maps (all thresholds in one pass), the box conventions "
     "(see :doc:`../conventions`), the ground-truth transforms of each protocol and the "
     "streaming MaxBoxAcc / Top-1 Loc metric. Needs ``pip install 'infocam-jax[wsol]'``. "
     "Also importable as ``infocam_jax.NAME`` (except ``protocol_gt_boxes``). The command "
     "line ``infocam-wsol-eval`` is described in :doc:`../evaluator`.", "infocam_jax.wsol"),
    ("models", "Backbones ([models])", "``infocam_jax.models``. Needs the ``[models]`` extra "
     "(``[convert]`` for .safetensors weights).", "infocam_jax.models"),
    ("data", "Data ([data])", "``infocam_jax.data``. Needs the ``[data]`` extra.",
     "infocam_jax.data"),
    ("train", "Training ([train])", "``infocam_jax.train``. Needs the ``[train]`` extra.",
     "infocam_jax.train"),
    ("evaluators", "Classification evaluation ([train])",
     "``infocam_jax.evaluators.classification``: predictions, accuracies (percent) and the MI "
     "readings (nats) of a trained classifier.", "infocam_jax.evaluators.classification"),
    ("wsol_methods", "WSOL map methods ([wsol], [models])",
     "``infocam_jax.evaluators.cam_methods``: the CAM / infoCAM / Grad-CAM method registry, the "
     "predict function giving a network's logits and every method's map from one forward pass, "
     "the baselines' maps.", "infocam_jax.evaluators.cam_methods"),
    ("wsol_evaluator", "WSOL evaluation of a network ([wsol], [train])",
     "``infocam_jax.evaluators.wsol``: one streaming pass of a split through the box metric of "
     "every protocol, from a predict function (accuracies in percent, MI in nats). For saved "
     "score maps use the command line (:doc:`../evaluator`).", "infocam_jax.evaluators.wsol"),
    ("seeds", "Statistics over seeds (core)",
     "``infocam_jax.seeds``: mean ± sample std over seeds and paired differences, the rule of "
     "every results table.", "infocam_jax.seeds"),
    ("mibench", "MI benchmark tasks (core)",
     "``infocam_jax.mibench``: discrete-label MI tasks with exact per-sample PMI and true "
     "I(X;Y) in nats.", "infocam_jax.mibench"),
    ("plotting", "Figures ([plot])", "``infocam_jax.plotting``. Needs the ``[plot]`` extra.",
     "infocam_jax.plotting"),
]


def _short(v, depth=0):
  """A readable value: functions by name, long nested reprs by their type, dicts abridged."""
  if callable(v) and hasattr(v, "__name__"):
    return v.__name__
  if isinstance(v, dict) and depth < 2:
    return "{" + ", ".join(f"{k!r}: {_short(x, depth + 1)}" for k, x in v.items()) + "}"
  text = repr(v)
  return text if depth == 0 or len(text) <= 60 else f"{type(v).__name__}(...)"


def _constant_text(obj):
  text = _short(obj)
  return text if len(text) <= 600 else text[:600] + " ..."


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
          value = _constant_text(obj)
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


def _write_evaluator_flags(app):
  """``infocam-wsol-eval --help``, from the parser itself, for the evaluator guide."""
  from infocam_jax.wsol import cli  # pylint: disable=import-outside-toplevel
  parser = cli.build_parser()
  parser.prog = "infocam-wsol-eval"
  os.environ.setdefault("COLUMNS", "100")  # argparse wraps to the terminal width
  text = "```text\n" + parser.format_help().rstrip() + "\n```\n"
  path = os.path.join(app.srcdir, "_generated", "evaluator_help.md")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
    with open(path, "w", encoding="utf-8") as f:
      f.write(text)


def _drop_tuple_field_aliases(app, what, name, obj, options, lines):  # pylint: disable=unused-argument
  """NamedTuple fields are described in their class's docstring: their entries keep the type
  but not Python's placeholder text "Alias for field number N"."""
  if len(lines) <= 2 and lines and lines[0].startswith("Alias for field number"):
    lines.clear()


def _alias_names(app, what, name, obj, options, signature, return_annotation):  # pylint: disable=unused-argument
  """Sphinx prints an aliased type inside a union as ``TypeAliasForwardRef('ArrayLike')``:
  show the alias's name, as it does outside unions."""
  fix = lambda s: re.sub(r"TypeAliasForwardRef\('(\w+)'\)", r"\1", s) if s else s
  return fix(signature), fix(return_annotation)


def setup(app):
  app.connect("autodoc-process-signature", _alias_names)
  app.connect("autodoc-process-docstring", _drop_tuple_field_aliases)
  app.connect("builder-inited", _write_api_pages)
  app.connect("builder-inited", _write_evaluator_flags)
