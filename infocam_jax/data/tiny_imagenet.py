"""tfds builder `tiny_imagenet`: Tiny-ImageNet-200 from the official zip in tfds' manual directory.

Nothing is downloaded: place the official ``tiny-imagenet-200.zip``
(http://cs231n.stanford.edu/tiny-imagenet-200.zip) in the manual directory,
``<data_dir>/downloads/manual/`` by default (or pass ``manual_dir``). The zip
holds::

  tiny-imagenet-200/wnids.txt                      200 WordNet ids
  tiny-imagenet-200/words.txt                      wnid <TAB> human-readable names
  tiny-imagenet-200/train/<wnid>/images/*.JPEG     500 per class
  tiny-imagenet-200/train/<wnid>/<wnid>_boxes.txt  file <TAB> x_min y_min x_max y_max
  tiny-imagenet-200/val/images/*.JPEG              10,000
  tiny-imagenet-200/val/val_annotations.txt        file <TAB> wnid <TAB> x_min y_min x_max y_max
  tiny-imagenet-200/test/images/*.JPEG             10,000 without labels (not exposed)

Boxes are corners (x_min, y_min, x_max, y_max) in pixels of the 64 x 64
image, read as *inclusive* pixel indices (the maxima reach 63, never 64), so
the tfds box is (y_min / H, x_min / W, (y_max + 1) / H, (x_max + 1) / W). (The
official infoCAM code read these corners as x, y, w, h; that bug is
reproduced, if wanted, by the evaluator's legacy protocol, not here.)

Labels: index into the *sorted* wnids (torchvision ImageFolder's order; the
builder declares 200 classes so that `tfds.testing.mock_data` works without
metadata, and checks wnids.txt has 200 entries);
`info.features['label'].names` are the wnids and
`info.metadata['words']` maps each wnid to its words.txt names.

Splits: ``train`` (100,000) and ``validation`` (the official val set,
10,000, 50 per class, with boxes). The paper's halves of the validation set
are derived in `infocam_jax.data.sources` (``wsol_val`` / ``wsol_test``).

Images are stored as the original JPEG bytes (no TensorFlow needed: tfds
passes encoded bytes through); the few grayscale JPEGs decode to three equal
channels. Any image in another mode (e.g. CMYK) is converted to RGB and
stored as PNG.
"""

from __future__ import annotations

import io
import logging
import zipfile

import tensorflow_datasets as tfds
from PIL import Image

__all__ = ["TinyImagenet", "ZIP_NAME"]

ZIP_NAME = "tiny-imagenet-200.zip"
IMAGE_SIZE = 64
NUM_CLASSES = 200

_log = logging.getLogger(__name__)

_CITATION = """@article{le2015tiny,
  title = {Tiny ImageNet Visual Recognition Challenge},
  author = {Le, Ya and Yang, Xuan},
  journal = {CS 231N},
  year = {2015}
}"""


def _find_root(names: list[str]) -> str:
  """Prefix of the member holding wnids.txt ('' or 'tiny-imagenet-200/')."""
  for name in names:
    if name == "wnids.txt" or name.endswith("/wnids.txt"):
      return name[: -len("wnids.txt")]
  raise FileNotFoundError("the zip holds no wnids.txt: is it the official tiny-imagenet-200.zip?")


def _corners_to_bbox(fields: list[str], where: str) -> tuple[tfds.features.BBox, bool]:
  """(x_min, y_min, x_max, y_max) inclusive pixel corners -> tfds BBox; flags swapped corners."""
  if len(fields) != 4:
    raise ValueError(f"{where}: expected 4 box corners, got {fields!r}.")
  x0, y0, x1, y1 = (float(v) for v in fields)
  swapped = x1 < x0 or y1 < y0
  x0, x1 = min(x0, x1), max(x0, x1)
  y0, y1 = min(y0, y1), max(y0, y1)
  clip = lambda v: float(min(max(v, 0.0), 1.0))
  box = tfds.features.BBox(
      ymin=clip(y0 / IMAGE_SIZE), xmin=clip(x0 / IMAGE_SIZE),
      ymax=clip((y1 + 1) / IMAGE_SIZE), xmax=clip((x1 + 1) / IMAGE_SIZE))
  return box, swapped


def parse_annotations(zf: zipfile.ZipFile) -> dict:
  """Reads class lists and boxes from an open Tiny-ImageNet zip.

  Returns:
    dict with ``wnids`` (sorted), ``words`` (wnid -> names) and, per split,
    a list of (member name, wnid, BBox) in file order (train: class by class in
    sorted-wnid order, files in the boxes file's order; validation: the order
    of val_annotations.txt).
  """
  names = zf.namelist()
  root = _find_root(names)
  read = lambda member: zf.read(root + member).decode("utf-8")
  wnids = sorted(line.strip() for line in read("wnids.txt").splitlines() if line.strip())
  if len(set(wnids)) != len(wnids):
    raise ValueError("wnids.txt lists a class twice.")
  wanted = set(wnids)
  words = {}
  if root + "words.txt" in set(names):
    for line in read("words.txt").splitlines():
      parts = line.rstrip("\n").split("\t", 1)
      if len(parts) == 2 and parts[0] in wanted:
        words[parts[0]] = parts[1]
  swaps = 0
  train = []
  for wnid in wnids:
    for lineno, line in enumerate(read(f"train/{wnid}/{wnid}_boxes.txt").splitlines(), 1):
      if not line.strip():
        continue
      fields = line.split()
      box, swapped = _corners_to_bbox(fields[1:], f"train/{wnid}/{wnid}_boxes.txt:{lineno}")
      swaps += swapped
      train.append((f"{root}train/{wnid}/images/{fields[0]}", wnid, box))
  val = []
  for lineno, line in enumerate(read("val/val_annotations.txt").splitlines(), 1):
    if not line.strip():
      continue
    fields = line.split()
    if fields[1] not in wanted:
      raise ValueError(f"val/val_annotations.txt:{lineno}: class {fields[1]!r} is not in wnids.txt.")
    box, swapped = _corners_to_bbox(fields[2:6], f"val/val_annotations.txt:{lineno}")
    swaps += swapped
    val.append((f"{root}val/images/{fields[0]}", fields[1], box))
  if swaps:
    _log.warning("tiny_imagenet: %d boxes had x_max < x_min or y_max < y_min; corners were sorted.",
                 swaps)
  return {"wnids": wnids, "words": words, "train": train, "validation": val}


def _image_bytes(data: bytes, where: str) -> bytes:
  """The stored bytes: the JPEG itself, or a PNG of its RGB conversion for unusual modes."""
  with Image.open(io.BytesIO(data)) as im:
    if im.size != (IMAGE_SIZE, IMAGE_SIZE):
      raise ValueError(f"{where}: expected a {IMAGE_SIZE}x{IMAGE_SIZE} image, got {im.size}.")
    if im.mode in ("RGB", "L"):
      return data
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


class TinyImagenet(tfds.core.GeneratorBasedBuilder):
  """Tiny-ImageNet-200 (64x64, 200 classes) with boxes, from the official zip."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: train and validation with corner-format boxes."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the official {ZIP_NAME} (http://cs231n.stanford.edu/{ZIP_NAME}) and
place it, unextracted, in the manual directory (default:
<data_dir>/downloads/manual/{ZIP_NAME}), or pass manual_dir= to
infocam_jax.data.load_source / --manual_dir to the tfds CLI.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
            "bbox": tfds.features.BBoxFeature(),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://cs231n.stanford.edu/",
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    path = dl_manager.manual_dir / ZIP_NAME
    if not path.exists():
      raise FileNotFoundError(
          f"Tiny-ImageNet zip not found at {path}.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    with zipfile.ZipFile(path) as zf:
      ann = parse_annotations(zf)
    if len(ann["wnids"]) != NUM_CLASSES:
      raise ValueError(f"{path}: wnids.txt lists {len(ann['wnids'])} classes; Tiny-ImageNet-200 "
                       f"has {NUM_CLASSES}. Is this the official zip?")
    self.info.features["label"].names = ann["wnids"]
    self.info.metadata["words"] = ann["words"]
    return {split: self._generate_examples(path, ann[split], ann["wnids"])
            for split in ("train", "validation")}

  def _generate_examples(self, path, records, wnids):
    index = {w: i for i, w in enumerate(wnids)}
    with zipfile.ZipFile(path) as zf:
      for member, wnid, box in records:
        name = member.rsplit("/", 1)[-1]
        yield name, {
            "image": _image_bytes(zf.read(member), member),
            "label": index[wnid],
            "bbox": box,
            "id": name,
        }

