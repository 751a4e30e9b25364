"""Image/box transforms of the input pipeline: boxes follow the pixels exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from infocam_jax.data import make_pipeline
from infocam_jax.data import transforms as T


def _single(image, bbox, label=0):
  return [{"image": image, "label": label, "bbox": np.asarray(bbox, np.float32).reshape(-1, 4)}]


@given(h=st.integers(12, 90), w=st.integers(12, 90), r=st.integers(10, 80),
       crop_frac=st.floats(0.4, 1.0), train=st.booleans(), seed=st.integers(0, 2**20),
       data=st.data())
def test_drawn_box_is_found_where_the_transformed_box_says(h, w, r, crop_frac, train, seed, data):
  """Paint a box into the image, run the real pipeline, find the box in the output.

  The box is painted filled (border pixels included) at 255 on black, and found
  as the pixels >= 128 after the transform: the 50% level of a resampled step
  edge sits on the true edge for Pillow's bilinear filter (up- and down-
  sampling), so the found box must equal the transformed box within a pixel.
  """
  s = max(4, int(r * crop_frac))
  x0 = data.draw(st.integers(0, w - 1), label="x0")
  x1 = data.draw(st.integers(x0, w - 1), label="x1")
  y0 = data.draw(st.integers(0, h - 1), label="y0")
  y1 = data.draw(st.integers(y0, h - 1), label="y1")
  image = np.zeros((h, w, 3), np.uint8)
  image[y0:y1 + 1, x0:x1 + 1] = 255
  bbox = [y0 / h, x0 / w, (y1 + 1) / h, (x1 + 1) / w]
  pipe = make_pipeline(_single(image, bbox), batch_size=1, train=train, image_size=s,
                       resize_size=r, seed=seed, image_dtype="uint8", num_threads=0)
  batch = pipe.get_batch(0)
  out = batch["image"][0, ..., 0]
  bx0, by0, bx1, by1 = batch["bbox"][0, 0]
  found = np.argwhere(out >= 128)
  if not batch["bbox_mask"][0, 0]:
    assert found.size == 0
    return
  assert 0 <= bx0 <= bx1 + 1 and bx1 <= s - 1 and 0 <= by0 and by1 <= s - 1
  # Boxes thinner than ~2.5 output pixels may not reach 50% after downsampling.
  assume(bx1 - bx0 + 1 >= 2.5 and by1 - by0 + 1 >= 2.5)
  fy0, fx0 = found.min(0)
  fy1, fx1 = found.max(0)
  np.testing.assert_allclose([fx0, fy0, fx1, fy1], [bx0, by0, bx1, by1], atol=1.0)


def test_transform_boxes_closed_form():
  # Source box pixels 10..29 x 20..39 of a 100 x 50 (W x H) image, i.e. the
  # continuous extent [10, 30) x [20, 40).
  bbox = np.array([[20 / 50, 10 / 100, 40 / 50, 30 / 100]])
  # Resize to 200 x 200: x scale 2, y scale 4 -> [20, 60) x [80, 160).
  boxes, valid = T.transform_boxes(bbox, resize_hw=(200, 200), offset_yx=(0, 0),
                                   crop_hw=(200, 200), flip=False)
  np.testing.assert_allclose(boxes, [[20, 80, 59, 159]])
  assert valid.all()
  # Crop at (top 50, left 5), size 100: [15, 55) x [30, 110) -> y clipped to [30, 100).
  boxes, _ = T.transform_boxes(bbox, resize_hw=(200, 200), offset_yx=(50, 5),
                               crop_hw=(100, 100), flip=False)
  np.testing.assert_allclose(boxes, [[15, 30, 54, 99]])
  boxes, _ = T.transform_boxes(bbox, resize_hw=(200, 200), offset_yx=(50, 5),
                               crop_hw=(100, 100), flip=False, clip=False)
  np.testing.assert_allclose(boxes, [[15, 30, 54, 109]])
  # Flip: u -> 100 - u, so [15, 55) -> [45, 85).
  boxes, _ = T.transform_boxes(bbox, resize_hw=(200, 200), offset_yx=(50, 5),
                               crop_hw=(100, 100), flip=True)
  np.testing.assert_allclose(boxes, [[45, 30, 84, 99]])
  # Entirely outside the crop: invalid.
  _, valid = T.transform_boxes(bbox, resize_hw=(200, 200), offset_yx=(170, 0),
                               crop_hw=(20, 20), flip=False)
  assert not valid.any()
  # Corners in the wrong order (mock data) are sorted.
  swapped = bbox[:, [2, 3, 0, 1]]
  np.testing.assert_allclose(
      T.transform_boxes(swapped, resize_hw=(200, 200), offset_yx=(0, 0), crop_hw=(200, 200),
                        flip=False)[0], [[20, 80, 59, 159]])


def test_identity_transform_round_trips_inclusive_corners():
  rng = np.random.default_rng(0)
  x0, y0 = rng.integers(0, 30, (2, 50))
  x1, y1 = x0 + rng.integers(0, 30, 50), y0 + rng.integers(0, 30, 50)
  bbox = np.stack([y0 / 64, x0 / 64, (y1 + 1) / 64, (x1 + 1) / 64], -1)
  boxes, valid = T.transform_boxes(bbox, resize_hw=(64, 64), offset_yx=(0, 0), crop_hw=(64, 64),
                                   flip=False)
  np.testing.assert_allclose(boxes, np.stack([x0, y0, x1, y1], -1), atol=1e-4)
  assert valid.all()


def test_crop_offsets_follow_torchvision():
  assert T.centre_crop_offset(256, 224) == 16
  assert T.centre_crop_offset(64, 64) == 0
  assert T.centre_crop_offset(37, 32) == int(round(2.5))  # banker's rounding, like Python 3
  assert T.centre_crop_offset(39, 32) == 4  # round(3.5) = 4: torchvision rounds, not floors
  rng = np.random.default_rng(0)
  offsets = {T.random_crop_offset(rng, 10, 7) for _ in range(400)}
  assert offsets == {0, 1, 2, 3}
  with pytest.raises(ValueError, match="larger"):
    T.centre_crop_offset(10, 11)


def test_resize_is_pillow_bilinear_and_identity_is_free():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
  expected = np.asarray(Image.fromarray(image).resize((20, 30), Image.BILINEAR))
  np.testing.assert_array_equal(T.resize(image, 30, 20), expected)
  assert T.resize(image, 37, 53) is image
  gray = image[..., :1]
  assert T.resize(gray, 30, 20).shape == (30, 20, 1)


def test_channels_conversion():
  rng = np.random.default_rng(2)
  gray = rng.integers(0, 256, (5, 6), dtype=np.uint8)
  rgb = T.to_channels(gray, 3)
  assert rgb.shape == (5, 6, 3) and (rgb == gray[..., None]).all()
  assert T.to_channels(rgb, 1).shape == (5, 6, 1)
  np.testing.assert_array_equal(T.to_channels(rgb, 1)[..., 0], gray)
  rgba = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
  np.testing.assert_array_equal(T.to_channels(rgba, 3), rgba[..., :3])
  with pytest.raises(ValueError, match="image"):
    T.to_channels(np.zeros((2, 2, 2), np.uint8), 3)


def test_normalize_matches_definition_and_denormalize_inverts():
  rng = np.random.default_rng(3)
  x = rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
  mean, std = np.array(T.IMAGENET_MEAN), np.array(T.IMAGENET_STD)
  np.testing.assert_allclose(T.normalize(x), (x / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
  assert T.normalize(x).dtype == np.float32
  np.testing.assert_array_equal(T.denormalize(T.normalize(x)), x)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(np.asarray(T.normalize(jnp.asarray(x))), T.normalize(x), atol=1e-5)
  with pytest.raises(ValueError, match="std"):
    T.normalize(x, mean=(0.5,), std=(0.0,))


@given(st.integers(0, 6), st.integers(0, 6), st.booleans(), st.sampled_from([1, 3]))
def test_fused_crop_flip_normalize_equals_numpy(top, left, flip, channels):
  rng = np.random.default_rng(top * 7 + left)
  image = rng.integers(0, 256, (16, 17, channels), dtype=np.uint8)
  crop = image[top:top + 10, left:left + 10]
  crop = crop[:, ::-1] if flip else crop
  mean, std = T.IMAGENET_MEAN[:channels], T.IMAGENET_STD[:channels]
  np.testing.assert_allclose(T.crop_flip_normalize(image, top, left, 10, flip, mean, std),
                             T.normalize(crop, mean, std), rtol=0, atol=1e-6)
  with pytest.raises(ValueError, match="does not fit"):
    T.crop_flip_normalize(image, 10, 0, 10, flip)


def test_pipeline_float_output_is_the_normalised_uint8_output():
  rng = np.random.default_rng(4)
  items = [{"image": rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8), "label": i,
            "bbox": np.array([[0.1, 0.2, 0.5, 0.9]], np.float32)} for i in range(6)]
  kw = dict(batch_size=3, train=True, image_size=16, resize_size=20, seed=7, num_threads=0)
  f = make_pipeline(items, **kw).get_batch(1)
  u = make_pipeline(items, image_dtype="uint8", **kw).get_batch(1)
  np.testing.assert_allclose(f["image"], T.normalize(u["image"]), atol=1e-5)
  np.testing.assert_array_equal(f["bbox"], u["bbox"])
