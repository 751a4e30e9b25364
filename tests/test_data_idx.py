"""`mnist_idx`: IDX files on disk -> tfds array_record (no TF), header checks, errors."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from infocam_jax import data
from infocam_jax.data import idx

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array: np.ndarray, *, magic: bytes | None = None, extra: bytes = b"",
              cut: int = 0) -> None:
  """Writes `array` (uint8) as an IDX file; ``.gz`` paths are gzip-compressed.

  `magic` overrides the 4 magic bytes, `extra` is appended, `cut` bytes are
  dropped from the end (truncated files).
  """
  array = np.asarray(array, np.uint8)
  head = magic if magic is not None else bytes([0, 0, 8, array.ndim])
  content = head + np.asarray(array.shape, ">i4").tobytes() + array.tobytes() + extra
  if cut:
    content = content[:-cut]
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(content)


def fake_arrays(n: int, seed: int, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """Images that encode their row (pixels (0,0), (0,1) = row % 256, row // 256) and labels."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
  rows = np.arange(n)
  images[:, 0, 0] = rows % 256
  images[:, 0, 1] = rows // 256
  labels = rng.integers(0, num_classes, n).astype(np.uint8)
  return images, labels


def write_set(directory, n_train: int = 50, n_test: int = 20, *, gz_train: bool = True,
              gz_test: bool = False, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The four files in `directory` (train gzipped, test plain by default); returns the arrays."""
  os.makedirs(directory, exist_ok=True)
  out = {"train": fake_arrays(n_train, seed), "test": fake_arrays(n_test, seed + 1)}
  for split, gz in (("train", gz_train), ("test", gz_test)):
    for kind, array in zip(("images", "labels"), out[split]):
      write_idx(os.path.join(directory, idx.FILES[(split, kind)] + (".gz" if gz else "")), array)
  return out


@pytest.fixture
def no_system_dirs(monkeypatch):
  """Hide the Debian directory, so tests behave the same with or without the package."""
  monkeypatch.setattr(idx, "SYSTEM_DIRS", {})


def test_round_trip_file_order_classes_and_metadata(tmp_path, no_system_dirs):
  manual = tmp_path / "manual"
  arrays = write_set(manual / "fashion_mnist")
  tfds_dir = tmp_path / "tfds"
  for split, (images, labels) in arrays.items():
    source = data.load_source("mnist_idx/fashion_mnist", split, tfds_dir, manual_dir=manual)
    assert len(source) == len(labels) and source.num_classes == 10
    assert source.class_names[0] == "T-shirt/top" and source.class_names[8] == "Bag"
    np.testing.assert_array_equal(source.labels, labels)
    for i in (0, 7, len(labels) - 1):
      ex = source[i]
      assert ex["image"].shape == (28, 28, 1) and ex["image"].dtype == np.uint8
      np.testing.assert_array_equal(ex["image"][..., 0], images[i])  # record i = row i
      assert ex["label"] == labels[i] and ex["bbox"].shape == (0, 4)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  info = tfds.builder("mnist_idx/fashion_mnist", data_dir=tfds_dir).info
  assert info.metadata["source_dir"] == os.path.abspath(manual / "fashion_mnist")
  assert set(info.metadata["sha256"]) == {
      "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte",
      "t10k-labels-idx1-ubyte"}


def test_derived_splits_follow_file_rows(tmp_path, no_system_dirs):
  """The paper's MNIST rules apply to the file rows: small files lie wholly in 0-39,999."""
  arrays = write_set(tmp_path / "tfds" / "downloads" / "manual" / "mnist", n_train=60)
  train = data.load_source("mnist_idx", "imbalanced_train", tmp_path / "tfds")  # default manual dir
  np.testing.assert_array_equal(train.indices, np.arange(60))  # caps 300 / 3,000 not reached
  np.testing.assert_array_equal(train.labels, arrays["train"][1])
  assert train.class_names == tuple("0123456789")
  assert len(data.load_source("mnist_idx", "validation", tmp_path / "tfds")) == 0  # rows >= 50,000


def test_files_directly_in_the_manual_dir_and_configs(tmp_path, no_system_dirs):
  arrays = write_set(tmp_path / "kmnist_files", gz_train=False, gz_test=True)
  source = data.load_source("mnist_idx/kmnist", "test", tmp_path / "tfds",
                            manual_dir=tmp_path / "kmnist_files")
  np.testing.assert_array_equal(source.labels, arrays["test"][1])
  assert source.class_names[:3] == ("o", "ki", "su")


def test_missing_files_error_lists_names_places_and_instructions(tmp_path, no_system_dirs):
  manual = tmp_path / "manual"
  write_set(manual / "fashion_mnist")
  os.remove(manual / "fashion_mnist" / "t10k-labels-idx1-ubyte")
  with pytest.raises(data.DatasetUnavailableError) as err:
    data.load_source("mnist_idx/fashion_mnist", "train", tmp_path / "tfds", manual_dir=manual)
  msg = str(err.value)
  for name in idx.FILES.values():
    assert name in msg
  assert str(manual / "fashion_mnist") in msg and str(manual) in msg
  assert "apt-get install dataset-fashion-mnist" in msg and "dpkg -L" in msg


def test_debian_directory_is_the_fashion_default(monkeypatch, tmp_path):
  system = tmp_path / "usr_share"
  arrays = write_set(system)
  monkeypatch.setattr(idx, "SYSTEM_DIRS", {"fashion_mnist": (str(system),)})
  assert idx.find_source_dir("fashion_mnist", tmp_path / "empty")[0] == str(system)
  assert idx.find_source_dir("mnist", tmp_path / "empty")[0] is None  # only Fashion has a default
  source = data.load_source("mnist_idx/fashion_mnist", "test", tmp_path / "tfds")
  np.testing.assert_array_equal(source.labels, arrays["test"][1])


def test_debian_path_is_where_the_package_installs():
  # `dpkg -L dataset-fashion-mnist` (Debian bookworm, 0.0~git20200523.55506a9-1) lists
  # /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
  assert idx.SYSTEM_DIRS["fashion_mnist"] == (DEBIAN_DIR,)


@pytest.mark.parametrize("case, match", [
    ("magic", "magic number"),
    ("labels_as_images", "magic number"),
    ("truncated", "truncated"),
    ("truncated_gz", "not a complete gzip"),
    ("trailing", "longer than its header"),
    ("count_mismatch", "do not belong together"),
    ("image_size", r"\(32, 32\)"),
    ("label_range", "not below 10"),
])
def test_bad_files_are_clear_errors_never_shorter_datasets(tmp_path, no_system_dirs, case, match):
  d = tmp_path / "files"
  write_set(d, gz_train=False, gz_test=False)
  images, labels = fake_arrays(50, 0)
  img = d / idx.FILES[("train", "images")]
  lab = d / idx.FILES[("train", "labels")]
  if case == "magic":
    write_idx(img, images, magic=b"\x00\x00\x0d\x03")  # float32 type code
  elif case == "labels_as_images":
    write_idx(img, labels)  # 1 dimension where images need 3
  elif case == "truncated":
    write_idx(img, images, cut=100)
  elif case == "truncated_gz":
    os.remove(img)
    write_idx(str(img) + ".gz", images)
    raw = open(str(img) + ".gz", "rb").read()
    open(str(img) + ".gz", "wb").write(raw[: len(raw) // 2])
  elif case == "trailing":
    write_idx(img, images, extra=b"\x00" * 28)
  elif case == "count_mismatch":
    write_idx(lab, labels[:49])
  elif case == "image_size":
    write_idx(img, np.zeros((50, 32, 32), np.uint8))
  elif case == "label_range":
    write_idx(lab, np.full(50, 10, np.uint8))
  with pytest.raises(ValueError, match=match):
    idx.read_split(str(d), "train")
  with pytest.raises(ValueError, match=match):  # and nothing is prepared
    data.load_source("mnist_idx/generic", "train", tmp_path / "tfds", manual_dir=d)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  assert not tfds.builder("mnist_idx/generic", data_dir=tmp_path / "tfds").is_prepared()


def test_prepared_and_read_without_tensorflow(tmp_path):
  write_set(tmp_path / "files")
  code = ("import sys; from infocam_jax import data; "
          f"s = data.load_source('mnist_idx/generic', 'test', {str(tmp_path / 'tfds')!r}, "
          f"manual_dir={str(tmp_path / 'files')!r}); s[3]; "
          "assert 'tensorflow' not in sys.modules; print(len(s))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip().splitlines()[-1] == "20"


def test_read_idx_closed_form(tmp_path):
  a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  write_idx(tmp_path / "a.gz", a)
  raw = open(tmp_path / "a.gz", "rb").read()
  assert gzip.decompress(raw)[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
  np.testing.assert_array_equal(idx.read_idx(str(tmp_path / "a.gz"), ndim=3), a)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(DEBIAN_DIR),
                    reason=f"{DEBIAN_DIR} missing: apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_from_the_debian_package(tmp_path):
  """The real files: official sizes, file order, and the paper's imbalanced protocol counts."""
  tfds_dir = tmp_path / "tfds"
  images, labels = idx.read_split(DEBIAN_DIR, "train")
  train = data.load_source("mnist_idx/fashion_mnist", "train", tfds_dir)
  assert len(train) == 60_000 and (train.class_counts == 6000).all()
  for i in (0, 31_337, 59_999):
    np.testing.assert_array_equal(train[i]["image"][..., 0], images[i])
  test = data.load_source("mnist_idx/fashion_mnist", "test", tfds_dir)
  assert len(test) == 10_000 and (test.class_counts == 1000).all()
  imb = data.load_source("mnist_idx/fashion_mnist", "imbalanced_train", tfds_dir)
  assert imb.class_counts.tolist() == [300, 3000] * 5
  paper_test = data.load_source("mnist_idx/fashion_mnist", "imbalanced_test", tfds_dir)
  expected = [min(300 if c % 2 == 0 else 3000, int((labels[40_000:50_000] == c).sum()))
              for c in range(10)]
  assert paper_test.class_counts.tolist() == expected
  assert ((paper_test.indices >= 40_000) & (paper_test.indices < 50_000)).all()
