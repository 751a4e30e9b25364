"""Score maps read from ``.npy`` files in chunks, reading overlapped with evaluation.

:func:`read_chunks` yields chunks of at most ``chunk_size`` maps in the
order of the image ids; a background thread reads the next ``prefetch``
chunks while the caller evaluates the current one (``np.load`` spends its
time in file reads, which release the GIL). At most ``prefetch + 2`` chunks
are alive at once (the ``prefetch`` read ahead, the one handed to the
caller, and the caller's previous one until it lets go of it), so memory is
bounded by ``(prefetch + 2) * chunk_size`` maps, however many maps there are.

A missing file is reported as :class:`MissingScoreMap` (image id and path);
with ``allow_missing=True`` it is skipped and listed in the chunk's
``missing``.

Example::

    for chunk in read_chunks(ids, [scoremap_path(root, i) for i in ids], chunk_size=256):
      chunk.indices, chunk.maps, chunk.missing
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np


class MissingScoreMap(FileNotFoundError):
  """A score map file does not exist (``image_id`` and ``path`` attributes)."""

  def __init__(self, image_id: str, path: str):
    super().__init__(f"no score map for image {image_id!r}: {path} does not exist "
                     "(pass --allow_missing to skip and count missing maps).")
    self.image_id = image_id
    self.path = path


class BadScoreMap(ValueError):
  """A score map file cannot be read as a 2-D real array."""


@dataclasses.dataclass
class Chunk:
  """``indices`` (positions in the id list), their ``maps`` (2-D arrays, as
  saved), ``missing`` (positions whose file was absent, skipped) and
  ``extras`` (``extra(i)`` per index, when ``read_chunks`` got ``extra``)."""
  indices: list[int]
  maps: list[np.ndarray]
  missing: list[int]
  extras: list = dataclasses.field(default_factory=list)


def load_scoremap(image_id: str, path: str) -> np.ndarray:
  """One ``.npy`` score map, checked to be a real 2-D array (dtype kept as saved)."""
  if not os.path.isfile(path):
    raise MissingScoreMap(image_id, path)
  try:
    m = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise BadScoreMap(f"score map of image {image_id!r} ({path}) is not a readable .npy "
                      f"array: {e}") from None
  if m.ndim != 2:
    raise BadScoreMap(f"score map of image {image_id!r} ({path}) must be a 2-D [H, W] array; "
                      f"it is {m.ndim}-D with shape {m.shape}.")
  if not (np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer)
          or m.dtype == np.bool_):
    raise BadScoreMap(f"score map of image {image_id!r} ({path}) must be real; its dtype is "
                      f"{m.dtype}.")
  return m


def _read(ids: Sequence[str], paths: Sequence[str], lo: int, hi: int,
          allow_missing: bool, extra: Callable[[int], Any] | None = None) -> Chunk:
  chunk = Chunk([], [], [])
  for i in range(lo, hi):
    try:
      m = load_scoremap(ids[i], paths[i])
    except MissingScoreMap:
      if not allow_missing:
        raise
      chunk.missing.append(i)
      continue
    chunk.indices.append(i)
    chunk.maps.append(m)
    if extra is not None:
      chunk.extras.append(extra(i))
  return chunk


def read_chunks(ids: Sequence[str], paths: Sequence[str], *, chunk_size: int = 256,
                prefetch: int = 2, allow_missing: bool = False,
                extra: Callable[[int], Any] | None = None) -> Iterator[Chunk]:
  """Chunks of maps in id order; at most ``prefetch`` chunks are read ahead.

  ``extra(i)``, if given, is also run in the reading thread for every map
  found (e.g. loading its mask); its results are the chunk's ``extras``.
  """
  if len(ids) != len(paths):
    raise ValueError(f"{len(ids)} ids but {len(paths)} paths.")
  if chunk_size < 1 or prefetch < 0:
    raise ValueError(f"`chunk_size` must be >= 1 and `prefetch` >= 0, got {chunk_size}, "
                     f"{prefetch}.")
  bounds = [(lo, min(lo + chunk_size, len(ids))) for lo in range(0, len(ids), chunk_size)]
  if prefetch == 0:
    for lo, hi in bounds:
      yield _read(ids, paths, lo, hi, allow_missing, extra)
    return
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scoremap-reader") as pool:
    pending = [pool.submit(_read, ids, paths, lo, hi, allow_missing, extra)
               for lo, hi in bounds[:prefetch]]
    nxt = len(pending)
    try:
      while pending:
        chunk = pending.pop(0).result()
        if nxt < len(bounds):
          pending.append(pool.submit(_read, ids, paths, *bounds[nxt], allow_missing, extra))
          nxt += 1
        yield chunk
    finally:
      for f in pending:
        f.cancel()
