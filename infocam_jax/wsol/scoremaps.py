"""Score maps read from ``.npy`` files in chunks, reading overlapped with evaluation.

:func:`read_chunks` yields chunks of at most ``chunk_size`` maps in the
order of the image ids; a background thread reads the next ``prefetch``
chunks while the caller evaluates the current one (``np.load`` spends its
time in file reads, which release the GIL). At most ``prefetch + 2`` chunks
are alive at once (the ``prefetch`` read ahead, the one handed to the
caller, and the caller's previous one until it lets go of it), so memory is
bounded by ``(prefetch + 2) * chunk_size`` maps, however many maps there are.

:func:`map_chunks` goes further: each of ``num_workers`` threads reads a chunk and
evaluates it (reading and evaluation of different chunks run in parallel; the
command line's box and mask paths use it).

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
import threading
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
  # map_chunks: the maps that are rows of one contiguous array (``maps[k] is batch[k]``'s
  # data for the first ``len(batch)`` maps of its kind, in order), or None.
  batch: np.ndarray | None = None


_MAGIC = b"\x93NUMPY\x01"  # format version 1.x (what np.save writes for 2-D maps)
# Header bytes (magic, version, length, dict) -> (dtype, shape) of C-ordered, non-object arrays.
# A folder of maps of one size repeats one header: parsing it once skips most of np.load's time.
_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...]]] = {}


def _read_npy(path: str, alloc: Callable[[np.dtype, tuple[int, ...]], np.ndarray] | None = None
              ) -> np.ndarray:
  """``np.load(path, allow_pickle=False)``, with a fast path for headers seen before: the data
  are read straight into ``alloc(dtype, shape)`` (default a new array; the same bytes, one
  read call)."""
  with open(path, "rb", buffering=0) as f:
    pre = f.read(10)
    if len(pre) == 10 and pre.startswith(_MAGIC):
      header = pre + f.read(int.from_bytes(pre[8:10], "little"))
      known = _HEADERS.get(header)
      if known is None:
        import io
        fp = io.BytesIO(header)
        np.lib.format.read_magic(fp)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        if not fortran and not dtype.hasobject:
          known = _HEADERS.setdefault(header, (dtype, tuple(shape)))
      if known is not None:
        m = np.empty(known[1], known[0]) if alloc is None else alloc(*known)
        if m.nbytes:
          n = f.readinto(m.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # a buffer
          if n != m.nbytes:
            raise ValueError(f"Failed to read all data: {n} of {m.nbytes} bytes.")
        return m
  return np.load(path, allow_pickle=False)


def load_scoremap(image_id: str, path: str,
                  alloc: Callable[[np.dtype, tuple[int, ...]], np.ndarray] | None = None
                  ) -> np.ndarray:
  """One ``.npy`` score map, checked to be a real 2-D array (dtype kept as saved).

  ``alloc(dtype, shape)``, if given, provides the array the data are read into (when the
  file's header was seen before); :func:`map_chunks` passes slots of a per-thread buffer.
  """
  if not os.path.isfile(path):
    raise MissingScoreMap(image_id, path)
  try:
    m = _read_npy(path, alloc)
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


_TLS = threading.local()


class _Slots:
  """Consecutive rows of this thread's reusable ``[chunk_size, H, W]`` buffer for the maps of
  one (dtype, shape) -- the first such map of the chunk decides -- so a chunk of equal maps is
  read into one contiguous batch (no stacking copy, no fresh pages per map). Maps of other
  kinds get new arrays."""

  def __init__(self, size: int):
    self.size = size
    self.key: tuple[np.dtype, tuple[int, ...]] | None = None
    self.used = 0
    buf = getattr(_TLS, "buf", None)
    self.buf: np.ndarray | None = buf if buf is not None and buf.shape[0] >= size else None

  def __call__(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    key = (dtype, shape)
    if self.key is None:
      self.key = key
      if self.buf is None or (self.buf.dtype, self.buf.shape[1:]) != key:
        self.buf = _TLS.buf = np.empty((self.size,) + shape, dtype)
    if key != self.key or self.used >= self.size:
      return np.empty(shape, dtype)
    self.used += 1
    assert self.buf is not None  # allocated with self.key
    return self.buf[self.used - 1]

  def batch(self) -> np.ndarray | None:
    """The rows handed out, in order (None when none were)."""
    return None if self.key is None or self.buf is None else self.buf[:self.used]


def _read(ids: Sequence[str], paths: Sequence[str], lo: int, hi: int,
          allow_missing: bool, extra: Callable[[int], Any] | None = None,
          pooled: bool = False) -> Chunk:
  chunk = Chunk([], [], [])
  slots = _Slots(hi - lo) if pooled else None
  for i in range(lo, hi):
    try:
      m = (load_scoremap(ids[i], paths[i]) if slots is None
           else load_scoremap(ids[i], paths[i], alloc=slots))
    except MissingScoreMap:
      if not allow_missing:
        raise
      chunk.missing.append(i)
      continue
    chunk.indices.append(i)
    chunk.maps.append(m)
    if extra is not None:
      chunk.extras.append(extra(i))
  if slots is not None:
    chunk.batch = slots.batch()
  return chunk


def map_chunks(ids: Sequence[str], paths: Sequence[str], fn: Callable[[Chunk], Any], *,
               chunk_size: int = 256, num_workers: int = 1, allow_missing: bool = False,
               extra: Callable[[int], Any] | None = None) -> Iterator[tuple[Chunk, Any]]:
  """``(chunk, fn(chunk))`` in id order, each chunk read *and* evaluated by one of
  ``num_workers`` threads (``fn`` must be thread safe; it should release the GIL, as numba
  ``nogil`` kernels and file reads do).

  The yielded chunk has its ``maps`` and ``extras`` dropped (only ``indices`` and ``missing``);
  the maps of a chunk live only while its worker evaluates it, so at most ``num_workers *
  chunk_size`` maps are in memory, however many maps there are. An exception in a worker
  (e.g. :class:`MissingScoreMap`) is raised here, at that chunk.
  """
  if len(ids) != len(paths):
    raise ValueError(f"{len(ids)} ids but {len(paths)} paths.")
  if chunk_size < 1 or num_workers < 1:
    raise ValueError(f"`chunk_size` and `num_workers` must be >= 1, got {chunk_size}, "
                     f"{num_workers}.")
  bounds = [(lo, min(lo + chunk_size, len(ids))) for lo in range(0, len(ids), chunk_size)]

  def task(lo: int, hi: int) -> Any:
    chunk = _read(ids, paths, lo, hi, allow_missing, extra, pooled=True)
    out = fn(chunk)
    return Chunk(chunk.indices, [], chunk.missing), out

  if num_workers == 1:
    try:
      for lo, hi in bounds:
        yield task(lo, hi)
    finally:
      _TLS.buf = None  # the calling thread lives on: do not keep its buffer (pool threads end)
    return
  with concurrent.futures.ThreadPoolExecutor(num_workers,
                                             thread_name_prefix="scoremap-worker") as pool:
    ahead = num_workers + 1  # queued tasks have not read anything yet
    pending = [pool.submit(task, lo, hi) for lo, hi in bounds[:ahead]]
    nxt = len(pending)
    try:
      while pending:
        res = pending.pop(0).result()
        if nxt < len(bounds):
          pending.append(pool.submit(task, *bounds[nxt]))
          nxt += 1
        yield res
    finally:
      for f in pending:
        f.cancel()


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
