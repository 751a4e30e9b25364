"""Deterministic, resumable, sharded input pipeline over a `Source` (grain prefetch, no TF).

``make_pipeline(source, batch_size=B, train=..., image_size=S, resize_size=R, seed=s,
shard_index=k, num_shards=P)`` returns a `Pipeline` whose batch at step t is a
pure function of (seed, t):

* Training: epoch e = t // steps_per_epoch visits the examples in the
  permutation ``default_rng([seed, 0, e]).permutation(N)``; step t takes the
  global batch at offset (t mod steps_per_epoch) * B of that permutation
  (steps_per_epoch = N // B; the last N mod B examples of each epoch's
  permutation are skipped, differently every epoch). Example i's augmentation
  (crop offset, flip) draws from ``default_rng([seed, 1, e, i])``. So
  ``get_batch(t)`` resumes mid-epoch exactly, on any machine and with any
  number of worker processes.
* Evaluation: one pass in source order, steps_per_epoch = ceil(N / B); the
  last global batch is padded, with ``mask`` False on the padding (zero image,
  label 0, index -1, no boxes).
* Sharding (multi-host): process k of P receives rows [k B/P, (k+1) B/P) of
  every global batch, so the processes' examples are disjoint and together
  exactly the global batch; B must be divisible by P.

Batch dict (NumPy; per-process rows b = B / P; M = ``max_boxes``):
  image           float32 [b, S, S, C]  (x / 255 - mean) / std (ImageNet statistics by
                  default); uint8 [b, S, S, C] unnormalised with ``image_dtype="uint8"``
                  (normalise on device with `infocam_jax.data.normalize`)
  label           int32 [b]
  bbox            float32 [b, M, 4]  (x0, y0, x1, y1) inclusive pixel corners of the
                  network input (see `infocam_jax.data.transforms` for the exact rule
                  and the clipping)
  bbox_mask       bool [b, M]   True for real boxes (boxes beyond M are dropped)
  mask            bool [b]      False for evaluation padding
  index           int64 [b]     position of the example in the source (-1 for padding)
  bbox_normalized float32 [b, M, 4]  the source's tfds boxes (ymin, xmin, ymax, xmax),
                  for evaluators that reproduce the official GT transform
  orig_size       int32 [b, 2]  (H, W) of the source image

`Pipeline.iterate(start_step)` yields the same batches as ``get_batch`` with
background prefetch: grain threads (``num_threads``) or grain worker
processes (``num_workers`` > 0, for accelerators; each worker assembles whole
batches).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from infocam_jax.data import transforms

__all__ = ["Pipeline", "make_pipeline"]


def _require_int(value: Any, name: str, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
  return int(value)


class Pipeline:
  """Batches of one `Source`; see the module docstring for the exact semantics.

  Built by :func:`make_pipeline`; any sequence of example dicts works as a source:

  >>> rng = np.random.default_rng(0)
  >>> examples = [dict(image=rng.integers(0, 256, (40, 40, 3), np.uint8), label=i % 2,
  ...                  bbox=np.array([[0.1, 0.2, 0.5, 0.6]], np.float32)) for i in range(10)]
  >>> pipe = make_pipeline(examples, batch_size=4, train=False, image_size=32)
  >>> len(pipe.source), pipe.batch_size, pipe.image_size
  (10, 4, 32)
  >>> batches = list(pipe.iterate())  # one ordered pass; the last batch is padded
  >>> len(batches), batches[-1]["mask"].tolist()
  (3, [True, True, False, False])
  """

  def __init__(self, source, *, batch_size: int, train: bool, image_size: int,
               resize_size: int | None = None, seed: int = 0, shard_index: int = 0,
               num_shards: int = 1, max_boxes: int = 1, random_crop: bool = True,
               flip: bool = True, clip_boxes: bool = True, channels: int = 3,
               mean=transforms.IMAGENET_MEAN, std=transforms.IMAGENET_STD,
               image_dtype: str = "float32", num_threads: int | None = None,
               num_workers: int = 0, prefetch: int = 2):
    self.source = source
    self.batch_size = _require_int(batch_size, "batch_size", 1)
    self.num_shards = _require_int(num_shards, "num_shards", 1)
    self.shard_index = _require_int(shard_index, "shard_index", 0)
    if self.shard_index >= self.num_shards:
      raise ValueError(f"`shard_index` must be in [0, {self.num_shards - 1}], got {shard_index}.")
    if self.batch_size % self.num_shards:
      raise ValueError(f"`batch_size` ({batch_size}, the global batch) must be divisible by "
                       f"`num_shards` ({num_shards}).")
    self.local_batch_size = self.batch_size // self.num_shards
    self.train = bool(train)
    self.image_size = _require_int(image_size, "image_size", 1)
    self.resize_size = self.image_size if resize_size is None else _require_int(
        resize_size, "resize_size", 1)
    if self.resize_size < self.image_size:
      raise ValueError(f"`resize_size` ({self.resize_size}) must be >= `image_size` "
                       f"({self.image_size}).")
    self.seed = _require_int(seed, "seed", 0)
    self.max_boxes = _require_int(max_boxes, "max_boxes", 0)
    self.random_crop = bool(random_crop)
    self.flip = bool(flip)
    self.clip_boxes = bool(clip_boxes)
    if channels not in (1, 3):
      raise ValueError(f"`channels` must be 1 or 3, got {channels!r}.")
    self.channels = int(channels)
    self.mean, self.std = transforms._stats(mean, std, self.channels)  # pylint: disable=protected-access
    self._scale = np.broadcast_to((1.0 / (255.0 * self.std)).astype(np.float32),
                                  (self.channels,)).copy()
    self._shift = np.broadcast_to((self.mean / self.std).astype(np.float32), (self.channels,)).copy()
    if image_dtype not in ("float32", "uint8"):
      raise ValueError(f"`image_dtype` must be 'float32' or 'uint8', got {image_dtype!r}.")
    self.image_dtype = image_dtype
    self.num_threads = (min(4, os.cpu_count() or 1) if num_threads is None
                        else _require_int(num_threads, "num_threads", 0))
    self.num_workers = _require_int(num_workers, "num_workers", 0)
    self.prefetch = _require_int(prefetch, "prefetch", 1)
    self.num_examples = len(source)
    if self.num_examples == 0:
      raise ValueError(f"{source!r} is empty.")
    if self.train:
      self.steps_per_epoch = self.num_examples // self.batch_size
      if self.steps_per_epoch == 0:
        raise ValueError(f"Training needs at least one full global batch: the source has "
                         f"{self.num_examples} examples, batch_size is {self.batch_size}.")
    else:
      self.steps_per_epoch = math.ceil(self.num_examples / self.batch_size)
    self._perm_cache: dict[int, np.ndarray] = {}
    self._perm_lock = threading.Lock()

  def __repr__(self) -> str:
    return (f"Pipeline({self.source!r}, train={self.train}, batch_size={self.batch_size}, "
            f"shard={self.shard_index}/{self.num_shards}, image_size={self.image_size}, "
            f"resize_size={self.resize_size}, steps_per_epoch={self.steps_per_epoch})")

  # -- index arithmetic ------------------------------------------------------
  def _permutation(self, epoch: int) -> np.ndarray:
    with self._perm_lock:  # grain threads call get_batch concurrently
      perm = self._perm_cache.get(epoch)
      if perm is None:
        perm = np.random.default_rng([self.seed, 0, epoch]).permutation(self.num_examples)
        if len(self._perm_cache) >= 2:
          self._perm_cache.pop(next(iter(self._perm_cache)))
        self._perm_cache[epoch] = perm
      return perm

  def indices(self, step: int) -> tuple[int, np.ndarray]:
    """(epoch, source indices [b] of this process's rows at `step`; -1 marks padding)."""
    step = _require_int(step, "step", 0)
    epoch, k = divmod(step, self.steps_per_epoch)
    lo = k * self.batch_size + self.shard_index * self.local_batch_size
    positions = np.arange(lo, lo + self.local_batch_size, dtype=np.int64)
    if self.train:
      return epoch, self._permutation(epoch)[positions]
    return epoch, np.where(positions < self.num_examples, positions, -1)

  # -- batches ---------------------------------------------------------------
  @property
  def element_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{key: (shape, dtype)} of every batch of this process."""
    b, s, m, c = self.local_batch_size, self.image_size, self.max_boxes, self.channels
    return {
        "image": ((b, s, s, c), np.dtype(self.image_dtype)),
        "label": ((b,), np.dtype(np.int32)),
        "bbox": ((b, m, 4), np.dtype(np.float32)),
        "bbox_mask": ((b, m), np.dtype(bool)),
        "mask": ((b,), np.dtype(bool)),
        "index": ((b,), np.dtype(np.int64)),
        "bbox_normalized": ((b, m, 4), np.dtype(np.float32)),
        "orig_size": ((b, 2), np.dtype(np.int32)),
    }

  def get_batch(self, step: int) -> dict[str, np.ndarray]:
    """The batch of this process at `step`: a pure function of (seed, step)."""
    epoch, idx = self.indices(step)
    batch = {k: np.zeros(shape, dtype) for k, (shape, dtype) in self.element_spec.items()}
    batch["index"][:] = idx
    valid_rows = np.flatnonzero(idx >= 0)
    wanted = [int(i) for i in idx[valid_rows]]
    getitems = getattr(self.source, "__getitems__", None)
    examples = getitems(wanted) if getitems else [self.source[i] for i in wanted]
    for row, ex in zip(valid_rows, examples):
      self._process(ex, int(idx[row]), epoch, batch, int(row))
    return batch

  def _process(self, ex: dict[str, Any], index: int, epoch: int, batch: dict[str, np.ndarray],
               row: int) -> None:
    image = transforms.to_channels(ex["image"], self.channels)
    h, w = image.shape[:2]
    r, s = self.resize_size, self.image_size
    resized = transforms.resize(image, r, r)
    if self.train:
      rng = np.random.default_rng([self.seed, 1, epoch, index])
      if self.random_crop:
        top = transforms.random_crop_offset(rng, r, s)
        left = transforms.random_crop_offset(rng, r, s)
      else:
        top = left = transforms.centre_crop_offset(r, s)
      flip = self.flip and bool(rng.uniform() < 0.5)
    else:
      top = left = transforms.centre_crop_offset(r, s)
      flip = False
    if self.image_dtype == "float32":
      transforms._crop_flip_affine(  # pylint: disable=protected-access
          np.ascontiguousarray(resized), top, left, flip, self._scale, self._shift,
          batch["image"][row])
    else:
      crop = resized[top:top + s, left:left + s]
      batch["image"][row] = crop[:, ::-1] if flip else crop
    batch["label"][row] = ex["label"]
    batch["mask"][row] = True
    batch["orig_size"][row] = (h, w)
    m = min(self.max_boxes, len(ex["bbox"]))
    if m:
      boxes, valid = transforms.transform_boxes(
          ex["bbox"][:m], resize_hw=(r, r), offset_yx=(top, left), crop_hw=(s, s), flip=flip,
          clip=self.clip_boxes)
      batch["bbox"][row, :m] = boxes
      batch["bbox_mask"][row, :m] = valid
      batch["bbox_normalized"][row, :m] = ex["bbox"][:m]

  # -- iteration -------------------------------------------------------------
  def _stop(self, start_step: int, num_steps: int | None) -> int:
    if num_steps is not None:
      return start_step + _require_int(num_steps, "num_steps", 0)
    if self.train:
      return sys.maxsize
    return (start_step // self.steps_per_epoch + 1) * self.steps_per_epoch

  def iterate(self, start_step: int = 0, num_steps: int | None = None
              ) -> Iterator[dict[str, np.ndarray]]:
    """Batches ``get_batch(start_step)``, ``get_batch(start_step + 1)``, ... with prefetch.

    Training iterates forever unless `num_steps` is given; evaluation stops at
    the end of the epoch containing `start_step`.
    """
    import grain  # pylint: disable=g-import-not-at-top

    start_step = _require_int(start_step, "start_step", 0)
    stop = self._stop(start_step, num_steps)
    if stop <= start_step:
      return
    dataset = grain.MapDataset.range(start_step, stop).map(self.get_batch)
    if self.num_workers > 0:
      _ensure_absl_flags_parsed()
      iter_ds = dataset.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
      iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(
          num_workers=self.num_workers, per_worker_buffer_size=self.prefetch))
    elif self.num_threads > 0:
      iter_ds = dataset.to_iter_dataset(grain.ReadOptions(
          num_threads=self.num_threads, prefetch_buffer_size=max(self.prefetch, self.num_threads)))
    else:
      iter_ds = dataset.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    iterator = iter(iter_ds)
    try:
      yield from iterator
    finally:
      close = getattr(iterator, "close", None)
      if close is not None:
        close()

  def __getstate__(self):
    state = self.__dict__.copy()
    state["_perm_cache"] = {}
    del state["_perm_lock"]
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._perm_lock = threading.Lock()


def _ensure_absl_flags_parsed() -> None:
  """grain 0.2.x reads an absl flag in worker start-up and fails if flags are unparsed.

  Scripts run with ``absl.app.run`` have parsed flags; elsewhere (notebooks,
  pytest, plain scripts) mark them parsed, which keeps every flag at its
  default (google/grain#1355, fixed upstream after 0.2.18).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def make_pipeline(source, *, batch_size: int, train: bool, image_size: int,
                  resize_size: int | None = None, seed: int = 0, shard_index: int = 0,
                  num_shards: int = 1, max_boxes: int = 1, **options) -> Pipeline:
  """Builds a `Pipeline` (see the module docstring).

  Args:
    source: a `Source`, or any sequence of uniform example dicts (``image``
      uint8 [H, W, C], ``label``, ``bbox`` float [n, 4] normalised).
    batch_size: the *global* batch size, split evenly over `num_shards`.
    train: augmentation, shuffling and dropping the remainder (True), or one
      ordered, padded pass (False).
    image_size: side S of the network input.
    resize_size: side R of the square resize before cropping (default S).
    seed: the whole stream is a function of (seed, step).
    shard_index, num_shards: this process's index and the process count.
    max_boxes: M, box slots per example.
    **options: ``random_crop`` (train), ``flip`` (train), ``clip_boxes``,
      ``channels`` (1 or 3), ``mean``/``std`` (0-1 scale), ``image_dtype``
      ("float32" or "uint8"), ``num_threads``, ``num_workers`` (processes),
      ``prefetch``.

  Example (a list of example dicts as the source; a dataset's comes from `load_source`)::

    >>> rng = np.random.default_rng(0)
    >>> examples = [dict(image=rng.integers(0, 256, (40, 40, 3), np.uint8), label=i % 2,
    ...                  bbox=np.array([[0.1, 0.2, 0.5, 0.6]], np.float32)) for i in range(10)]
    >>> pipe = make_pipeline(examples, batch_size=4, train=True, image_size=32, seed=0)
    >>> batch = pipe.get_batch(0)  # a function of (seed, step)
    >>> batch["image"].shape, batch["image"].dtype, batch["label"].shape, batch["bbox"].shape
    ((4, 32, 32, 3), dtype('float32'), (4,), (4, 1, 4))
    >>> bool(np.all(pipe.get_batch(0)["image"] == batch["image"]))  # reproducible
    True
  """
  return Pipeline(source, batch_size=batch_size, train=train, image_size=image_size,
                  resize_size=resize_size, seed=seed, shard_index=shard_index,
                  num_shards=num_shards, max_boxes=max_boxes, **options)
