"""Real photographic textures shipped inside the scikit-image wheel (no download at run time).

scikit-image bundles a few photographs in ``skimage/data/`` (the "legacy"
images; everything else in ``skimage.data`` is fetched with pooch on demand
and is *not* used here). This module reads those files directly with Pillow
from the installed package directory, without importing scikit-image, so
nothing can trigger a download; a missing file is an error naming it.

    photos = textures.load_textures()          # tuple of uint8 [H, W, 3], read-only
    patch = textures.random_crop(rng, photos[0], size=96)   # float32 [96, 96, 3] in [0, 1]
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
from PIL import Image

__all__ = ["TEXTURE_FILES", "texture_dir", "load_textures", "random_crop"]

#: The bundled photographs used (files of scikit-image 0.26's wheel; all at
#: least 300 px on the short side). Diagrams, logos and tiny images are left out.
TEXTURE_FILES = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
    "moon.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg",
)


def texture_dir() -> str:
  """``skimage/data`` of the installed scikit-image (found without importing it)."""
  spec = importlib.util.find_spec("skimage")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError("scikit-image is not installed: its bundled photographs are the "
                      "backgrounds of fashion_wsol (pip install 'scikit-image>=0.22').")
  return os.path.join(list(spec.submodule_search_locations)[0], "data")


@functools.lru_cache(maxsize=1)
def load_textures() -> tuple[np.ndarray, ...]:
  """The photographs of `TEXTURE_FILES` as read-only uint8 [H, W, 3] arrays (grey -> 3 channels)."""
  directory = texture_dir()
  out = []
  for name in TEXTURE_FILES:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: bundled scikit-image photograph missing (expected in the "
                              f"wheel; reinstall scikit-image>=0.22).")
    with Image.open(path) as im:
      rgb = np.asarray(im.convert("RGB"), np.uint8)
    rgb.setflags(write=False)
    out.append(rgb)
  return tuple(out)


def random_crop(rng: np.random.Generator, photo: np.ndarray, size: int,
                side: tuple[float, float] = (0.25, 0.7)) -> np.ndarray:
  """A random square crop of `photo`, flipped / rotated at random, resized to `size`.

  Args:
    rng: the only source of randomness.
    photo: uint8 [H, W, 3].
    size: output side in pixels.
    side: range of the crop side as a fraction of the photo's short side.

  Returns:
    float32 [size, size, 3] in [0, 1] (Pillow's antialiased bilinear resize).
  """
  h, w = photo.shape[:2]
  crop = max(8, int(round(min(h, w) * rng.uniform(*side))))
  top = int(rng.integers(0, h - crop + 1))
  left = int(rng.integers(0, w - crop + 1))
  patch = photo[top:top + crop, left:left + crop]
  k = int(rng.integers(0, 4))
  flip = bool(rng.uniform() < 0.5)
  patch = np.rot90(patch, k)
  if flip:
    patch = patch[:, ::-1]
  image = Image.fromarray(np.ascontiguousarray(patch)).resize((size, size), Image.Resampling.BILINEAR)
  return np.asarray(image, np.float32) * np.float32(1 / 255)
