"""Output helpers shared by the training loop and the experiments.

JSON files written atomically (NumPy values converted; NaN is not valid JSON:
a NaN that reaches the encoder as a float, including ``np.float64``, which *is*
a Python float, is an error, while ``float32``/``float16`` NaN scalars, which
go through ``json_default``, become ``null``), console lines that do not break
tqdm bars, and the version/device records stored next to results.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any

import numpy as np


def json_default(o: Any) -> Any:
  """``json.dump``'s ``default`` for NumPy integers, non-float64 floats (NaN -> None) and arrays."""
  if isinstance(o, np.integer):
    return int(o)
  if isinstance(o, np.floating):
    return None if np.isnan(o) else float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2,
               sort_keys: bool = False) -> None:
  """Writes ``obj`` to ``path`` atomically (temporary file + rename); creates the directory."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=indent, sort_keys=sort_keys, default=json_default, allow_nan=False)
  os.replace(tmp, path)


def echo(message: str) -> None:
  """Prints a line without breaking a tqdm progress bar, and flushes."""
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  tqdm.write(message)
  sys.stdout.flush()


def versions(*optional: str) -> dict[str, str]:
  """Versions of Python and the core stack, plus the ``optional`` modules that are importable."""
  import flax, jax, jaxlib, optax  # pylint: disable=g-import-not-at-top,multiple-imports
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  out = {"python": platform.python_version(), "jax": jax.__version__,
         "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__,
         "orbax-checkpoint": getattr(ocp, "__version__", "?"), "numpy": np.__version__}
  for name in optional:
    try:
      out[name] = getattr(__import__(name), "__version__", "?")
    except ImportError:
      pass
  return out


def host_cpu() -> dict[str, Any]:
  """The host CPU as far as it changes XLA:CPU's float rounding: model, vector ISA, cores, flags.

  ``isa`` is the widest x86 vector extension the CPU reports (``"avx512"``,
  ``"avx2"``, ...; ``platform.machine()`` elsewhere), ``amx`` whether it has
  AMX tiles, ``cores`` the cores this process may run on (XLA sizes its thread
  pool, and so its reduction order, by them), ``xla_flags`` the ``XLA_FLAGS`` in force (they change the code
  path too). Two runs of the same training can differ in their last digits when
  any of these differ: the results files carry this record so that every table
  can name its machine.

  >>> sorted(host_cpu())
  ['amx', 'cores', 'isa', 'model', 'xla_flags']
  """
  model, cpu_flags = platform.processor() or platform.machine(), set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          model = value.strip()
        elif key.strip() == "flags":
          cpu_flags = set(value.split())
          break
  except OSError:
    pass
  isa = next((name for name, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"),
                                      ("sse4_2", "sse4_2")) if flag in cpu_flags),
             platform.machine())
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return {"model": model, "isa": isa, "amx": "amx_tile" in cpu_flags, "cores": cores,
          "xla_flags": os.environ.get("XLA_FLAGS", "")}


def device_info() -> dict[str, Any]:
  """The JAX backend, device kind and counts, and the host's CPU (``host_cpu``)."""
  import jax  # pylint: disable=g-import-not-at-top
  return {"platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
          "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
          "process_count": jax.process_count(), "host_cpu_count": os.cpu_count(),
          "host_cpu": host_cpu(), "evaluation_device": str(jax.local_devices()[0])}
