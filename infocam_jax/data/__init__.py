"""Datasets and input pipelines: tfds builders -> array_record -> `tfds.data_source` -> grain.

No TensorFlow is needed to import this package, to prepare the offline sets
or Tiny-ImageNet, or to read any prepared dataset. Importing it registers the
tfds builders `cluttered_digits`, `imbalanced_digits`, `tiny_imagenet` and
`mnist_idx` (MNIST-format files on disk, e.g. Debian's Fashion-MNIST) and
`fashion_wsol` (Fashion-MNIST articles on real photographs, with boxes).

    from infocam_jax import data
    source = data.load_source("cluttered_digits", "train")        # prepared on first use
    pipe = data.make_pipeline(source, batch_size=64, train=True, image_size=64, seed=0)
    batch = pipe.get_batch(0)            # dict of NumPy arrays, a function of (seed, step)
    for batch in pipe.iterate(start_step=0):  # the same batches, prefetched
      ...

`data.describe()` lists the datasets, their splits (including the paper's
derived splits) and how each is obtained.
"""

from __future__ import annotations

from infocam_jax import _deps

_deps.require("data", "infocam_jax.data")

from infocam_jax.data import fashion_wsol as _fashion_wsol  # registers fashion_wsol
from infocam_jax.data import idx as _idx  # registers mnist_idx
from infocam_jax.data import offline as _offline  # registers cluttered_digits, imbalanced_digits
from infocam_jax.data import tiny_imagenet as _tiny_imagenet  # registers tiny_imagenet
from infocam_jax.data.pipeline import Pipeline, make_pipeline
from infocam_jax.data.sources import (BASE_SPLITS, SPLITS, DatasetUnavailableError, DerivedSplit,
                                      Source, describe, load_source)
from infocam_jax.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize

__all__ = [
    "BASE_SPLITS",
    "SPLITS",
    "DatasetUnavailableError",
    "DerivedSplit",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Pipeline",
    "Source",
    "denormalize",
    "describe",
    "load_source",
    "make_pipeline",
    "normalize",
]

del _fashion_wsol, _idx, _offline, _tiny_imagenet
