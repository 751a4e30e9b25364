"""Metric sinks: stdout, ``DIR/metrics.jsonl`` and (if installed) TensorBoard.

Each ``write(step, metrics)`` call appends one JSON object per line::

  {"step": 40, "epoch": 2.5, "time": 1764226800.1, "train/loss": 0.61, ...}

Keys are ``"<split>/<name>"``; values are floats (nats for ``loss`` and the MI
readings, percent for accuracies: the names and units of
``evaluators.classification``). On resume, lines with ``step`` beyond the restored
step (written by the killed run after its last checkpoint) are dropped, so the
file reads as one uninterrupted run. TensorBoard event files go to
``DIR/tensorboard/`` when the ``tensorboard`` package is importable (a soft
dependency: it is not required and its absence is silent).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)


def _to_float(v: Any) -> float | None:
  try:
    f = float(np.asarray(v))
  except (TypeError, ValueError):
    return None
  return f


class _TensorBoard:
  """Scalar summaries through tensorboard's own event writer (no TF needed)."""

  def __init__(self, logdir: str):
    from tensorboard.compat.proto import event_pb2, summary_pb2  # pylint: disable=g-import-not-at-top
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # pylint: disable=g-import-not-at-top
    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    self._writer = EventFileWriter(logdir)

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    values = [self._summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
    event = self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                  summary=self._summary_pb2.Summary(value=values))
    self._writer.add_event(event)

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MetricWriter:
  """Writes metrics to stdout, ``metrics.jsonl`` and TensorBoard.

  Args:
    workdir: run directory.
    enabled: False on non-primary processes (nothing is written).
    resume_step: drop existing JSONL lines with ``step > resume_step``.
    tensorboard: try to write TensorBoard summaries.
    echo: callable for the human-readable line (default ``print``; the loop
      passes ``tqdm.write`` so the progress bar stays intact).

  >>> import tempfile
  >>> workdir = tempfile.mkdtemp()
  >>> writer = MetricWriter(workdir, tensorboard=False)
  >>> record = writer.write(1, {"train/loss": 0.5})  # echoed to stdout
  [step 1] train/loss=0.5000
  >>> writer.close()
  >>> [(r["step"], r["train/loss"]) for r in read_metrics(workdir)]
  [(1, 0.5)]
  """

  def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True,
               resume_step: int | None = None, tensorboard: bool = True, echo=print):
    self.enabled = enabled
    self.path = os.path.join(os.fspath(workdir), "metrics.jsonl")
    self.echo = echo
    self._tb = None
    if not enabled:
      return
    os.makedirs(os.fspath(workdir), exist_ok=True)
    if resume_step is not None and os.path.exists(self.path):
      self._truncate_after(resume_step)
    if tensorboard:
      try:
        self._tb = _TensorBoard(os.path.join(os.fspath(workdir), "tensorboard"))
      except ImportError:
        self._tb = None
      except Exception as e:  # pylint: disable=broad-except
        log.warning("TensorBoard summaries disabled: %s", e)
        self._tb = None

  @property
  def tensorboard_enabled(self) -> bool:
    return self._tb is not None

  def _truncate_after(self, step: int) -> None:
    kept = []
    with open(self.path) as f:
      for line in f:
        try:
          rec = json.loads(line)
        except json.JSONDecodeError:
          continue  # a line cut by the kill
        if int(rec.get("step", 0)) <= step:
          kept.append(json.dumps(rec, sort_keys=True))
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.write("".join(k + "\n" for k in kept))
    os.replace(tmp, self.path)

  def write(self, step: int, metrics: Mapping[str, Any], *, echo: bool = True,
            **extra: Any) -> dict[str, Any]:
    """Writes one record; non-scalar values are skipped. Returns the record."""
    scalars = {}
    for k, v in metrics.items():
      value = _to_float(v) if np.ndim(v) == 0 else None
      if value is not None:
        scalars[k] = value
    record = {"step": int(step), "time": round(time.time(), 3), **extra, **scalars}
    if not self.enabled:
      return record
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True, allow_nan=True) + "\n")
    if self._tb is not None:
      self._tb.write(step, {k: v for k, v in scalars.items() if math.isfinite(v)})
    if echo and self.echo is not None:
      body = "  ".join(f"{k}={_fmt(v)}" for k, v in scalars.items())
      self.echo(f"[step {step}] {body}")
    return record

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def _fmt(v: float) -> str:
  if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
    return f"{v:.3e}"
  return f"{v:.4f}"


def read_metrics(workdir: str | os.PathLike) -> list[dict[str, Any]]:
  """All records of ``DIR/metrics.jsonl`` (skips a truncated last line).

  >>> import tempfile
  >>> workdir = tempfile.mkdtemp()
  >>> with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
  ...   _ = f.write('{"step": 1, "loss": 0.5}' + chr(10) + '{"step": 2, "lo')  # killed mid-line
  >>> read_metrics(workdir)
  [{'step': 1, 'loss': 0.5}]
  """
  path = os.path.join(os.fspath(workdir), "metrics.jsonl")
  out = []
  with open(path) as f:
    for line in f:
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError:
        pass
  return out
