"""tfds builders of the offline datasets (no download): `cluttered_digits`, `imbalanced_digits`.

Both render the scenes of `infocam_jax.data.cluttered` from scikit-learn's
1,797 real handwritten digits. The digit *instances* are split once,
stratified by class, into disjoint train / validation / test pools
(60% / 20% / 20%, seed 0), so no test digit (nor a fragment of one) appears in
a training image. Within a split every example is rendered from its own
generator seeded with (config seed, split, example index), so the data are
identical on every machine.

Preparation needs no TensorFlow: the images are PNG-encoded with Pillow and
handed to `tfds.features.Image` as bytes (tfds only needs TF to encode NumPy
arrays), and the files are written as array_record for `tfds.data_source`.

Features (every config):
  image     uint8 [S, S, 3] (PNG)
  label     ClassLabel, names "0".."9"
  bbox      BBoxFeature: tfds-normalised (ymin, xmin, ymax, xmax) of the digit's ink
  digit_id  int64: row of the digit in scikit-learn's table (instance split checks)

Configs (examples per class; S = image side):

  cluttered_digits/default  S=64  train 500  validation 100  test 200   (5,000 / 1,000 / 2,000)
  cluttered_digits/small    S=32  train 24   validation 8    test 8     (240 / 80 / 80; tests, smoke runs)
  imbalanced_digits/default S=64  train 50 (even digits) / 500 (odd)  validation 50  test 100
                                  (2,750 train, 1:10 like the paper's MNIST; balanced val/test 500 / 1,000)
  imbalanced_digits/small   S=32  train 4 / 40  validation 8  test 8  (220 / 80 / 80)
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from infocam_jax.data import cluttered

__all__ = ["DigitScenesConfig", "ClutteredDigits", "ImbalancedDigits"]

# Instance pools: fractions of each class's digits and the seed of the partition.
INSTANCE_FRACTIONS = (0.6, 0.2, 0.2)
INSTANCE_SEED = 0
_SPLIT_POOL = {"train": 0, "validation": 1, "test": 2}

_CITATION = """@misc{optdigits,
  author = {Alpaydin, E. and Kaynak, C.},
  title = {Optical Recognition of Handwritten Digits},
  howpublished = {UCI Machine Learning Repository},
  year = {1998},
  note = {The 8x8 copy bundled with scikit-learn}
}"""


@dataclasses.dataclass(eq=False)
class DigitScenesConfig(tfds.core.BuilderConfig):
  """A scene distribution and per-class example counts of every split.

  Attributes:
    image_size: side of the square images.
    per_class: split name -> 10 per-class example counts.
    seed: seeds the rendering (one generator per example).
  """

  image_size: int = 64
  per_class: tuple[tuple[str, tuple[int, ...]], ...] = ()
  seed: int = 0

  def counts(self, split: str) -> np.ndarray:
    return np.asarray(dict(self.per_class)[split], np.int64)

  def spec(self) -> cluttered.SceneSpec:
    return cluttered.SceneSpec(image_size=self.image_size)


def _balanced(n: int) -> tuple[int, ...]:
  return (n,) * 10


def _one_to_ten(even: int) -> tuple[int, ...]:
  return tuple(even if d % 2 == 0 else 10 * even for d in range(10))


def _png(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


class _DigitScenes(tfds.core.GeneratorBasedBuilder,  # type: ignore[call-arg]
                   skip_registration=True):
  """Shared machinery of the two offline builders."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(s, s, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
            "bbox": tfds.features.BBoxFeature(),
            "digit_id": np.int64,
        }),
        supervised_keys=("image", "label"),
        homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {split: self._generate_examples(split) for split, _ in self.builder_config.per_class}

  def _generate_examples(self, split: str):
    config = self.builder_config
    images, labels = cluttered.load_digits()
    pools = cluttered.instance_split(labels, INSTANCE_FRACTIONS, INSTANCE_SEED)
    pool = pools[_SPLIT_POOL[split]]
    by_class = [pool[labels[pool] == c] for c in range(10)]
    fragment_pool = images[pool]
    spec = config.spec()
    classes = np.repeat(np.arange(10), config.counts(split))
    split_code = _SPLIT_POOL[split]
    for i, c in enumerate(classes):
      rng = np.random.default_rng([config.seed, split_code, i])
      digit_id = int(by_class[c][rng.integers(len(by_class[c]))])
      scene = cluttered.render_scene(rng, images[digit_id], fragment_pool, spec)
      yield i, {
          "image": _png(scene.image),
          "label": int(c),
          "bbox": tfds.features.BBox(*scene.bbox),
          "digit_id": digit_id,
      }


class ClutteredDigits(_DigitScenes):
  """Offline WSOL set: one real handwritten digit per cluttered scene, with its exact box."""

  BUILDER_CONFIGS = [
      DigitScenesConfig(
          name="default", description="64x64, 5,000 / 1,000 / 2,000 balanced.", image_size=64,
          per_class=(("train", _balanced(500)), ("validation", _balanced(100)),
                     ("test", _balanced(200)))),
      DigitScenesConfig(
          name="small", description="32x32, 240 / 80 / 80 balanced (tests, smoke runs).",
          image_size=32,
          per_class=(("train", _balanced(24)), ("validation", _balanced(8)),
                     ("test", _balanced(8)))),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"


class ImbalancedDigits(_DigitScenes):
  """Offline PC-softmax set: cluttered digit scenes, training classes 1:10 (even:odd)."""

  BUILDER_CONFIGS = [
      DigitScenesConfig(
          name="default",
          description="64x64, train 50 per even / 500 per odd digit; balanced validation 50 and "
                      "test 100 per class.",
          image_size=64, seed=1,
          per_class=(("train", _one_to_ten(50)), ("validation", _balanced(50)),
                     ("test", _balanced(100)))),
      DigitScenesConfig(
          name="small", description="32x32, train 4 / 40, validation 8, test 8 per class.",
          image_size=32, seed=1,
          per_class=(("train", _one_to_ten(4)), ("validation", _balanced(8)),
                     ("test", _balanced(8)))),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "default"
