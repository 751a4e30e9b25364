"""``infocam_jax/train/workers.py``: pool workers stop cleanly and never outlive their parent.

Each case runs a small parent program in a subprocess (no JAX: the tasks are
sleep loops that stand in for training runs) and kills or signals it the way a
user or a scheduler would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

try:
  import multidevice  # tests/ on sys.path
except ImportError:  # pragma: no cover
  from tests import multidevice

TASKS = '''
import os, time
from infocam_jax.train import workers as _workers

def pid_then_sleep(seconds):
  _workers.send(os.getpid())  # to the parent's on_message
  time.sleep(seconds)

def run_until_stopped(tag, out_dir):
  """A stand-in for a training run: polls `stop` each step, "checkpoints" when asked."""
  stop = _workers.stop_event()
  with _workers.busy():
    _workers.echo(f"started {tag} {os.getpid()}")  # one write: lines never interleave
    for step in range(6000):
      if stop.is_set():
        time.sleep(1.0)  # a checkpoint takes a while
        open(os.path.join(out_dir, f"{tag}.ckpt"), "w").write(str(step))
        return f"{tag} stopped at {step}"
      time.sleep(0.01)
  return f"{tag} finished"
'''

PARENT = '''
import os, sys
import tasks
from infocam_jax.train import workers as _workers
mode, out_dir = sys.argv[1], sys.argv[2]
if mode == "plain":  # synthetic_mi: no stop event, the workers just exit with the parent
  pids = []
  def got(pid):
    pids.append(pid)
    if len(pids) == 2:
      print("pids", *sorted(pids), flush=True)
  _workers.map_in_workers(tasks.pid_then_sleep, [(600,), (600,)], 2, on_message=got)
else:  # pc_softmax: stop event, one clean stop
  for r in _workers.map_in_workers(tasks.run_until_stopped, [("a", out_dir), ("b", out_dir)], 2,
                                   clean_stop=True):
    print("result", r, flush=True)
print("parent done", flush=True)
'''


def _start(tmp_path, mode):
  (tmp_path / "tasks.py").write_text(TASKS)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), multidevice.REPO]),
             PYTHONUNBUFFERED="1")
  # Its own session: the parent and its workers form one process group, like a terminal job.
  return subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT), mode, str(tmp_path)],
                          cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True)


_RECORDS = {"started": r"started \w+ \d+", "pids": r"pids \d+ \d+"}


def _read_until(proc, kind, count):
  """The first ``count`` records of ``kind`` on the parent's stdout, as word lists."""
  found = []
  while len(found) < count:
    line = proc.stdout.readline()
    assert line, f"parent ended early: {proc.communicate()[1][-3000:]}"
    found += [m.split() for m in re.findall(_RECORDS[kind], line)]
  return found


def test_plain_workers_exit_when_the_parent_is_killed(tmp_path):
  proc = _start(tmp_path, "plain")
  pids = [int(p) for p in _read_until(proc, "pids", 1)[0][1:]]
  assert len(pids) == 2
  proc.kill()
  proc.wait()
  assert multidevice.wait_gone(pids, 5.0) == [], "orphaned workers kept running"


def test_orphaned_workers_checkpoint_then_exit(tmp_path):
  proc = _start(tmp_path, "stop")
  started = _read_until(proc, "started", 2)
  proc.kill()  # SIGKILL: no handler in the parent runs
  proc.wait()
  assert multidevice.wait_gone([int(s[2]) for s in started]) == []
  assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["a.ckpt", "b.ckpt"]


def test_ctrl_c_stops_every_run_once(tmp_path):
  proc = _start(tmp_path, "stop")
  _read_until(proc, "started", 2)
  os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: every process of the job
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0, err[-3000:]
  assert sorted(l.split()[1] for l in out.splitlines() if l.startswith("result")) == ["a", "b"]
  assert out.count("stopped at") == 2 and "parent done" in out
  assert "Signal 2" in err


def test_sigterm_to_the_parent_only_stops_every_run(tmp_path):
  proc = _start(tmp_path, "stop")
  _read_until(proc, "started", 2)
  proc.send_signal(signal.SIGTERM)  # `kill PID`
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0, err[-3000:]
  assert out.count("stopped at") == 2 and "Signal 15" in err


def test_a_signal_to_one_worker_stops_them_all(tmp_path):
  proc = _start(tmp_path, "stop")
  started = _read_until(proc, "started", 2)
  os.kill(int(started[0][2]), signal.SIGTERM)  # a scheduler signalling a single process
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0, err[-3000:]
  assert out.count("stopped at") == 2, out + err[-3000:]


def test_a_second_signal_aborts_at_once(tmp_path):
  proc = _start(tmp_path, "stop")
  started = _read_until(proc, "started", 2)
  proc.send_signal(signal.SIGTERM)
  time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)  # the user insists: no waiting for the checkpoints
  out, err = proc.communicate(timeout=60)
  assert proc.returncode != 0 and "KeyboardInterrupt" in err, (proc.returncode, err[-2000:])
  assert multidevice.wait_gone([int(s[2]) for s in started], 5.0) == []
  assert list(tmp_path.glob("*.ckpt")) == []  # both workers ended inside their 1 s "save"
  assert "stopped at" not in out
