"""tfds builder `fashion_wsol`: Fashion-MNIST articles on real photographs, with exact boxes (WSOL).

Each image is a square canvas (96x96 by default) whose background is a random
crop of one of the photographs that ship inside scikit-image's wheel
(`infocam_jax.data.textures`; nothing is downloaded), with random brightness,
contrast and colour gains. One whole Fashion-MNIST article (a real product
photograph, 28x28 grey) is placed on it at a random position and scale, tinted
with a random colour ramp, and cut out along its own nonzero pixels (the
background of the 28x28 image is exactly 0, so texture shows through gaps
such as between trouser legs). Before it, fragments of *other* articles of
the same split (random sub-windows, rotated / mirrored, at the article's
scale, tinted alike, cut out by a random superellipse so that no straight
crop edge marks them) are scattered over the canvas; they may touch the
target's patch by at most 15% of their own area. The label is the article's
class; the box is the tight box of the article's own pixels on the canvas
(opacity >= 0.5 after resampling its nonzero mask), never of the canvas,
patch or fragments.

Articles: ``train`` and ``validation`` draw from a stratified 5/6 : 1/6
partition (seed 0) of the 60,000 training articles (50,000 / 10,000), ``test``
from the 10,000 official test articles, so no test article nor a fragment of
one appears in training. The photographs are shared by all splits (they are
background, not label). Example k of a split is rendered from its own
generator seeded with (config seed, split, k): identical on every machine
with the same files (the builder records the IDX files' SHA-256).

The IDX files are found like ``mnist_idx/fashion_mnist`` (`infocam_jax.data.idx`):
``<manual_dir>/fashion_mnist/``, ``<manual_dir>/``, then
``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).

Features: ``image`` uint8 [S, S, 3] (PNG), ``label`` ClassLabel (Fashion-MNIST
names), ``bbox`` BBoxFeature (tfds-normalised (ymin, xmin, ymax, xmax)),
``item_id`` int64 (row of the article in its IDX file: train file for train /
validation, t10k file for test), ``texture_id`` int64 (index into
`textures.TEXTURE_FILES`).

Configs (examples per class; S = image side):

  fashion_wsol/default  S=96  train 500  validation 100  test 200  (5,000 / 1,000 / 2,000)
  fashion_wsol/small    S=48  train 8    validation 4    test 4    (80 / 40 / 40; tests)
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from infocam_jax.data import cluttered
from infocam_jax.data import idx
from infocam_jax.data import textures

__all__ = ["FashionSceneSpec", "FashionScenesConfig", "FashionWsol", "render_item_scene",
           "item_pools"]

IDX_CONFIG = "fashion_mnist"  # where the IDX files are looked for (idx.find_source_dir)
POOL_FRACTIONS = (5 / 6, 1 / 6)  # train / validation articles from the training file
POOL_SEED = 0
_SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class FashionSceneSpec:
  """Parameters of the scene distribution (sizes in canvas pixels unless stated).

  Attributes:
    image_size: side of the square canvas.
    item_height: range of the article's patch height as a fraction of
      `image_size` (the whole 28x28 frame is resampled to the patch).
    aspect_jitter: patch width = height * U(1 - a, 1 + a).
    num_fragments: inclusive range of the number of fragments of other articles.
    fragment_side: inclusive range of a fragment's side in article pixels (of 28).
    max_fragment_overlap: a fragment may cover at most this fraction of its
      own area inside the target's patch.
    texture_side: range of the background crop side as a fraction of the
      photograph's short side.
    texture_contrast: range of the background's contrast factor.
    noise_std: range of the per-pixel Gaussian noise (intensities in [0, 1]).
  """

  image_size: int = 96
  item_height: tuple[float, float] = (0.3, 0.65)
  aspect_jitter: float = 0.15
  num_fragments: tuple[int, int] = (2, 5)
  fragment_side: tuple[int, int] = (9, 16)
  max_fragment_overlap: float = 0.15
  texture_side: tuple[float, float] = (0.25, 0.7)
  texture_contrast: tuple[float, float] = (0.5, 1.0)
  noise_std: tuple[float, float] = (0.0, 0.03)

  def __post_init__(self):
    if self.image_size < 16:
      raise ValueError(f"`image_size` must be >= 16, got {self.image_size}.")
    lo, hi = self.item_height
    if not 0.1 <= lo <= hi <= 1.0:
      raise ValueError(f"`item_height` must satisfy 0.1 <= lo <= hi <= 1, got {self.item_height}.")
    lo, hi = self.fragment_side
    if not 2 <= lo <= hi <= 28:
      raise ValueError(
          f"`fragment_side` must satisfy 2 <= lo <= hi <= 28, got {self.fragment_side}.")


def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
  """float32 2-D array resized with Pillow's antialiased bicubic filter (up or down)."""
  im = Image.fromarray(np.ascontiguousarray(a, np.float32), mode="F")
  return np.asarray(im.resize((int(width), int(height)), Image.Resampling.BICUBIC), np.float32)


def _cutout(pixels: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """(intensity, opacity), float32 [height, width] in [0, 1], of a uint8 article (or part of one).

  The opacity is the resampled mask of the nonzero pixels (the article's own
  pixels), clipped to [0, 1].
  """
  value = np.clip(_resize(pixels.astype(np.float32) * np.float32(1 / 255), height, width), 0, 1)
  alpha = np.clip(_resize((pixels > 0).astype(np.float32), height, width), 0, 1)
  return value, alpha


def _superellipse(height: int, width: int, exponent: float) -> np.ndarray:
  """float32 [height, width] opacity of the inscribed superellipse |x|^p + |y|^p <= 1."""
  y = (np.arange(height, dtype=np.float32) + 0.5) / (height / 2) - 1
  x = (np.arange(width, dtype=np.float32) + 0.5) / (width / 2) - 1
  r = (np.abs(y)[:, None] ** exponent + np.abs(x)[None, :] ** exponent) ** (1 / exponent)
  return np.clip((1 - r) * (min(height, width) / 2) + 0.5, 0, 1).astype(np.float32)


def _tinted(value: np.ndarray, dark: np.ndarray, light: np.ndarray) -> np.ndarray:
  """[h, w, 3] colour ramp: intensity 0 -> `dark`, 1 -> `light`."""
  return dark + value[..., None] * (light - dark)


def _composite(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray, top: int, left: int
               ) -> None:
  """In place: canvas = (1 - alpha) canvas + alpha colour in the window at (top, left), clipped."""
  size = canvas.shape[0]
  h, w = alpha.shape
  y0, x0 = max(top, 0), max(left, 0)
  y1, x1 = min(top + h, size), min(left + w, size)
  if y1 <= y0 or x1 <= x0:
    return
  a = alpha[y0 - top:y1 - top, x0 - left:x1 - left, None]
  c = colour[y0 - top:y1 - top, x0 - left:x1 - left]
  region = canvas[y0:y1, x0:x1]
  region += a * (c - region)


def render_item_scene(rng: np.random.Generator, item: np.ndarray, fragment_pool: np.ndarray,
                      photos: tuple[np.ndarray, ...], spec: FashionSceneSpec = FashionSceneSpec(),
                      ) -> tuple[cluttered.Scene, int]:
  """Renders one scene around `item`.

  Args:
    rng: the only source of randomness.
    item: uint8 [28, 28], the whole article to place (its class is the label).
    fragment_pool: uint8 [N, 28, 28] articles whose pieces make the clutter;
      pass articles of the same split as `item`.
    photos: uint8 [H, W, 3] background photographs (`textures.load_textures()`).
    spec: the scene distribution.

  Returns:
    (scene, texture index): the `cluttered.Scene` (uint8 image, inclusive pixel
    box, tfds box) and which photograph the background came from.
  """
  size = spec.image_size
  # Background: a crop of a photograph, random contrast, brightness and colour gains.
  texture = int(rng.integers(len(photos)))
  canvas = textures.random_crop(rng, photos[texture], size, spec.texture_side)
  mean = canvas.mean()
  contrast = np.float32(rng.uniform(*spec.texture_contrast))
  gains = rng.uniform(0.8, 1.2, 3).astype(np.float32)
  shift = np.float32(rng.uniform(-0.15, 0.15))
  canvas = np.ascontiguousarray(np.clip(((canvas - mean) * contrast + mean + shift) * gains, 0, 1))

  # Colour ramps: the target and the fragments share one family.
  dark = rng.uniform(0.0, 0.3, 3).astype(np.float32)
  light = rng.uniform(0.6, 1.0, 3).astype(np.float32)
  if rng.uniform() < 0.3:  # light-to-dark ramp (a dark article)
    dark, light = light, dark

  # Target geometry first (fragments avoid its patch).
  height = int(round(size * rng.uniform(*spec.item_height)))
  width = int(round(height * rng.uniform(1 - spec.aspect_jitter, 1 + spec.aspect_jitter)))
  height = min(max(height, 8), size)
  width = min(max(width, 8), size)
  top = int(rng.integers(0, size - height + 1))
  left = int(rng.integers(0, size - width + 1))
  scale = height / 28.0  # canvas pixels per article pixel: fragments match it

  n_frag = int(rng.integers(spec.num_fragments[0], spec.num_fragments[1] + 1))
  lo, hi = spec.fragment_side
  made = 0
  for _attempt in range(10 * n_frag):
    if made == n_frag:
      break
    src = fragment_pool[int(rng.integers(len(fragment_pool)))]
    fh, fw = (int(v) for v in rng.integers(lo, hi + 1, 2))
    r0, c0 = int(rng.integers(0, 29 - fh)), int(rng.integers(0, 29 - fw))
    rot, flip = int(rng.integers(0, 4)), bool(rng.uniform() < 0.5)
    s = scale * rng.uniform(0.8, 1.25)
    jitter = rng.uniform(-0.1, 0.1, 3).astype(np.float32)
    exponent = rng.uniform(1.5, 4.0)
    piece = src[r0:r0 + fh, c0:c0 + fw]
    if (piece > 0).mean() < 0.4:  # mostly empty window: try another
      continue
    piece = np.rot90(piece, rot)
    if flip:
      piece = piece[:, ::-1]
    ph, pw = max(2, int(round(piece.shape[0] * s))), max(2, int(round(piece.shape[1] * s)))
    ftop = int(rng.integers(-(ph // 4), size - 3 * ph // 4 + 1))
    fleft = int(rng.integers(-(pw // 4), size - 3 * pw // 4 + 1))
    oy = max(0, min(ftop + ph, top + height) - max(ftop, top))
    ox = max(0, min(fleft + pw, left + width) - max(fleft, left))
    if oy * ox > spec.max_fragment_overlap * ph * pw:
      continue
    value, alpha = _cutout(piece, ph, pw)
    alpha *= _superellipse(ph, pw, exponent)  # no straight cut edges through solid cloth
    colour = _tinted(value, np.clip(dark + jitter, 0, 1), np.clip(light + jitter, 0, 1))
    _composite(canvas, alpha, colour, ftop, fleft)
    made += 1

  # The target article, on top.
  value, alpha = _cutout(item, height, width)
  _composite(canvas, alpha, _tinted(value, dark, light), top, left)

  sigma = np.float32(rng.uniform(*spec.noise_std))
  canvas += sigma * rng.standard_normal(canvas.shape, dtype=np.float32)
  image = np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)

  own = alpha >= 0.5
  rows, cols = np.flatnonzero(own.any(1)), np.flatnonzero(own.any(0))
  if rows.size == 0:  # a blank article (not in Fashion-MNIST): the patch
    rows, cols = np.array([0, height - 1]), np.array([0, width - 1])
  x0, x1 = left + int(cols[0]), left + int(cols[-1])
  y0, y1 = top + int(rows[0]), top + int(rows[-1])
  bbox = (y0 / size, x0 / size, (y1 + 1) / size, (x1 + 1) / size)
  return cluttered.Scene(image=image, box=(x0, y0, x1, y1), bbox=bbox), texture


def item_pools(directory: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Per split: (articles uint8 [N, 28, 28], labels int64 [N], rows int64 [N] in their IDX file)."""
  train_images, train_labels = idx.read_split(directory, "train")
  test_images, test_labels = idx.read_split(directory, "test")
  pools = cluttered.instance_split(train_labels, POOL_FRACTIONS, POOL_SEED)
  out = {split: (train_images[rows], train_labels[rows], rows)
         for split, rows in zip(("train", "validation"), pools)}
  rows = np.arange(len(test_labels), dtype=np.int64)
  out["test"] = (test_images, test_labels, rows)
  return out


@dataclasses.dataclass(eq=False)
class FashionScenesConfig(tfds.core.BuilderConfig):
  """Canvas size, per-class example counts of every split, and the rendering seed."""

  image_size: int = 96
  per_class: tuple[tuple[str, tuple[int, ...]], ...] = ()
  seed: int = 0

  def counts(self, split: str) -> np.ndarray:
    return np.asarray(dict(self.per_class)[split], np.int64)

  def spec(self) -> FashionSceneSpec:
    return FashionSceneSpec(image_size=self.image_size)


def _png(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


class FashionWsol(tfds.core.GeneratorBasedBuilder):
  """WSOL set: one Fashion-MNIST article per photographic scene, with its exact box."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = idx.how_to_obtain(IDX_CONFIG, ["<manual_dir>/fashion_mnist",
                                                                "<manual_dir>"], "fashion_wsol")
  BUILDER_CONFIGS = [
      FashionScenesConfig(
          name="default", description="96x96, 5,000 / 1,000 / 2,000 balanced.", image_size=96,
          per_class=(("train", (500,) * 10), ("validation", (100,) * 10), ("test", (200,) * 10))),
      FashionScenesConfig(
          name="small", description="48x48, 80 / 40 / 40 balanced (tests).", image_size=48,
          per_class=(("train", (8,) * 10), ("validation", (4,) * 10), ("test", (4,) * 10))),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(s, s, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(names=list(idx.FASHION_MNIST_NAMES)),
            "bbox": tfds.features.BBoxFeature(),
            "item_id": np.int64,
            "texture_id": np.int64,
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    directory, searched = idx.find_source_dir(IDX_CONFIG, idx.manual_dir_of(dl_manager))
    if directory is None:
      raise FileNotFoundError(idx.how_to_obtain(IDX_CONFIG, searched, "fashion_wsol"))
    pools = item_pools(directory)
    photos = textures.load_textures()
    self.info.metadata["source_dir"] = os.path.abspath(directory)
    self.info.metadata["sha256"] = idx.file_hashes(directory)
    self.info.metadata["textures"] = list(textures.TEXTURE_FILES)
    return {split: self._generate_examples(split, pools[split], photos)
            for split, _ in self.builder_config.per_class}

  def _generate_examples(self, split: str, pool, photos):
    config = self.builder_config
    images, labels, rows = pool
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    counts = config.counts(split)
    empty = [c for c in range(10) if counts[c] and not by_class[c].size]
    if empty:
      raise ValueError(f"fashion_wsol {split!r}: the article pool has no article of classes "
                       f"{empty}; the IDX files are too small for this config.")
    spec = config.spec()
    code = _SPLIT_CODE[split]
    for i, c in enumerate(np.repeat(np.arange(10), counts)):
      rng = np.random.default_rng([config.seed, code, i])
      k = int(by_class[c][rng.integers(len(by_class[c]))])
      scene, texture = render_item_scene(rng, images[k], images, photos, spec)
      yield i, {
          "image": _png(scene.image),
          "label": int(c),
          "bbox": tfds.features.BBox(*scene.bbox),
          "item_id": int(rows[k]),
          "texture_id": texture,
      }
