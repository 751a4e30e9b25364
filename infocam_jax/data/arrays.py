"""In-memory sources and deterministic batch pipelines (tests, benchmarks, smoke, caching).

``ArrayPipeline`` implements the data contract the training loop consumes (the
same one ``infocam_jax.data.make_pipeline`` provides):

* ``get_batch(step) -> dict`` of NumPy arrays, a pure function of
  ``(seed, step)``: training batches walk a fresh permutation each epoch
  (``epoch = step // steps_per_epoch``), eval batches walk the split in order
  and pad the last one (``mask`` False for padding);
* ``iterate(start_step=0)`` yields ``get_batch(start_step), ...`` with
  background prefetch;
* ``steps_per_epoch``.

With ``num_shards > 1`` each process receives its contiguous rows
``[shard_index*b, (shard_index+1)*b)`` of the global batch (``b = batch_size /
num_shards``), so the global batch does not depend on the number of processes.

``synthetic_source`` generates a small localisation set: each image is noise
plus one filled rectangle whose colour and texture identify the class; the
rectangle is the ground-truth box (inclusive pixel corners).

``CachedSource`` keeps a real source's examples decoded (and resized) in
memory, so small datasets are decoded once rather than once per epoch.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Sequence
from typing import Any, Iterator

import numpy as np

from infocam_jax.data import transforms


@dataclasses.dataclass
class ArraySource:
  """Random access over in-memory examples of one split.

  Attributes:
    image: float32 [N, H, W, 3], already normalised.
    label: int32 [N].
    bbox: float32 [N, M, 4] (x0, y0, x1, y1) inclusive pixel corners.
    bbox_mask: bool [N, M].
    num_classes: K.
  """
  image: np.ndarray
  label: np.ndarray
  bbox: np.ndarray
  bbox_mask: np.ndarray
  num_classes: int

  def __len__(self) -> int:
    return int(self.label.shape[0])

  @property
  def class_counts(self) -> np.ndarray:
    """int64 [K] examples per class."""
    return np.bincount(self.label, minlength=self.num_classes).astype(np.int64)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    return {"image": self.image[i], "label": self.label[i], "bbox": self.bbox[i],
            "bbox_mask": self.bbox_mask[i]}


def synthetic_source(num_examples: int = 256, *, num_classes: int = 4, image_size: int = 32,
                     seed: int = 0, class_weights: np.ndarray | None = None,
                     noise: float = 0.25, colour_seed: int = 0) -> ArraySource:
  """A learnable toy localisation set (see the module docstring).

  ``seed`` draws the examples; ``colour_seed`` fixes the class appearance, so
  splits drawn with different ``seed`` share their classes.
  """
  if num_examples < 1 or num_classes < 2 or image_size < 8:
    raise ValueError("synthetic_source needs num_examples >= 1, num_classes >= 2, "
                     f"image_size >= 8; got {num_examples}, {num_classes}, {image_size}.")
  rng = np.random.default_rng([seed, 7177])
  if class_weights is None:
    labels = np.arange(num_examples) % num_classes
    rng.shuffle(labels)
  else:
    w = np.asarray(class_weights, np.float64)
    labels = rng.choice(num_classes, size=num_examples, p=w / w.sum())
  colours = np.random.default_rng([colour_seed, 1]).uniform(0.0, 1.0, size=(num_classes, 3))
  s = image_size
  images = rng.uniform(0.0, noise, size=(num_examples, s, s, 3)).astype(np.float32)
  boxes = np.zeros((num_examples, 1, 4), np.float32)
  yy, xx = np.mgrid[0:s, 0:s]
  for i, y in enumerate(labels):
    h, w = rng.integers(s // 4, s // 2 + 1, size=2)
    y0, x0 = rng.integers(0, s - h + 1), rng.integers(0, s - w + 1)
    inside = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
    stripes = ((xx + (y % 2) * yy) // 2 % 2).astype(np.float32)  # class texture
    patch = colours[y][None, None, :] * (0.75 + 0.25 * stripes[..., None])
    images[i][inside] = patch[inside]
    boxes[i, 0] = (x0, y0, x0 + w - 1, y0 + h - 1)
  images = np.asarray((images - np.asarray(transforms.IMAGENET_MEAN, np.float32))
                      / np.asarray(transforms.IMAGENET_STD, np.float32), np.float32)
  return ArraySource(image=images.astype(np.float32), label=labels.astype(np.int32),
                     bbox=boxes, bbox_mask=np.ones((num_examples, 1), bool),
                     num_classes=num_classes)


class ArrayPipeline:
  """Deterministic batches over an ``ArraySource`` (see the module docstring).

  Args:
    source: the examples.
    batch_size: *global* batch size.
    train: shuffle per epoch and drop the remainder; else one ordered pass
      with the last batch padded (``mask`` False).
    seed: shuffling seed.
    shard_index, num_shards: this process's slice of each global batch.
    prefetch: batches prepared ahead by ``iterate``'s background thread.
  """

  def __init__(self, source: ArraySource, *, batch_size: int, train: bool, seed: int = 0,
               shard_index: int = 0, num_shards: int = 1, prefetch: int = 2):
    if batch_size < 1 or batch_size % num_shards:
      raise ValueError(f"`batch_size` ({batch_size}) must be positive and divisible by "
                       f"`num_shards` ({num_shards}).")
    if not 0 <= shard_index < num_shards:
      raise ValueError(f"`shard_index` must lie in [0, {num_shards}), got {shard_index}.")
    if train and len(source) < batch_size:
      raise ValueError(f"training split has {len(source)} examples < batch_size {batch_size}.")
    self.source, self.batch_size, self.train, self.seed = source, batch_size, train, seed
    self.shard_index, self.num_shards, self.prefetch = shard_index, num_shards, prefetch
    n = len(source)
    self.steps_per_epoch = n // batch_size if train else -(-n // batch_size)

  @property
  def num_classes(self) -> int:
    return self.source.num_classes

  @property
  def num_examples(self) -> int:
    """Examples in the split (as ``Pipeline.num_examples``)."""
    return len(self.source)

  def global_indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [B], valid [B])`` of the global batch at ``step``."""
    b = self.batch_size
    if self.train:
      epoch, pos = divmod(int(step), self.steps_per_epoch)
      perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.source))
      return perm[pos * b:(pos + 1) * b], np.ones(b, bool)
    pos = int(step) % self.steps_per_epoch
    idx = np.arange(pos * b, (pos + 1) * b)
    valid = idx < len(self.source)
    return np.where(valid, idx, 0), valid

  def get_batch(self, step: int) -> dict[str, np.ndarray]:
    idx, valid = self.global_indices(step)
    per = self.batch_size // self.num_shards
    rows = slice(self.shard_index * per, (self.shard_index + 1) * per)
    idx, valid = idx[rows], valid[rows]
    src = self.source
    return {"image": src.image[idx], "label": src.label[idx], "bbox": src.bbox[idx],
            "bbox_mask": src.bbox_mask[idx] & valid[:, None], "mask": valid.copy(),
            "index": np.where(valid, idx, -1).astype(np.int64)}  # as Pipeline's (-1: padding)

  def iterate(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches ``start_step, start_step+1, ...`` with prefetch, as ``Pipeline.iterate``:
    endless for training; for evaluation, to the end of the epoch holding ``start_step``
    (one ordered pass from 0), so ``for batch in pipe.iterate(0)`` ends."""
    if self.train:
      steps: Iterator[int] = _count(start_step)
    else:
      end = (start_step // self.steps_per_epoch + 1) * self.steps_per_epoch
      steps = iter(range(start_step, end))
    return _prefetch((self.get_batch(s) for s in steps), self.prefetch)


def _count(start: int) -> Iterator[int]:
  s = start
  while True:
    yield s
    s += 1


def _prefetch(it: Iterator[Any], size: int) -> Iterator[Any]:
  """Runs ``it`` in a daemon thread, ``size`` items ahead."""
  if size <= 0:
    yield from it
    return
  q: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()
  sentinel = object()

  def worker():
    try:
      for item in it:
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if stop.is_set():
          return
    except BaseException as e:  # pylint: disable=broad-except
      q.put(e)
    q.put(sentinel)

  thread = threading.Thread(target=worker, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is sentinel:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()


class CachedSource(Sequence):
  """A source's examples decoded once and kept in memory, resized as the pipeline would.

  ``cached[i]`` is ``source[i]`` with its image converted to ``channels`` and
  resized to ``size`` x ``size`` by the pipeline's own transforms, so a pipeline
  with ``resize_size=size`` and the same ``channels`` finds nothing left to do
  and produces bit-identical batches; only the PNG/JPEG decoding and resizing
  per epoch are saved. ``labels``/``class_counts``/``num_classes`` pass through.

  Example::

    src = CachedSource(data.load_source("imbalanced_digits", "train"), size=28, channels=1)
  """

  def __init__(self, source: Any, *, size: int, channels: int):
    self.source = source
    self.num_classes = source.num_classes
    self.class_names = tuple(source.class_names)
    self.labels = np.asarray(source.labels, np.int64)
    self.class_counts = np.asarray(source.class_counts, np.int64)
    self.name, self.split = source.name, source.split
    self._examples = []
    for i in range(len(source)):
      ex = dict(source[i])
      ex["image"] = transforms.resize(transforms.to_channels(ex["image"], channels), size, size)
      self._examples.append(ex)

  def __len__(self) -> int:
    return len(self._examples)

  def __getitem__(self, i):
    return self._examples[i]

  def __repr__(self) -> str:
    return f"CachedSource({self.source!r})"
