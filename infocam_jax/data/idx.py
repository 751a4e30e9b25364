"""tfds builder `mnist_idx`: MNIST-format IDX files on disk (MNIST, Fashion-MNIST, KMNIST, ...).

Nothing is downloaded and no TensorFlow is needed. The builder reads the four
official files (each either plain or gzip-compressed, ``.gz``)::

  train-images-idx3-ubyte   train-labels-idx1-ubyte
  t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

from the first of these directories that holds all four:

  1. ``<manual_dir>/<config name>/``  e.g. ``~/tensorflow_datasets/downloads/manual/mnist/``
  2. ``<manual_dir>/``               (``manual_dir`` of `data.load_source`; default
                                      ``<data_dir>/downloads/manual``)
  3. the config's system directories: ``/usr/share/datasets/fashion-mnist`` for
     ``fashion_mnist`` (Debian/Ubuntu: ``apt-get install dataset-fashion-mnist``).

    data.load_source("mnist_idx/fashion_mnist", "train")             # Debian package
    data.load_source("mnist_idx/mnist", "test", manual_dir="/data/mnist")

Configs (class names): ``mnist`` ("0".."9"), ``fashion_mnist`` (Zalando's
"T-shirt/top", "Trouser", ...), ``kmnist`` (romanised Kuzushiji-MNIST
hiragana "o", "ki", ...), ``generic`` ("0".."9": any other 10-class set of
28x28 IDX files).

Every header is validated before anything is written: magic number (two zero
bytes, type 0x08 = unsigned byte, 3 dimensions for images and 1 for labels),
28x28 images, file size exactly header + product of dimensions (a truncated
or padded file is an error, never a shorter dataset), equal image and label
counts, labels below the number of classes. A bad file raises `ValueError`
naming it; missing files raise `FileNotFoundError`, which
`data.load_source` turns into `DatasetUnavailableError` with the expected
names, the directories searched and how to obtain them.

Features: ``image`` uint8 [28, 28, 1] (PNG), ``label`` ClassLabel; no boxes.
Splits: ``train`` and ``test`` in file order (shuffling disabled, so record i
is row i of the file; the paper's derived MNIST splits of
`infocam_jax.data.sources.SPLITS` apply unchanged). ``info.metadata`` records
the source directory and the SHA-256 of the four files.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

__all__ = ["IdxConfig", "MnistIdx", "FILES", "SYSTEM_DIRS", "read_idx", "read_split",
           "find_source_dir", "how_to_obtain", "file_hashes"]

#: The four official file names (without ``.gz``), by (split, kind).
FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
#: Directories searched after the manual directory, by config name (read at
#: preparation time, so a test can empty it).
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",),
}
IMAGE_SHAPE = (28, 28)
_UBYTE = 0x08

FASHION_MNIST_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                       "Sneaker", "Bag", "Ankle boot")
KMNIST_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
DIGIT_NAMES = tuple(str(d) for d in range(10))

_HOW = {
    "mnist": "the four files from https://yann.lecun.com/exdb/mnist/ (or any mirror)",
    "fashion_mnist": ("on Debian/Ubuntu: apt-get install dataset-fashion-mnist (installs them in "
                      "/usr/share/datasets/fashion-mnist; `dpkg -L dataset-fashion-mnist` lists "
                      "them), or the four files from "
                      "https://github.com/zalandoresearch/fashion-mnist"),
    "kmnist": "the four MNIST-format files from https://github.com/rois-codh/kmnist",
    "generic": "any ten-class set of 28x28 images in the four MNIST-format files",
}


@dataclasses.dataclass(eq=False)
class IdxConfig(tfds.core.BuilderConfig):
  """One family of MNIST-format files.

  Attributes:
    class_names: the 10 class names, in label order.
    homepage: where the files come from.
  """

  class_names: tuple[str, ...] = DIGIT_NAMES
  homepage: str = ""


def _open_bytes(path: str) -> bytes:
  """Whole content of a plain or gzip file; a truncated or corrupt gzip stream is a ValueError."""
  with open(path, "rb") as f:
    raw = f.read()
  if not path.endswith(".gz"):
    return raw
  try:
    return gzip.decompress(raw)
  except (EOFError, OSError, zlib.error) as e:
    raise ValueError(f"{path}: not a complete gzip file ({type(e).__name__}: {e}); the file is "
                     f"truncated or corrupt, fetch it again.") from None


def read_idx(path: str, *, ndim: int) -> np.ndarray:
  """Reads one IDX file of unsigned bytes with `ndim` dimensions, validating its header.

  Format (big-endian): two zero bytes, the type code (0x08 = ubyte), the
  number of dimensions, one int32 per dimension, then the data, row-major.

  Args:
    path: a plain or ``.gz`` file.
    ndim: the expected number of dimensions (3 for images, 1 for labels).

  Returns:
    uint8 array with the header's shape.

  Raises:
    ValueError: wrong magic number, type, dimension count, or a size that is
      not exactly header + data (truncated or trailing bytes).
  """
  content = _open_bytes(path)
  if len(content) < 4:
    raise ValueError(f"{path}: {len(content)} bytes, too short for an IDX header.")
  zero, kind, dims = content[0:2], content[2], content[3]
  if zero != b"\x00\x00" or kind != _UBYTE or dims != ndim:
    raise ValueError(
        f"{path}: magic number 0x{content[:4].hex()} is not that of an IDX file of unsigned bytes "
        f"with {ndim} dimension(s) (expected 0x0000080{ndim}).")
  header = 4 + 4 * ndim
  if len(content) < header:
    raise ValueError(f"{path}: {len(content)} bytes, too short for its {ndim}-dimension header.")
  shape = tuple(int(v) for v in np.frombuffer(content, ">i4", ndim, 4))
  expected = header + int(np.prod(shape, dtype=np.int64))
  if len(content) != expected:
    what = "truncated" if len(content) < expected else "longer than its header says"
    raise ValueError(f"{path}: {what}: header says shape {shape} = {expected} bytes with the "
                     f"header, the file has {len(content)}.")
  return np.frombuffer(content, np.uint8, offset=header).reshape(shape)


def _file_in(directory: str, name: str) -> str | None:
  for candidate in (name + ".gz", name):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  return None


def _candidates(config_name: str, manual_dir: str | os.PathLike | None) -> list[str]:
  dirs = []
  if manual_dir:
    dirs += [os.path.join(os.fspath(manual_dir), config_name), os.fspath(manual_dir)]
  dirs += list(SYSTEM_DIRS.get(config_name, ()))
  return dirs


def manual_dir_of(dl_manager):
  """The tfds manual directory, also when it is missing or empty (it is still searched and listed)."""
  try:
    return dl_manager.manual_dir
  except AssertionError:  # tfds asserts that the manual directory exists and is not empty
    return getattr(dl_manager, "_manual_dir", None)


def find_source_dir(config_name: str, manual_dir: str | os.PathLike | None
                    ) -> tuple[str | None, list[str]]:
  """(first directory holding all four files or None, the directories searched in order)."""
  searched = _candidates(config_name, manual_dir)
  for d in searched:
    if all(_file_in(d, name) for name in FILES.values()):
      return d, searched
  return None, searched


def how_to_obtain(config_name: str, searched: Sequence[str], dataset: str = "mnist_idx") -> str:
  """The missing-files instructions: expected names, where we looked, how to get them."""
  names = ", ".join(f"{n}[.gz]" for n in FILES.values())
  looked = "; ".join(searched) if searched else "(no directory)"
  return (
      f"{dataset}/{config_name} needs the four MNIST-format files {names} in one directory. "
      f"Looked in: {looked}. Get them: {_HOW.get(config_name, _HOW['generic'])}; then put them "
      f"in <manual_dir>/{config_name}/ or pass their directory as manual_dir= "
      f"(data.load_source) / --manual_dir (python -m infocam_jax.data.prepare).")


def read_split(directory: str, split: str, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 28, 28], labels int64 [N]) of one split, headers and counts validated."""
  paths = {kind: _file_in(directory, FILES[(split, kind)]) for kind in ("images", "labels")}
  missing = [FILES[(split, k)] for k, p in paths.items() if p is None]
  if missing:
    raise FileNotFoundError(f"{directory}: missing {', '.join(missing)} (plain or .gz).")
  images_path, labels_path = paths["images"], paths["labels"]
  assert images_path is not None and labels_path is not None  # (checked above)
  images = read_idx(images_path, ndim=3)
  labels = read_idx(labels_path, ndim=1)
  if images.shape[1:] != IMAGE_SHAPE:
    raise ValueError(f"{paths['images']}: images are {images.shape[1:]}, expected {IMAGE_SHAPE}.")
  if images.shape[0] != labels.shape[0]:
    raise ValueError(f"{paths['images']} holds {images.shape[0]} images but {paths['labels']} "
                     f"{labels.shape[0]} labels: the files do not belong together.")
  if labels.size and labels.max() >= num_classes:
    raise ValueError(f"{paths['labels']}: label {labels.max()} is not below {num_classes} classes.")
  return images, labels.astype(np.int64)


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def file_hashes(directory: str) -> dict[str, str]:
  """{file name: SHA-256 hex} of the four files found in `directory` (provenance metadata)."""
  return {os.path.basename(p): _sha256(p)
          for p in (_file_in(directory, n) for n in FILES.values()) if p}


def _png(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image, mode="L").save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


class MnistIdx(tfds.core.GeneratorBasedBuilder):
  """MNIST-format IDX files from a local directory (module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: official train/test splits in file order."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = how_to_obtain("<config>",
                                               ["<manual_dir>/<config>", "<manual_dir>"])
  BUILDER_CONFIGS = [
      IdxConfig(name="mnist", description="MNIST handwritten digits.",
                class_names=DIGIT_NAMES, homepage="https://yann.lecun.com/exdb/mnist/"),
      IdxConfig(name="fashion_mnist", description="Zalando's Fashion-MNIST article images.",
                class_names=FASHION_MNIST_NAMES,
                homepage="https://github.com/zalandoresearch/fashion-mnist"),
      IdxConfig(name="kmnist", description="Kuzushiji-MNIST (cursive hiragana).",
                class_names=KMNIST_NAMES, homepage="https://github.com/rois-codh/kmnist"),
      IdxConfig(name="generic", description="Any 10-class 28x28 set in the MNIST file format.",
                class_names=DIGIT_NAMES),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "mnist"

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=IMAGE_SHAPE + (1,), encoding_format="png"),
            "label": tfds.features.ClassLabel(names=list(config.class_names)),
        }),
        supervised_keys=("image", "label"),
        homepage=config.homepage or None,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    name = self.builder_config.name
    directory, searched = find_source_dir(name, manual_dir_of(dl_manager))
    if directory is None:
      raise FileNotFoundError(how_to_obtain(name, searched))
    num_classes = len(self.builder_config.class_names)
    arrays = {split: read_split(directory, split, num_classes) for split in ("train", "test")}
    self.info.metadata["source_dir"] = os.path.abspath(directory)
    self.info.metadata["sha256"] = file_hashes(directory)
    return {split: self._generate_examples(*arrays[split]) for split in ("train", "test")}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for i in range(len(labels)):
      yield i, {"image": _png(images[i]), "label": int(labels[i])}
