"""The light core: `pip install infocam-jax` (no extras) is enough for the estimators and maps.

Two checks, both offline:

* fast: a subprocess whose import system refuses every optional dependency (a
  meta-path hook), as on a machine where only jax, numpy and chex are installed;
* slow: the built wheel, unpacked into a fresh virtual environment that sees only
  the core's distributions (jax, jaxlib, numpy, chex and what they require,
  linked from this environment), so a module of an extra is truly absent.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = ("jax", "jaxlib", "numpy", "chex")
OPTIONAL = ("flax", "tensorflow_datasets", "numba", "matplotlib", "optax", "orbax", "grain",
            "ml_collections", "safetensors", "PIL", "tqdm", "tensorflow", "torch", "sklearn",
            "skimage", "cv2", "array_record")

# Runs in the restricted interpreter; prints a JSON report.
USER_CODE = textwrap.dedent("""
    import importlib, json, sys
    import jax, jax.numpy as jnp, numpy as np
    import infocam_jax as ij

    logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    labels = jnp.array([0, 1])
    prior = ij.prior_from_counts(jnp.array([50, 30, 20]))
    report = {
        "pmi": np.asarray(ij.pmi(logits, labels, prior, objective="pc_softmax")).tolist(),
        "mi": float(ij.mutual_information(logits, labels).estimate),
        "loss": np.asarray(ij.pc_softmax_cross_entropy_with_integer_labels(
            logits, labels, prior)).tolist(),
        "loss_dist": np.asarray(ij.pc_softmax_cross_entropy(
            logits, jax.nn.one_hot(labels, 3), prior)).tolist(),
        "infocam": list(ij.infocam(jnp.ones((2, 6, 6, 4)), jnp.ones((4, 3)), labels).shape),
        "gaussian": float(ij.GaussianMixture.paper(dim=1).mutual_information(
            jax.random.key(0), 1000).estimate) > 0,
    }
    errors = {}
    for what, get in [
        ("boxes_from_maps", lambda: ij.boxes_from_maps),
        ("max_box_accuracy", lambda: ij.max_box_accuracy),
        ("models", lambda: importlib.import_module("infocam_jax.models")),
        ("data", lambda: importlib.import_module("infocam_jax.data")),
        ("train", lambda: importlib.import_module("infocam_jax.train")),
        ("train.steps", lambda: importlib.import_module("infocam_jax.train.steps")),
        ("plotting", lambda: ij.plotting),
        ("evaluators.wsol", lambda: importlib.import_module("infocam_jax.evaluators.wsol")),
    ]:
      try:
        get()
        errors[what] = None
      except ImportError as e:
        errors[what] = str(e)
    report["errors"] = errors
    report["loaded"] = sorted(m for m in OPTIONAL if m in sys.modules)
    try:
      import experiments  # the wheel must not install a top-level `experiments`
      report["experiments"] = experiments.__file__
    except ImportError:
      report["experiments"] = None
    print(json.dumps(report))
    """)

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = set(OPTIONAL)
    class Block(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
          raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
    sys.meta_path.insert(0, Block())
    """)

WANT_EXTRA = {"boxes_from_maps": "wsol", "max_box_accuracy": "wsol", "models": "models",
              "data": "data", "train": "train", "train.steps": "train", "plotting": "plot",
              "evaluators.wsol": "wsol"}


def _check_report(out: str, installed: bool) -> None:
  report = json.loads(out.strip().splitlines()[-1])
  # The numbers themselves are the estimators' business (test_estimators.py); here they
  # must exist and be consistent: the integer and one-hot forms of the loss agree, and
  # PC-softmax loss = -PMI.
  assert report["loss"] == pytest.approx([-v for v in report["pmi"]], abs=1e-6)
  assert report["loss_dist"] == pytest.approx(report["loss"], abs=1e-6)
  # log softmax_y + log 3 by hand: (0.9287 + 0.4184) / 2
  assert report["mi"] == pytest.approx(0.6736, abs=1e-3)
  assert report["infocam"][0] == 2 and report["gaussian"]
  for what, extra in WANT_EXTRA.items():
    msg = report["errors"][what]
    assert msg is not None, f"{what} imported without its extra [{extra}]"
    assert f"pip install 'infocam-jax[{extra}]'" in msg, (what, msg)
  assert report["loaded"] == [], report["loaded"]
  if installed:  # (from a checkout, experiments/ is importable on purpose)
    assert report["experiments"] is None, report["experiments"]


def test_core_works_with_every_optional_dependency_blocked(tmp_path):
  """The estimators, GaussianMixture and infocam run when no optional package can be
  imported; each extra's part raises an ImportError naming its `pip install`."""
  code = (f"OPTIONAL = {OPTIONAL!r}\n" + BLOCKER + USER_CODE)
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  _check_report(proc.stdout, installed=False)


def _requirement_closure(names):
  seen, todo = {}, list(names)
  while todo:
    name = todo.pop()
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
      continue
    dist = md.distribution(name)
    seen[key] = dist
    for req in dist.requires or ():
      if "extra ==" in req or "extra==" in req:
        continue
      if ";" in req and "python_version" in req and "<" in req.split(";")[1]:
        continue  # back-ports for older Pythons
      todo.append(re.match(r"[A-Za-z0-9_.-]+", req).group(0))
  return seen


def _top_level_paths(dist):
  """The site-packages entries (packages, modules, .libs folders) a distribution installed."""
  tops = set()
  for f in dist.files or ():
    first = f.parts[0]
    if first in ("..", "__pycache__") or first.endswith(".dist-info"):
      continue
    tops.add(first)
  base = dist.locate_file("")
  return [os.path.join(base, t) for t in sorted(tops)] + [
      os.path.join(base, d) for d in os.listdir(base)
      if d.endswith(".dist-info") and d.split("-")[0].lower().replace("_", "-")
      == dist.metadata["Name"].lower().replace("_", "-")]


@pytest.mark.slow
def test_built_wheel_in_a_fresh_core_only_environment(tmp_path):
  """Build the wheel; it holds `infocam_jax` only (with py.typed and the LICENSE) and
  requires only the core. Unpacked into a new venv that can see nothing but the core's
  distributions, the estimators and maps work and every extra's part names its install."""
  wheels = tmp_path / "wheels"
  subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                  "-w", str(wheels), REPO], check=True, capture_output=True, timeout=300)
  (wheel,) = list(wheels.glob("infocam_jax-*.whl"))
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"infocam_jax"}, tops
    assert "infocam_jax/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in requires) == sorted(CORE)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    z.extractall(site)  # a pure-Python wheel installs by unpacking (no dependencies)
  farm = tmp_path / "core-deps"  # links to the core's distributions only
  farm.mkdir()
  for dist in _requirement_closure(CORE).values():
    for path in _top_level_paths(dist):
      target = farm / os.path.basename(path)
      if os.path.exists(path) and not target.exists():
        os.symlink(path, target)
  (site / "core_deps.pth").write_text(str(farm) + "\n")
  code = f"OPTIONAL = {OPTIONAL!r}\n" + USER_CODE
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  _check_report(proc.stdout, installed=True)
  where = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import infocam_jax; print(infocam_jax.__file__)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
  assert where.stdout.strip().startswith(str(site)), where.stdout
