"""Worker processes for experiments that spread runs over spawned processes (one pool).

Two guarantees, whatever way a run ends:

* **No orphans.** A worker whose parent died (SIGKILL, OOM killer, a plain
  ``kill`` of the parent) does not go on computing for nobody and does not
  wait for work forever (a pool worker holds its own end of the task pipe, so
  it never sees EOF): it stops within 0.2 s, after checkpointing when it has a
  run in progress and the pool was started with a ``stop`` event.
* **One clean stop** (only with ``stop``). The first SIGTERM/SIGINT, whether
  it reaches the parent only (``kill PID``), every process of the foreground
  group (a terminal's Ctrl-C) or a single worker (a scheduler), sets the shared
  ``stop`` event, which the training loop polls once per step
  (``fit(stop_requested=...)``): every run checkpoints at its next step and
  stops, runs not started are skipped. The request travels as an event, not as
  a forwarded signal, so no worker sees a second signal (which would abort it
  mid-save). The parent's second signal sets ``abort``: the workers exit at once.

Signal handlers only flip plain flags: the events' locks are not reentrant, and
a handler that ran while its own thread held one (inside ``stop.is_set()``)
would deadlock; the watch thread moves the flag into ``stop``.

Usage: ``map_in_workers(fn, tasks, n, clean_stop=True)`` in the parent (the one
pool of every experiment); in the worker's task ``with busy(): ...`` around the
work, ``stop_event()`` for the event to poll, ``send(value)`` for the parent's
``on_message`` (progress).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import queue as queue_lib
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Sequence

POLL_S = 0.2
_STATE: dict[str, Any] = {"stop": None, "abort": None, "queue": None}
_BUSY = threading.Event()
_SIGNALLED = [False]


def init_worker(parent_pid: int, stop: Any = None, abort: Any = None) -> None:
  """Pool initializer (runs in each worker): the parent watch, and with ``stop`` the clean stop."""
  _STATE.update(stop=stop, abort=abort)
  if stop is not None:

    def handle(*_):
      _SIGNALLED[0] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
      signal.signal(sig, handle)

  def watch() -> None:
    while True:
      if abort is not None and abort.is_set():
        os._exit(128 + signal.SIGINT)  # pylint: disable=protected-access
      orphan = os.getppid() != parent_pid
      if stop is not None and (orphan or _SIGNALLED[0]):
        stop.set()
      if orphan and (stop is None or not _BUSY.is_set()):
        os._exit(1)  # pylint: disable=protected-access
      time.sleep(POLL_S)

  threading.Thread(target=watch, name="worker-watch", daemon=True).start()


def _init(parent_pid: int, stop: Any, abort: Any, queue: Any) -> None:
  init_worker(parent_pid, stop, abort)
  _STATE["queue"] = queue


def send(value: Any) -> None:
  """In a worker of ``map_in_workers``: hands ``value`` to the parent's ``on_message``."""
  _STATE["queue"].put(value)


def map_in_workers(fn: Callable[..., Any], tasks: Sequence[tuple], workers: int, *,
                   clean_stop: bool = False, on_message: Callable[[Any], None] | None = None,
                   collect: tuple[type[BaseException], ...] = ()) -> list[Any]:
  """``[fn(*task) for task in tasks]`` in ``workers`` spawned processes (results in task order).

  ``fn``: a module-level function, referenced by its module path (not
  ``__main__``). The workers never outlive the parent; with ``clean_stop`` the
  first SIGTERM/SIGINT sets the shared stop event (``stop_event()`` in the
  workers), the second aborts them. An exception of a type in ``collect`` takes
  its task's place in the list; any other propagates (after every task ended).
  """
  ctx = multiprocessing.get_context("spawn")
  stop, abort = (ctx.Event(), ctx.Event()) if clean_stop else (None, None)
  queue = ctx.Queue()
  on_signal = StopOnSignal(stop, abort) if clean_stop else contextlib.nullcontext()
  with on_signal, concurrent.futures.ProcessPoolExecutor(
      max_workers=workers, mp_context=ctx, initializer=_init,
      initargs=(os.getpid(), stop, abort, queue)) as pool:
    futures = [pool.submit(fn, *task) for task in tasks]
    while not all(f.done() for f in futures):
      try:
        message = queue.get(timeout=POLL_S)
      except queue_lib.Empty:
        continue
      if on_message is not None:
        on_message(message)
    while on_message is not None and not queue.empty():
      on_message(queue.get())
  out = []
  for f in futures:
    try:
      out.append(f.result())
    except collect as e:  # pylint: disable=catching-non-exception
      out.append(e)
  return out


def stop_event() -> Any:
  """The shared ``stop`` event in a worker started with one, else None."""
  return _STATE["stop"]


def echo(message: str) -> None:
  """A worker's console line: message and newline in one write, so that lines of processes
  sharing the parent's stdout never interleave (``print`` writes the newline separately)."""
  sys.stdout.write(f"{message}\n")
  sys.stdout.flush()


@contextlib.contextmanager
def busy() -> Iterator[None]:
  """Marks a run in progress: an orphaned worker waits for it to end (and checkpoint)."""
  _BUSY.set()
  try:
    yield
  finally:
    _BUSY.clear()


class StopOnSignal:
  """Parent side: the first SIGTERM/SIGINT sets ``stop``; the second sets ``abort`` and raises.

  The parent's main thread should touch the events only through this handler
  (see the module docstring).
  """

  def __init__(self, stop: Any, abort: Any):
    self.stop, self.abort, self.signals = stop, abort, 0
    self._old: dict[int, Any] = {}

  def __enter__(self) -> "StopOnSignal":
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.signals += 1
    if self.signals > 1:
      self.abort.set()
      raise KeyboardInterrupt
    self.stop.set()
    print(f"\nSignal {signum}: the runs in progress checkpoint at their next step and stop; "
          "runs not started are left for the re-run (send again to abort).", file=sys.stderr,
          flush=True)

  def __exit__(self, *exc) -> None:
    for sig, old in self._old.items():
      signal.signal(sig, old)
