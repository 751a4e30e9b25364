"""Image and box transforms of the input pipeline (pure NumPy + Pillow, no TF).

The official code's transforms (paper-spec §2.4), with every geometric step
applied to the boxes exactly:

* train: resize to ``resize_size`` x ``resize_size`` (square, aspect ratio
  ignored) -> random ``image_size`` crop -> horizontal flip (p = 0.5) ->
  ImageNet mean/std normalisation;
* eval: resize -> centre crop (torchvision's ``CenterCrop`` offsets,
  ``round((resize - crop) / 2)``).

Resizing is Pillow's bilinear filter, which widens its support when
downscaling (anti-aliasing). That is what torchvision's ``Resize`` does on the
PIL images the official code feeds it, so the pixels match the official
preprocessing.

Coordinate conventions. A box is first read as tfds' normalised
(ymin, xmin, ymax, xmax), i.e. the *continuous* extent
[xmin * W, xmax * W) x [ymin * H, ymax * H) of an image whose pixel i covers
[i, i + 1). Resizing maps a continuous coordinate u to u * out / in (pixel
edges to pixel edges, the convention of Pillow, OpenCV and torchvision),
cropping subtracts the integer offset and flipping maps u to S - u; all three
are exact on the continuous extent. The result is reported as *inclusive*
pixel corners of the network input, ``(x0, y0, x1, y1) = (u0, v0, u1 - 1,
v1 - 1)``, so a box covering pixel columns 10..20 has x0 = 10, x1 = 20 and
width x1 - x0 + 1 = 11 (the +1 convention of the WSOL IoU).

Clipping rule: with ``clip=True`` (the default) the continuous extent is
clipped to the crop [0, S] before the conversion, so 0 <= x0 and x1 <= S - 1;
a box whose clipped extent is empty is marked invalid. With ``clip=False``
boxes may extend past the crop (the official GT transform does not clip,
paper-spec §2.3).
"""

from __future__ import annotations

import numba
import numpy as np
from PIL import Image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "to_channels",
    "resize",
    "centre_crop_offset",
    "random_crop_offset",
    "transform_boxes",
    "crop_flip_normalize",
    "normalize",
    "denormalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """uint8 [H, W] / [H, W, 1|3|4] -> uint8 [H, W, channels] (gray replicated, alpha dropped).

  RGB -> gray uses ITU-R 601 luma (Pillow's "L" conversion).
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"`image` must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {image.shape}.")
  if image.shape[-1] == 4:
    image = image[..., :3]
  have = image.shape[-1]
  if have == channels:
    return image
  if channels == 3:
    return np.repeat(image, 3, axis=-1)
  if channels == 1:
    luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
  raise ValueError(f"`channels` must be 1 or 3, got {channels}.")


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Pillow bilinear resize (anti-aliased when shrinking) of uint8 [H, W, C] to [height, width, C]."""
  if image.shape[0] == height and image.shape[1] == width:
    return image
  c = image.shape[-1]
  pil = Image.fromarray(image[..., 0] if c == 1 else image)
  out = np.asarray(pil.resize((int(width), int(height)), Image.Resampling.BILINEAR))
  return out[..., None] if c == 1 else out


def centre_crop_offset(size: int, crop: int) -> int:
  """torchvision's CenterCrop offset: int(round((size - crop) / 2))."""
  if crop > size:
    raise ValueError(f"crop {crop} is larger than the image side {size}.")
  return int(round((size - crop) / 2.0))


def random_crop_offset(rng: np.random.Generator, size: int, crop: int) -> int:
  """Uniform integer offset in [0, size - crop] (torchvision's RandomCrop)."""
  if crop > size:
    raise ValueError(f"crop {crop} is larger than the image side {size}.")
  return int(rng.integers(0, size - crop + 1))


def transform_boxes(bbox: np.ndarray, *, resize_hw: tuple[int, int], offset_yx: tuple[int, int],
                    crop_hw: tuple[int, int], flip: bool, clip: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Normalised tfds boxes -> inclusive pixel corners of the network input.

  Args:
    bbox: float [n, 4] (ymin, xmin, ymax, xmax) in [0, 1] of the source image.
      Corners given in the wrong order are sorted (tfds validates the order
      when it prepares a dataset; `tfds.testing.mock_data` does not).
    resize_hw: (H', W') of the resized image (normalised coordinates are
      resize-invariant, so the source size is not needed).
    offset_yx: (top, left) of the crop in the resized image.
    crop_hw: (h, w) of the crop = network input.
    flip: whether the crop is mirrored horizontally.
    clip: clip to the crop first (see the module docstring).

  Returns:
    (boxes float32 [n, 4] (x0, y0, x1, y1) inclusive, valid bool [n]).
  """
  bbox = np.asarray(bbox, np.float64).reshape(-1, 4)
  ymin = np.minimum(bbox[:, 0], bbox[:, 2])
  ymax = np.maximum(bbox[:, 0], bbox[:, 2])
  xmin = np.minimum(bbox[:, 1], bbox[:, 3])
  xmax = np.maximum(bbox[:, 1], bbox[:, 3])
  rh, rw = resize_hw
  top, left = offset_yx
  ch, cw = crop_hw
  u0 = xmin * rw - left
  u1 = xmax * rw - left
  v0 = ymin * rh - top
  v1 = ymax * rh - top
  if flip:
    u0, u1 = cw - u1, cw - u0
  if clip:
    u0, u1 = np.clip(u0, 0, cw), np.clip(u1, 0, cw)
    v0, v1 = np.clip(v0, 0, ch), np.clip(v1, 0, ch)
  valid = (u1 > u0) & (v1 > v0)
  boxes = np.stack([u0, v0, u1 - 1.0, v1 - 1.0], axis=-1).astype(np.float32)
  return boxes, valid


@numba.njit(cache=True, nogil=True)
def _crop_flip_affine(src, top, left, flip, scale, shift, out):  # pragma: no cover - compiled
  height, width, channels = out.shape
  for y in range(height):
    for x in range(width):
      sx = left + width - 1 - x if flip else left + x
      for k in range(channels):
        out[y, x, k] = np.float32(src[top + y, sx, k]) * scale[k] - shift[k]


def crop_flip_normalize(image: np.ndarray, top: int, left: int, size: int, flip: bool,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD, out: np.ndarray | None = None
                        ) -> np.ndarray:
  """One fused pass: ``normalize(image[top:top+size, left:left+size][:, ::-1 if flip])``.

  A numba kernel that releases the GIL (so grain threads overlap); the result
  equals the NumPy expression (float32 multiply then subtract).

  Args:
    image: uint8 [H, W, C] with H >= top + size and W >= left + size.
    out: optional float32 [size, size, C] to write into.
  """
  h, w, c = image.shape
  if top < 0 or left < 0 or top + size > h or left + size > w:
    raise ValueError(f"crop ({top}, {left}, {size}) does not fit in an image of shape {image.shape}.")
  mean, std = _stats(mean, std, c)
  scale = np.broadcast_to((1.0 / (255.0 * std)).astype(np.float32), (c,)).copy()
  shift = np.broadcast_to((mean / std).astype(np.float32), (c,)).copy()
  if out is None:
    out = np.empty((size, size, c), np.float32)
  _crop_flip_affine(np.ascontiguousarray(image), int(top), int(left), bool(flip), scale, shift, out)
  return out


def _stats(mean, std, channels: int) -> tuple[np.ndarray, np.ndarray]:
  mean = np.asarray(mean, np.float32).reshape(-1)
  std = np.asarray(std, np.float32).reshape(-1)
  if mean.shape != std.shape or mean.shape[0] not in (1, channels):
    raise ValueError(
        f"`mean`/`std` must have 1 or {channels} entries, got {mean.shape[0]} and {std.shape[0]}.")
  if np.any(std <= 0):
    raise ValueError(f"`std` must be positive, got {std}.")
  return mean, std


def normalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
  """uint8 images [..., C] -> float32 (x / 255 - mean) / std.

  Works on NumPy and JAX arrays alike (the arithmetic uses the input's own
  array type), so it can also run on device after a uint8 transfer.

  >>> images = np.full((2, 4, 4, 3), 255, np.uint8)
  >>> x = normalize(images)  # ImageNet mean and std by default
  >>> x.dtype, x[0, 0, 0].round(4).tolist()  # (1 - mean) / std per channel
  (dtype('float32'), [2.2489, 2.4286, 2.64])
  """
  channels = images.shape[-1]
  mean, std = _stats(mean, std, channels)
  scale = (1.0 / (255.0 * std)).astype(np.float32)
  shift = (mean / std).astype(np.float32)
  return images.astype(np.float32) * scale - shift


def denormalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
  """Inverse of `normalize`, rounded and clipped to uint8 (for figures). Returns NumPy.

  >>> images = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
  >>> bool(np.all(denormalize(normalize(images)) == images))
  True
  """
  images = np.asarray(images, np.float32)
  mean, std = _stats(mean, std, images.shape[-1])
  return np.clip(np.round((images * std + mean) * 255.0), 0, 255).astype(np.uint8)
