"""Prepare a dataset as array_record in a tfds data directory (command line).

    python -m infocam_jax.data.prepare cluttered_digits [--data_dir DIR]
    python -m infocam_jax.data.prepare tiny_imagenet --manual_dir DIR_WITH_ZIP [--data_dir DIR]
    python -m infocam_jax.data.prepare mnist_idx/fashion_mnist  # apt-get install dataset-fashion-mnist
    python -m infocam_jax.data.prepare mnist_idx/mnist --manual_dir DIR_WITH_THE_4_IDX_FILES
    python -m infocam_jax.data.prepare fashion_wsol --stats       # + box baselines (test split)
    python -m infocam_jax.data.prepare caltech_birds2011 [--data_dir DIR]   # needs TensorFlow + internet
    python -m infocam_jax.data.prepare --list                               # datasets and splits
    python -m infocam_jax.data.prepare cluttered_digits --stats             # box baselines (test split)

The offline sets, Tiny-ImageNet and the IDX-file sets need no TensorFlow.
CUB and MNIST use tfds' own builders, which encode images with TensorFlow:
install the ``prepare`` extra (``pip install -e '.[prepare]'``) on a machine
with internet access, or use ``tfds build NAME --file_format=array_record``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from infocam_jax.wsol.boxes import iou_levels
from infocam_jax.data import cluttered
from infocam_jax.data import sources


def _otsu(values: np.ndarray) -> float:
  """Otsu's threshold of a 1-D sample (256 bins)."""
  hist, edges = np.histogram(values, bins=256)
  centres = (edges[:-1] + edges[1:]) / 2
  w0 = np.cumsum(hist)
  w1 = w0[-1] - w0
  m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
  m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
  return float(centres[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def salient_component_box(image: np.ndarray) -> np.ndarray:
  """A non-learned localiser: box of the largest connected blob that stands out from the background.

  |image - median background| summed over channels (the background is a
  16 x 16 median at half resolution, upsampled bilinearly), Otsu threshold,
  8-connected components, the largest one's inclusive box (x0, y0, x1, y1).
  (Of the non-learned variants tried, the median background scored best:
  mean or Gaussian backgrounds reach about a third of its hit rate.)
  """
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  g = image.astype(np.float32)
  h, w = g.shape[:2]
  half = ndimage.median_filter(g[::2, ::2], size=(8, 8, 1))
  background = ndimage.zoom(half, (h / half.shape[0], w / half.shape[1], 1), order=1)[:h, :w]
  contrast = np.abs(g - background).sum(-1)
  mask = contrast > _otsu(contrast.ravel())
  labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
  if count == 0:
    return np.array([0, 0, image.shape[1] - 1, image.shape[0] - 1])
  largest = np.argmax(ndimage.sum(mask, labels, range(1, count + 1))) + 1
  ys, xs = np.nonzero(labels == largest)
  return np.array([xs.min(), ys.min(), xs.max(), ys.max()])


def box_baselines(name: str, split: str = "test", data_dir=None) -> dict[str, float]:
  """Baselines (IoU >= 0.5 rates) on a localisation split of square images.

  ``full``, ``centred_mean``, ``centred_best``: image-independent boxes (see
  `cluttered.fixed_box_scores`); ``salient_component``: `salient_component_box`.
  Boxes are inclusive pixel corners of the stored images.
  """
  source = sources.load_source(name, split, data_dir)
  size = source.image_shape[0]
  boxes, salient = [], []
  for i in range(len(source)):
    ex = source[i]
    ymin, xmin, ymax, xmax = ex["bbox"][0]
    boxes.append(np.array([xmin * size, ymin * size, xmax * size - 1, ymax * size - 1]))
    salient.append(salient_component_box(ex["image"]))
  scores = cluttered.fixed_box_scores(np.array(boxes), size)
  hits = np.asarray(iou_levels(np.array(salient, np.float64), np.array(boxes), [0.5])) > 0
  scores["salient_component"] = int(hits.sum()) / len(source)
  scores["examples"] = len(source)
  return scores


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("name", nargs="?", help="tfds name, e.g. cluttered_digits/small")
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--manual_dir", default=None)
  parser.add_argument("--list", action="store_true", help="describe the datasets and splits")
  parser.add_argument("--stats", action="store_true",
                      help="print box baselines of the test split (JSON): full image, centred "
                           "boxes, largest salient blob")
  args = parser.parse_args(argv)
  if args.list or not args.name:
    print(sources.describe())
    return 0
  start = time.time()
  try:
    source = sources.load_source(args.name, sources.BASE_SPLITS.get(
        sources._dataset_name(args.name), ("train",))[0], args.data_dir,  # pylint: disable=protected-access
                                 manual_dir=args.manual_dir, download=True)
  except sources.DatasetUnavailableError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"{args.name}: prepared/found in {time.time() - start:.1f} s ({source!r}).")
  if args.stats:
    print(json.dumps(box_baselines(args.name, "test", args.data_dir), indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
