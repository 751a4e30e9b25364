"""Run code in a fresh Python process with N fake CPU devices (or as N processes).

The main pytest process keeps its single CPU device; multi-device checks run in
a subprocess started with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``.
Subprocesses also get ``--xla_backend_optimization_level=0``: on XLA:CPU it
cuts compile times ~4x for the tiny test models at no cost in step time, and
every comparison made by the tests is between programs compiled the same way.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from typing import Any, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST_COMPILE = "--xla_backend_optimization_level=0"


def subprocess_env(num_devices: int = 1, *, extra_xla_flags: str = "",
                   cache_dir: str | None = None, **extra: str) -> dict[str, str]:
  """Environment for a child JAX process with ``num_devices`` CPU devices."""
  env = dict(os.environ)
  # The caller's XLA_FLAGS (e.g. a CPU code-path variation the suite is run under) are kept.
  inherited = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                       if not f.startswith("--xla_force_host_platform_device_count="))
  env["XLA_FLAGS"] = " ".join(
      f for f in (f"--xla_force_host_platform_device_count={num_devices}", FAST_COMPILE,
                  inherited, extra_xla_flags) if f)
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  env["PYTHONUNBUFFERED"] = "1"
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if cache_dir:
    env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  env.update(extra)
  return env


def run_python(code: str, *, num_devices: int = 8, timeout: float = 600,
               env: dict[str, str] | None = None) -> dict[str, Any]:
  """Runs ``code`` in a child process; it must print one JSON line starting ``RESULT=``.

  Returns the decoded JSON; raises ``AssertionError`` with the child's output on
  failure.
  """
  proc = subprocess.run(
      [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
      timeout=timeout, env=env or subprocess_env(num_devices))
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT="):
      if proc.returncode:
        break
      return json.loads(line[len("RESULT="):])
  raise AssertionError(
      f"child failed (rc={proc.returncode}).\nstdout:\n{proc.stdout[-4000:]}\n"
      f"stderr:\n{proc.stderr[-6000:]}")


def wsol_command(config: str, workdir: str, overrides: Sequence[str] = ()) -> list[str]:
  """``python -m experiments.wsol --config=... --workdir=... --config.x=...``."""
  return [sys.executable, "-m", "experiments.wsol", f"--config={config}",
          f"--workdir={workdir}", *overrides]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def child_pids(pid: int) -> list[int]:
  """PIDs of the live processes whose parent is ``pid`` (Linux /proc)."""
  out = []
  for entry in os.listdir("/proc"):
    if entry.isdigit() and _stat(int(entry)) is not None:
      state, ppid = _stat(int(entry))
      if ppid == pid and state != "Z":
        out.append(int(entry))
  return out


def alive(pid: int) -> bool:
  """Whether ``pid`` is a live (not zombie) process."""
  st = _stat(pid)
  return st is not None and st[0] != "Z"


def wait_gone(pids, seconds: float = 30.0) -> list[int]:
  """Waits up to ``seconds`` for ``pids`` to end; returns those still alive."""
  import time  # pylint: disable=g-import-not-at-top
  deadline = time.time() + seconds
  while any(alive(p) for p in pids) and time.time() < deadline:
    time.sleep(0.05)
  return [p for p in pids if alive(p)]


def _stat(pid: int) -> tuple[str, int] | None:
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
  except OSError:
    return None
  return fields[0], int(fields[1])
