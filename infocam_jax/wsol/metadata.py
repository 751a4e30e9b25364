"""Readers of wsolevaluation's metadata folders (``<metadata_root>/<dataset>/<split>/``).

The files and their formats (clovaai/wsolevaluation ``data_loaders.py``; one
record per line, comma separated, no header):

* ``image_ids.txt``: ``<image_id>`` (a relative image path, e.g.
  ``001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg``);
* ``class_labels.txt``: ``<image_id>,<integer label>``;
* ``image_sizes.txt``: ``<image_id>,<width>,<height>`` (W first);
* ``localization.txt`` for boxes (CUB, ILSVRC): ``<image_id>,<x0>,<y0>,<x1>,<y1>``
  in original-image pixels, integers, one line per box (several lines for
  an image with several boxes);
* ``localization.txt`` for masks (OpenImages): ``<image_id>,<mask path>,<ignore
  path>``, one line per instance mask; the ignore path is given on the
  image's first line only (empty on the others).

Lines are split as the peer splits them (``line.strip('\\n').split(',')``,
``int()`` for numbers). Anything the peer would crash on -- a wrong number of
fields, a number ``int()`` rejects, a negative coordinate, ``x1 < x0`` -- raises
:class:`MetadataError` naming ``file:line``. Score maps are looked up at
``<scoremap_root>/<image_id>.npy`` (:func:`scoremap_path`), as the peer's
``np.save(<scoremap_root>/<image_id>)`` writes them.

Example::

    meta = read_metadata("metadata", "CUB", "test")
    meta.image_ids[0], meta.image_sizes[meta.image_ids[0]], meta.boxes[meta.image_ids[0]]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

DATASETS = ("CUB", "ILSVRC", "OpenImages")
MASK_DATASETS = ("OpenImages",)


class MetadataError(ValueError):
  """A metadata file is missing or has a malformed line (the message names ``file:line``)."""


@dataclasses.dataclass(frozen=True)
class Metadata:
  """One split's metadata.

  Attributes:
    root: the split's folder.
    dataset: ``"CUB" | "ILSVRC" | "OpenImages"``.
    image_ids: in file order (the evaluation order).
    image_sizes: ``image_id -> (width, height)`` (wsolevaluation's order).
    boxes: ``image_id -> [(x0, y0, x1, y1), ...]`` int, original pixels (box datasets).
    mask_paths: ``image_id -> [mask path, ...]`` (OpenImages).
    ignore_paths: ``image_id -> ignore path`` (OpenImages).
  """
  root: str
  dataset: str
  image_ids: list[str]
  image_sizes: dict[str, tuple[int, int]]
  boxes: dict[str, list[tuple[int, int, int, int]]]
  mask_paths: dict[str, list[str]]
  ignore_paths: dict[str, str]


def _lines(path: str) -> Iterator[tuple[int, str]]:
  if not os.path.isfile(path):
    raise MetadataError(f"{path}: metadata file not found.")
  with open(path) as f:
    for i, line in enumerate(f.readlines(), start=1):
      yield i, line.strip("\n")


def _fields(path: str, i: int, line: str, n: int, form: str) -> list[str]:
  parts = line.split(",")
  if len(parts) != n or not parts[0]:
    raise MetadataError(f"{path}:{i}: expected '{form}', got {line!r}.")
  return parts


def _int(path: str, i: int, line: str, s: str, what: str) -> int:
  try:
    return int(s)
  except ValueError:
    raise MetadataError(f"{path}:{i}: {what} must be an integer, got {s!r} in {line!r}.") from None


def read_image_ids(path: str) -> list[str]:
  """``image_ids.txt`` -> ids in file order (an empty line is an error)."""
  ids = []
  for i, line in _lines(path):
    if not line:
      raise MetadataError(f"{path}:{i}: empty image id.")
    ids.append(line)
  return ids


def read_class_labels(path: str) -> dict[str, int]:
  """``class_labels.txt`` -> ``image_id -> label``."""
  out = {}
  for i, line in _lines(path):
    image_id, label = _fields(path, i, line, 2, "<image_id>,<class label>")
    out[image_id] = _int(path, i, line, label, "the class label")
  return out


def read_image_sizes(path: str) -> dict[str, tuple[int, int]]:
  """``image_sizes.txt`` -> ``image_id -> (width, height)`` (positive ints)."""
  out = {}
  for i, line in _lines(path):
    image_id, ws, hs = _fields(path, i, line, 3, "<image_id>,<width>,<height>")
    w, h = _int(path, i, line, ws, "the width"), _int(path, i, line, hs, "the height")
    if w <= 0 or h <= 0:
      raise MetadataError(f"{path}:{i}: the image size must be positive, got {line!r}.")
    out[image_id] = (w, h)
  return out


def read_boxes(path: str) -> dict[str, list[tuple[int, int, int, int]]]:
  """Box ``localization.txt`` -> ``image_id -> [(x0, y0, x1, y1), ...]`` (file order).

  Coordinates must be non-negative integers with ``x0 <= x1`` and ``y0 <= y1``
  (wsolevaluation's ``check_box_convention``).
  """
  out: dict[str, list[tuple[int, int, int, int]]] = {}
  for i, line in _lines(path):
    image_id, *cs = _fields(path, i, line, 5, "<image_id>,<x0>,<y0>,<x1>,<y1>")
    x0, y0, x1, y1 = (_int(path, i, line, c, "a box coordinate") for c in cs)
    if min(x0, y0, x1, y1) < 0:
      raise MetadataError(f"{path}:{i}: box coordinates must be non-negative, got {line!r}.")
    if x1 < x0 or y1 < y0:
      raise MetadataError(f"{path}:{i}: the box must be x0,y0,x1,y1 with x0 <= x1 and "
                          f"y0 <= y1, got {line!r}.")
    out.setdefault(image_id, []).append((x0, y0, x1, y1))
  return out


def read_mask_paths(path: str) -> tuple[dict[str, list[str]], dict[str, str]]:
  """Mask ``localization.txt`` -> ``(image_id -> [mask paths], image_id -> ignore path)``.

  As the peer: an image's first line gives its ignore mask; later lines of
  the same image must leave the ignore field empty. A first line without an
  ignore path is an error (the peer would fail reading the folder as an image).
  """
  masks: dict[str, list[str]] = {}
  ignore: dict[str, str] = {}
  for i, line in _lines(path):
    image_id, mask, ign = _fields(path, i, line, 3, "<image_id>,<mask path>,<ignore path>")
    if not mask:
      raise MetadataError(f"{path}:{i}: empty mask path in {line!r}.")
    if image_id in masks:
      if ign:
        raise MetadataError(f"{path}:{i}: the ignore mask of {image_id!r} was given on its "
                            f"first line; later lines must leave it empty, got {line!r}.")
      masks[image_id].append(mask)
    else:
      if not ign:
        raise MetadataError(f"{path}:{i}: the first line of {image_id!r} must name its "
                            f"ignore mask, got {line!r}.")
      masks[image_id] = [mask]
      ignore[image_id] = ign
  return masks, ignore


def read_metadata(metadata_root: str, dataset: str, split: str) -> Metadata:
  """Reads ``<metadata_root>/<dataset>/<split>/`` and checks that every image id has its
  size and at least one box (or mask); raises :class:`MetadataError` otherwise."""
  if dataset not in DATASETS:
    raise MetadataError(f"dataset_name must be one of {DATASETS}, got {dataset!r}.")
  root = os.path.join(metadata_root, dataset, split)
  if not os.path.isdir(root):
    raise MetadataError(f"{root}: metadata folder not found (expected "
                        "<metadata_root>/<dataset_name>/<split>/).")
  ids = read_image_ids(os.path.join(root, "image_ids.txt"))
  loc = os.path.join(root, "localization.txt")
  boxes: dict[str, list[tuple[int, int, int, int]]] = {}
  masks: dict[str, list[str]] = {}
  ignore: dict[str, str] = {}
  sizes: dict[str, tuple[int, int]] = {}
  have: Mapping[str, Sequence[Any]]
  if dataset in MASK_DATASETS:
    masks, ignore = read_mask_paths(loc)
    have, what = masks, "mask"
  else:
    sizes = read_image_sizes(os.path.join(root, "image_sizes.txt"))
    boxes = read_boxes(loc)
    have, what = boxes, "box"
    for image_id in ids:
      if image_id not in sizes:
        raise MetadataError(f"{os.path.join(root, 'image_sizes.txt')}: no size for image "
                            f"{image_id!r}.")
  for image_id in ids:
    if image_id not in have:
      raise MetadataError(f"{loc}: no {what} for image {image_id!r}.")
  return Metadata(root=root, dataset=dataset, image_ids=ids, image_sizes=sizes, boxes=boxes,
                  mask_paths=masks, ignore_paths=ignore)


def scoremap_path(scoremap_root: str, image_id: str) -> str:
  """``<scoremap_root>/<image_id>.npy``: where wsolevaluation saves and reads a score map."""
  return os.path.join(scoremap_root, image_id + ".npy")
