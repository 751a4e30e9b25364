"""The data rules, each stated by a test (issue 27): not one run's output, the rule itself.

* augmentation: a training example's crop and flip are drawn afresh every epoch and are a
  pure function of (seed, step), so a resume reproduces them;
* the generated cluttered-digits ground truth is exactly the tight box of the digit's ink at
  opacity >= 0.5 (cases are built where a lower threshold gives another box);
* normalisation uses the literal published ImageNet statistics;
* the IDX (MNIST / Fashion-MNIST), Tiny-ImageNet and CUB readers give the documented label of
  known files (the tests write their own small files).

Every assertion message names the rule and where it is documented.
"""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np

from infocam_jax import data
from infocam_jax.data import cluttered
from infocam_jax.data import idx
from infocam_jax.data import transforms

# -- augmentation: fresh per epoch, identical on a resume -----------------------------------

_S, _R = 16, 24  # crop 16 from a 24 x 24 resize: 9 x 9 offsets x 2 flips = 162 draws


def _coded_items(n: int) -> list[dict]:
  """Images whose pixels name their own (row, column) and example: the crop is readable."""
  yy, xx = np.mgrid[0:_R, 0:_R]
  items = []
  for i in range(n):
    image = np.stack([yy * 10, xx * 10, np.full_like(yy, i)], -1).astype(np.uint8)
    items.append({"image": image, "label": i % 3, "bbox": np.zeros((0, 4), np.float32)})
  return items


def _augmentation(image: np.ndarray) -> tuple[int, int, bool]:
  """(top, left, flipped) read back from a uint8 crop of a `_coded_items` image."""
  rows, cols = image[:, :, 0] // 10, image[:, :, 1] // 10
  top = int(rows[0, 0])
  flipped = bool(cols[0, 0] > cols[0, -1])
  left = int(cols[0, -1] if flipped else cols[0, 0])
  # The crop is a rigid window (+ mirror) of the resized image.
  assert (rows == top + np.arange(_S)[:, None]).all()
  step = -1 if flipped else 1
  assert (cols == (cols[0, 0] + step * np.arange(_S))[None, :]).all()
  return top, left, flipped


def _draws(pipe, steps) -> dict[tuple[int, int], tuple[int, int, bool]]:
  """{(epoch, example): (top, left, flip)} over the given training steps."""
  out = {}
  for step in steps:
    batch = pipe.get_batch(step)
    epoch = step // pipe.steps_per_epoch
    for row, index in enumerate(batch["index"]):
      assert batch["image"][row, 0, 0, 2] == index, "batch index must name the example shown"
      out[(epoch, int(index))] = _augmentation(batch["image"][row])
  return out


def test_augmentation_is_drawn_afresh_every_epoch():
  """Rule (pipeline docstring): example i's crop and flip draw from rng(seed, 1, epoch, i)."""
  n, b, epochs = 12, 4, 4  # 3 steps per epoch, every example seen once per epoch
  items = _coded_items(n)
  pipe = data.make_pipeline(items, batch_size=b, train=True, image_size=_S, resize_size=_R,
                            seed=5, image_dtype="uint8", num_threads=0)
  assert pipe.steps_per_epoch == n // b
  draws = _draws(pipe, range(epochs * pipe.steps_per_epoch))
  assert len(draws) == n * epochs
  # Every example: its draws over 4 epochs are not all the same, and most consecutive
  # epochs differ (a draw repeats by chance with probability 1/162).
  same_consecutive = 0
  for i in range(n):
    per_epoch = [draws[(e, i)] for e in range(epochs)]
    assert len(set(per_epoch)) >= 2, (
        f"augmentation rule (infocam_jax/data/pipeline.py docstring: draws from "
        f"default_rng([seed, 1, epoch, i])): example {i} got the same crop/flip in every epoch "
        f"{per_epoch}")
    same_consecutive += sum(per_epoch[e] == per_epoch[e + 1] for e in range(epochs - 1))
  assert same_consecutive <= 2, (
      f"augmentation rule: fresh crop/flip per epoch, but {same_consecutive} of "
      f"{n * (epochs - 1)} consecutive-epoch pairs repeat")
  # The draws cover the range: both flips, many offsets (not one fixed crop).
  tops = {d[0] for d in draws.values()}
  flips = {d[2] for d in draws.values()}
  assert flips == {False, True} and len(tops) >= 6, (
      f"augmentation rule: random crop offsets in [0, {_R - _S}] and flips, got tops {tops}, "
      f"flips {flips}")


def test_augmentation_is_identical_on_a_resume():
  """Rule: the batch at step t is a pure function of (seed, t): a restarted run sees the same."""
  items = _coded_items(12)
  kw = dict(batch_size=4, train=True, image_size=_S, resize_size=_R, image_dtype="uint8",
            num_threads=0)
  first = data.make_pipeline(items, seed=5, **kw)
  later = list(range(7, 13))  # epochs 2-4, starting mid-epoch
  before = _draws(first, range(13))
  resumed = data.make_pipeline(items, seed=5, **kw)  # a new process: nothing cached
  after = _draws(resumed, later)
  for key, value in after.items():
    assert before[key] == value, (
        f"resume rule (pipeline docstring: get_batch(t) resumes mid-epoch exactly): "
        f"(epoch, example) {key} drew {value} after the resume, {before[key]} before")
  streamed = list(resumed.iterate(start_step=7, num_steps=6))
  for step, batch in zip(later, streamed):
    np.testing.assert_array_equal(batch["image"], first.get_batch(step)["image"],
                                  err_msg="resume rule: iterate(t) yields get_batch(t)")
  other = _draws(data.make_pipeline(items, seed=6, **kw), range(3))
  assert sum(other[k] != before[k] for k in other) >= 8, (
      "augmentation rule: the draws depend on the seed")


# -- the cluttered-digits ground truth: tight box of ink at opacity >= 0.5 ------------------


def _clean_spec(size: int = 48) -> cluttered.SceneSpec:
  return cluttered.SceneSpec(image_size=size, num_fragments=(0, 0), num_strokes=(0, 0),
                             noise_std=(0.0, 0.0))


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
  rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
  return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def _patch_and_opacity(seed: int, digit: np.ndarray, pool: np.ndarray, spec):
  """(top, left, opacity [h, w]) of the digit in the scene rendered from `seed`.

  The patch is found in the image itself: the scene rendered with an all-ink digit (opacity
  exactly 1 on the whole patch) differs from the blank scene exactly there. The opacity is
  the documented ink model (bicubic upsampling, then (v - 0.3) / 0.3 clipped to [0, 1]),
  checked against the rendered pixels.
  """
  render = lambda d: cluttered.render_scene(np.random.default_rng(seed), d, pool, spec)
  scene, blank = render(digit), render(np.zeros((8, 8), np.float32))
  full = render(np.ones((8, 8), np.float32))
  ink = full.image.astype(int) - blank.image.astype(int)  # alpha = 1: colour - background
  patch = np.abs(ink).max(-1) > 0
  left, top, right, bottom = _tight_box(patch)
  h, w = bottom - top + 1, right - left + 1
  alpha = cluttered._ink_alpha(cluttered._resample(digit, h, w))  # pylint: disable=protected-access
  # The opacity is that of the pixels: scene - blank = alpha * (colour - background), +-1 level
  # of rounding per image, where the background is not clipped to [0, 255].
  window = (slice(top, bottom + 1), slice(left, right + 1))
  shown = (scene.image.astype(int) - blank.image.astype(int))[window]
  predicted = alpha[..., None] * ink[window]
  unclipped = (blank.image[window] > 0) & (blank.image[window] < 255)
  assert unclipped.mean() > 0.3, "too few unclipped pixels to check the opacity"
  assert np.abs(shown - predicted)[unclipped].max() <= 2.0, "opacity model != the pixels"
  return scene, top, left, alpha


def test_ground_truth_is_exactly_the_tight_box_of_ink_at_opacity_one_half():
  """Rule (infocam_jax/data/cluttered.py docstring): the box is the tight box of the pixels
  where the digit's ink opacity is >= 0.5. Exact, no tolerance; the cases include many where
  the box at opacity >= 0.2 (or any other threshold) is larger."""
  images, _ = cluttered.load_digits()
  spec = _clean_spec()
  differs = 0
  for seed in range(24):
    digit = images[(seed * 53) % len(images)]
    scene, top, left, alpha = _patch_and_opacity(seed, digit, images[:10], spec)
    x0, y0, x1, y1 = _tight_box(alpha >= 0.5)
    expected = (left + x0, top + y0, left + x1, top + y1)
    assert tuple(scene.box) == expected, (
        f"GT-box rule (cluttered.py: tight box of ink opacity >= 0.5): seed {seed} box "
        f"{scene.box}, expected {expected}")
    size = spec.image_size
    ex0, ey0, ex1, ey1 = expected
    np.testing.assert_allclose(scene.bbox, (ey0 / size, ex0 / size, (ey1 + 1) / size,
                                            (ex1 + 1) / size),
                               err_msg="GT-box rule: tfds box = [x0, x1 + 1) / size")
    lx0, ly0, lx1, ly1 = _tight_box(alpha >= 0.2)
    differs += (lx0, ly0, lx1, ly1) != (x0, y0, x1, y1)
  # The cases discriminate: a 0.2 threshold would give another box in most of them.
  assert differs >= 12, f"only {differs} of 24 cases separate opacity 0.5 from 0.2"


def test_ground_truth_threshold_on_a_constructed_soft_edge():
  """A digit with a faint stroke (opacity between 0.2 and 0.5 after upsampling) right of a
  solid bar: the box excludes the stroke. Rule: tight box of ink opacity >= 0.5 (cluttered.py
  docstring); a 0.2 threshold would reach the faint stroke."""
  spec = _clean_spec()
  digit = np.zeros((8, 8), np.float32)
  digit[1:7, 3:5] = 1.0  # a solid bar ...
  digit[1:7, 6] = 0.38  # ... and a faint stroke two cells to its right
  images, _ = cluttered.load_digits()
  for seed in range(6):
    scene, top, left, alpha = _patch_and_opacity(seed, digit, images[:10], spec)
    split = alpha.shape[1] * 5 // 8 + 1  # columns right of the bar's cells
    faint = alpha[:, split:]
    assert alpha.shape[1] >= 12 and 0.2 < faint.max() < 0.5, "the case must separate 0.2 / 0.5"
    x0, y0, x1, y1 = _tight_box(alpha >= 0.5)
    assert x1 < split
    assert tuple(scene.box) == (left + x0, top + y0, left + x1, top + y1), (
        f"GT-box rule (cluttered.py: tight box of ink opacity >= 0.5): seed {seed}: box "
        f"{scene.box}, expected {(left + x0, top + y0, left + x1, top + y1)} (the faint stroke "
        "at opacity < 0.5 is outside)")


# -- normalisation: the published ImageNet statistics ----------------------------------------

PUBLISHED_MEAN = (0.485, 0.456, 0.406)  # torchvision / the official infoCAM util_loader.py
PUBLISHED_STD = (0.229, 0.224, 0.225)


def test_imagenet_statistics_are_the_published_literals():
  """Rule (paper-spec §2.4: Normalize(ImageNet mean/std)): mean (0.485, 0.456, 0.406),
  std (0.229, 0.224, 0.225), in RGB order, 0-1 scale."""
  msg = "ImageNet normalisation rule (paper-spec §2.4, torchvision's published values)"
  assert tuple(transforms.IMAGENET_MEAN) == PUBLISHED_MEAN, f"{msg}: mean {transforms.IMAGENET_MEAN}"
  assert tuple(transforms.IMAGENET_STD) == PUBLISHED_STD, f"{msg}: std {transforms.IMAGENET_STD}"
  assert tuple(data.IMAGENET_MEAN) == PUBLISHED_MEAN and tuple(data.IMAGENET_STD) == PUBLISHED_STD
  from experiments.configs import pc_softmax  # pylint: disable=g-import-not-at-top
  assert "0.485" not in open(pc_softmax.__file__).read(), "one copy: the config imports them"
  for variant in ("default", "cub", "cub_last_layer"):
    c = pc_softmax.get_config(variant)
    assert tuple(c.data.mean) == PUBLISHED_MEAN and tuple(c.data.std) == PUBLISHED_STD, (
        f"{msg}: pc_softmax.py:{variant} normalises with {c.data.mean} / {c.data.std}")


def test_pipeline_default_normalisation_is_the_published_one():
  """A pixel (r, g, b) leaves the default pipeline as (x / 255 - mean) / std, per channel."""
  pixel = np.array([200, 30, 120], np.uint8)
  items = [{"image": np.broadcast_to(pixel, (8, 8, 3)).copy(), "label": 0,
            "bbox": np.zeros((0, 4), np.float32)}]
  for train in (False, True):
    pipe = data.make_pipeline(items, batch_size=1, train=train, image_size=8, num_threads=0)
    got = pipe.get_batch(0)["image"][0, 3, 3]
    want = (pixel / 255.0 - np.array(PUBLISHED_MEAN)) / np.array(PUBLISHED_STD)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6,
                               err_msg="ImageNet normalisation rule (paper-spec §2.4)")
  np.testing.assert_allclose(
      data.normalize(pixel[None, None]),
      ((pixel / 255.0 - np.array(PUBLISHED_MEAN)) / np.array(PUBLISHED_STD))[None, None],
      rtol=1e-5, atol=1e-6, err_msg="data.normalize: ImageNet normalisation rule (paper-spec §2.4)")


# -- readers: the documented label of known files --------------------------------------------


def _write_idx(path, array: np.ndarray) -> None:
  array = np.asarray(array, np.uint8)
  content = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">i4").tobytes() + array.tobytes()
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(content)


def test_idx_reader_gives_the_label_byte_of_each_row(tmp_path, monkeypatch):
  """Rule (data/idx.py): record i is row i of the files, its label the i-th label byte,
  named by Zalando's class list for Fashion-MNIST (0 T-shirt/top ... 9 Ankle boot)."""
  monkeypatch.setattr(idx, "SYSTEM_DIRS", {})
  labels = {"train": np.array([9, 0, 3, 7, 1, 5], np.uint8), "test": np.array([8, 2, 6, 4], np.uint8)}
  manual = tmp_path / "manual" / "fashion_mnist"
  manual.mkdir(parents=True)
  for split, lab in labels.items():
    images = np.zeros((len(lab), 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(len(lab))  # pixel (0, 0) = row number
    images[:, 5, 5] = lab * 20  # and a pixel that names the label
    gz = split == "train"
    _write_idx(manual / (idx.FILES[(split, "images")] + (".gz" if gz else "")), images)
    _write_idx(manual / (idx.FILES[(split, "labels")] + (".gz" if gz else "")), lab)
  names = {0: "T-shirt/top", 1: "Trouser", 2: "Pullover", 3: "Dress", 4: "Coat", 5: "Sandal",
           6: "Shirt", 7: "Sneaker", 8: "Bag", 9: "Ankle boot"}
  for split, lab in labels.items():
    source = data.load_source("mnist_idx/fashion_mnist", split, tmp_path / "tfds",
                              manual_dir=tmp_path / "manual")
    assert len(source) == len(lab)
    for i, expected in enumerate(lab.tolist()):
      ex = source[i]
      assert ex["image"][0, 0, 0] == i, f"IDX rule: record {i} must be row {i} of the file"
      assert ex["label"] == expected == ex["image"][5, 5, 0] // 20, (
          f"IDX rule (data/idx.py: label byte of the row): {split} row {i} label {ex['label']}, "
          f"the file says {expected}")
      assert source.class_names[ex["label"]] == names[expected], "Fashion-MNIST class names"


def test_tiny_imagenet_label_is_the_index_of_the_sorted_wnid(tmp_path):
  """Rule (data/tiny_imagenet.py): label = index of the image's wnid among the *sorted*
  wnids (torchvision ImageFolder order), whatever the order of wnids.txt."""
  rng = np.random.default_rng(0)
  # 200 wnids; wnids.txt lists them in a scrambled order.
  wnids = [f"n{1000 + 3 * i:08d}" for i in range(200)]
  listed = [wnids[i] for i in rng.permutation(200)]
  known = {"a.JPEG": wnids[0], "b.JPEG": wnids[7], "c.JPEG": wnids[199]}  # labels 0, 7, 199
  val_known = {"val_0.JPEG": wnids[42], "val_1.JPEG": wnids[0]}  # labels 42, 0

  def jpeg(value):
    buf = io.BytesIO()
    from PIL import Image  # pylint: disable=g-import-not-at-top
    Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()

  manual = tmp_path / "manual"
  manual.mkdir()
  with zipfile.ZipFile(manual / "tiny-imagenet-200.zip", "w") as zf:
    root = "tiny-imagenet-200/"
    zf.writestr(root + "wnids.txt", "\n".join(listed) + "\n")
    by_class: dict[str, list[str]] = {w: [] for w in wnids}
    for name, w in known.items():
      by_class[w].append(name)
    for w in wnids:
      lines = []
      for name in by_class[w]:
        zf.writestr(f"{root}train/{w}/images/{name}", jpeg(10))
        lines.append(f"{name}\t1\t2\t30\t40\n")
      zf.writestr(f"{root}train/{w}/{w}_boxes.txt", "".join(lines))
    lines = []
    for name, w in val_known.items():
      zf.writestr(f"{root}val/images/{name}", jpeg(20))
      lines.append(f"{name}\t{w}\t1\t2\t30\t40\n")
    zf.writestr(root + "val/val_annotations.txt", "".join(lines))
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  expected = {"a.JPEG": 0, "b.JPEG": 7, "c.JPEG": 199, "val_0.JPEG": 42, "val_1.JPEG": 0}
  for split in ("train", "validation"):
    source = data.load_source("tiny_imagenet", split, tmp_path / "tfds", manual_dir=manual)
    ds = tfds.data_source("tiny_imagenet", split=split, data_dir=tmp_path / "tfds")
    for i in range(len(source)):
      name = ds[i]["id"].decode()
      assert source[i]["label"] == expected[name], (
          f"Tiny-ImageNet label rule (data/tiny_imagenet.py: index into the sorted wnids): "
          f"{name} got {source[i]['label']}, expected {expected[name]}")
      assert source.class_names[expected[name]] == (known | val_known)[name]


def _cub_records():
  """CUB-like records: class NNN's files are named 'NNN.Name/NNN_j.jpg'; tfds label = NNN - 1."""
  records = []
  for number in (1, 2, 3, 4):
    for j in range(35):
      records.append({"image": np.full((8, 8, 3), number, np.uint8), "label": number - 1,
                      "image/filename": f"{number:03d}.Bird_{number}/{number:03d}_{j:02d}.jpg",
                      "bbox": np.array([0.1, 0.2, 0.5, 0.6], np.float32)})
  order = np.random.default_rng(3).permutation(len(records))  # tfds stores them shuffled
  return [records[i] for i in order]


def test_cub_reader_labels_and_the_imbalanced_rule_on_known_files():
  """Rules (paper-spec §3.3, data/sources.py SPLITS): the tfds label of class NNN is NNN - 1;
  the imbalanced training split keeps the first 10 images (file-name order) of odd-numbered
  classes (001, 003: even label) and the first 30 of even-numbered ones."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  records = {"train": _cub_records(), "test": _cub_records()}

  def as_data_source(builder, split, *args, **kwargs):  # pylint: disable=unused-argument
    del args, kwargs
    return records[str(split)]

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    train = data.load_source("caltech_birds2011", "train")
    for i in range(len(train)):
      ex = train[i]
      number = int(records["train"][i]["image/filename"][:3])
      assert ex["label"] == number - 1 == ex["image"][0, 0, 0] - 1, (
          f"CUB label rule: class {number:03d} -> label {number - 1}, got {ex['label']}")
    imb = data.load_source("caltech_birds2011", "imbalanced_train")
    counts = np.bincount(imb.labels, minlength=4)[:4].tolist()
    assert counts == [10, 30, 10, 30], (
        f"CUB imbalanced rule (paper-spec §3.3): 10 per odd-numbered class (001, 003), 30 per "
        f"even-numbered one, got {counts}")
    for c in range(4):
      chosen = sorted(records["train"][p]["image/filename"] for p in imb.indices
                      if records["train"][p]["label"] == c)
      cap = 10 if c % 2 == 0 else 30
      assert chosen == [f"{c + 1:03d}.Bird_{c + 1}/{c + 1:03d}_{j:02d}.jpg" for j in range(cap)], (
          "CUB imbalanced rule: the first images in file-name order")
