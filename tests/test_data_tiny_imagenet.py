"""`tiny_imagenet` prepared (without TF) from a fake zip with the official layout."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from infocam_jax import data

NUM_USED = 3  # classes with images; wnids.txt lists 200 like the real file


def _jpeg(rng, gray=False):
  shape = (64, 64) if gray else (64, 64, 3)
  buf = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, format="JPEG")
  return buf.getvalue()


def make_fake_zip(path, train_per_class=4, val_per_class=4, seed=0):
  """Official layout: wnids.txt, words.txt, train/<wnid>/{images, <wnid>_boxes.txt}, val/..., test/...

  Returns {file name: (wnid, (x_min, y_min, x_max, y_max))}.
  """
  rng = np.random.default_rng(seed)
  wnids = [f"n{9_000_000 + 7 * i:08d}" for i in range(200)]
  used = wnids[:NUM_USED]
  truth = {}

  def corners():
    x0, y0 = (int(v) for v in rng.integers(0, 40, 2))
    return x0, y0, x0 + int(rng.integers(3, 24)), y0 + int(rng.integers(3, 24))

  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("tiny-imagenet-200/wnids.txt", "\n".join(reversed(wnids)) + "\n")  # unsorted
    zf.writestr("tiny-imagenet-200/words.txt",
                "".join(f"{w}\tthing {i}, object\n" for i, w in enumerate(wnids)))
    for w in wnids:
      lines = []
      for j in range(train_per_class if w in used else 0):
        name = f"{w}_{j}.JPEG"
        box = corners()
        zf.writestr(f"tiny-imagenet-200/train/{w}/images/{name}", _jpeg(rng, gray=(j == 1)))
        lines.append(f"{name}\t" + "\t".join(map(str, box)) + "\n")
        truth[name] = (w, box)
      zf.writestr(f"tiny-imagenet-200/train/{w}/{w}_boxes.txt", "".join(lines))
    lines = []
    for k in range(val_per_class * NUM_USED):
      name, w, box = f"val_{k}.JPEG", used[(k * 7) % NUM_USED], corners()
      zf.writestr(f"tiny-imagenet-200/val/images/{name}", _jpeg(rng))
      lines.append(f"{name}\t{w}\t" + "\t".join(map(str, box)) + "\n")
      truth[name] = (w, box)
    zf.writestr("tiny-imagenet-200/val/val_annotations.txt", "".join(lines))
    zf.writestr("tiny-imagenet-200/test/images/test_0.JPEG", _jpeg(rng))
  return wnids, truth


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp("tiny")
  manual = root / "manual"
  manual.mkdir()
  wnids, truth = make_fake_zip(manual / "tiny-imagenet-200.zip")
  train = data.load_source("tiny_imagenet", "train", root / "tfds", manual_dir=manual)
  return root / "tfds", wnids, truth, train


def _ids(data_dir, split):
  ds = tfds.data_source("tiny_imagenet", split=split, data_dir=data_dir)
  return [ds[i]["id"].decode() for i in range(len(ds))]


def test_classes_labels_and_metadata(prepared):
  data_dir, wnids, truth, train = prepared
  assert len(train) == 4 * NUM_USED and train.num_classes == 200
  assert list(train.class_names) == sorted(wnids)
  ids = _ids(data_dir, "train")
  for i, name in enumerate(ids):
    assert train.class_names[train[i]["label"]] == truth[name][0]
  builder = tfds.builder("tiny_imagenet", data_dir=data_dir)
  assert builder.info.metadata["words"][wnids[5]] == "thing 5, object"
  assert builder.info.splits["validation"].num_examples == 4 * NUM_USED
  gray = train[ids.index(f"{wnids[0]}_1.JPEG")]["image"]
  assert gray.shape == (64, 64, 3) and (gray[..., 0] == gray[..., 2]).all()


@pytest.mark.parametrize("split", ["train", "validation"])
def test_corner_boxes_reach_the_network_input_unchanged(prepared, split):
  """Corners (x_min, y_min, x_max, y_max) are inclusive pixels: at 64 -> 64 they come out equal."""
  data_dir, _, truth, _ = prepared
  source = data.load_source("tiny_imagenet", split, data_dir)
  ids = _ids(data_dir, split)
  pipe = data.make_pipeline(source, batch_size=len(source), train=False, image_size=64,
                            num_threads=0)
  batch = pipe.get_batch(0)
  for row, index in enumerate(batch["index"]):
    np.testing.assert_allclose(batch["bbox"][row, 0], truth[ids[index]][1], atol=1e-4)
  assert batch["bbox_mask"].all()


def test_paper_halves_of_the_validation_set(prepared):
  data_dir, _, truth, _ = prepared
  ids = _ids(data_dir, "validation")
  halves = [data.load_source("tiny_imagenet", s, data_dir) for s in ("wsol_val", "wsol_test")]
  assert [len(h) for h in halves] == [6, 6]
  for part, half in enumerate(halves):
    assert (half.class_counts[:NUM_USED] == 2).all()
    for c in range(NUM_USED):
      wnid = half.class_names[c]
      numbers = sorted(int(n[4:-5]) for n in ids if truth[n][0] == wnid)
      chosen = sorted(int(ids[i][4:-5]) for i in half.indices if truth[ids[i]][0] == wnid)
      assert chosen == numbers[part::2]
  # Metadata was cached next to the data on first use.
  assert os.path.exists(os.path.join(tfds.builder("tiny_imagenet", data_dir=data_dir).data_path,
                                     ".infocam-meta-validation.npz"))


def test_a_zip_with_the_wrong_class_count_is_rejected(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  with zipfile.ZipFile(manual / "tiny-imagenet-200.zip", "w") as zf:
    zf.writestr("tiny-imagenet-200/wnids.txt", "n01\nn02\n")
    zf.writestr("tiny-imagenet-200/val/val_annotations.txt", "")
    for w in ("n01", "n02"):
      zf.writestr(f"tiny-imagenet-200/train/{w}/{w}_boxes.txt", "")
  with pytest.raises(ValueError, match="200"):
    data.load_source("tiny_imagenet", "train", tmp_path / "tfds", manual_dir=manual)
