"""Tests of infocam_jax.wsol.boxes: IoU, conventions, GT transforms, boxes from maps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import ndimage

from infocam_jax.wsol import components as C
from infocam_jax.wsol import boxes as B

EIGHT = np.ones((3, 3), bool)


# ----------------------------------------------------------------------------
# IoU.
# ----------------------------------------------------------------------------


def _pixel_iou(a, b):
  """IoU of two inclusive integer boxes as sets of pixels (independent reference)."""
  def pix(x):
    return {(i, j) for i in range(x[0], x[2] + 1) for j in range(x[1], x[3] + 1)}
  pa, pb = pix(a), pix(b)
  return len(pa & pb) / len(pa | pb)


def test_iou_golden_values():
  a = jnp.array([0, 0, 9, 9])
  assert float(B.box_iou(a, a)) == 1.0
  # 5x5 overlap of two 10x10 boxes: 25 / (100 + 100 - 25)
  np.testing.assert_allclose(B.box_iou(a, jnp.array([5, 5, 14, 14])), 25 / 175, rtol=1e-6)
  # touching edges share one column with the +1 convention: 10 / 190
  np.testing.assert_allclose(B.box_iou(a, jnp.array([9, 0, 18, 9])), 10 / 190, rtol=1e-6)
  assert float(B.box_iou(a, jnp.array([10, 0, 19, 9]))) == 0.0
  # a single pixel box is a valid box of area 1
  assert float(B.box_iou(jnp.array([3, 4, 3, 4]), jnp.array([3, 4, 3, 4]))) == 1.0
  assert float(B.box_area(jnp.array([3, 4, 3, 4]))) == 1.0


def test_iou_degenerate_boxes_give_zero():
  # x1 = x0 - 1: zero width, area 0; wsolevaluation sets IoU of a zero denominator to 0
  z = jnp.array([5, 5, 4, 4])
  assert float(B.box_iou(z, z)) == 0.0
  assert float(B.box_iou(z, jnp.array([0, 0, 9, 9]))) == 0.0
  # both degenerate and "overlapping" with a negative denominator
  assert float(B.box_iou(jnp.array([5, 5, 2, 2]), jnp.array([5, 5, 2, 2]))) == 0.0


def test_iou_unclamped_spurious_hit():
  """The official calculate_IOU: disjoint in both axes -> positive 'intersection'."""
  fallback = jnp.array([0, 0, 1, 1])  # the official empty-mask box
  gt = jnp.array([40, 40, 100, 100])
  assert float(B.box_iou(fallback, gt)) == 0.0
  # inter = (1 - 40 + 1)^2 = 1444, union = 4 + 61^2 - 1444 = 2281
  spurious = float(B.box_iou(fallback, gt, clamp=False))
  np.testing.assert_allclose(spurious, 1444 / 2281, rtol=1e-6)
  assert spurious >= 0.5


def test_iou_broadcasting_and_pairwise():
  a = jnp.array([[0, 0, 9, 9], [5, 5, 14, 14], [20, 20, 29, 29]])
  b = jnp.array([[0, 0, 9, 9], [0, 0, 4, 4]])
  pair = B.box_iou(a[:, None], b[None])
  assert pair.shape == (3, 2)
  for i in range(3):
    for j in range(2):
      np.testing.assert_allclose(pair[i, j], _pixel_iou(np.asarray(a[i]), np.asarray(b[j])),
                                 rtol=1e-6)
  assert B.box_iou(a, b[:1]).shape == (3,)
  with pytest.raises(ValueError, match="boxes_a"):
    B.box_iou(jnp.zeros((3, 5)), b)
  with pytest.raises(ValueError, match="broadcast"):
    B.box_iou(a, jnp.zeros((2, 4)))


_coord = st.integers(0, 12)


@st.composite
def _box(draw):
  x0, x1 = sorted((draw(_coord), draw(_coord)))
  y0, y1 = sorted((draw(_coord), draw(_coord)))
  return np.array([x0, y0, x1, y1])


@given(_box(), _box())
@example(np.array([0, 2, 0, 2]), np.array([3, 0, 3, 0]))  # legacy union 0: IoU 0
def test_iou_properties(a, b):
  ab = float(B.box_iou(a, b))
  assert ab == float(B.box_iou(b, a))  # symmetric
  assert 0.0 <= ab <= 1.0
  assert float(B.box_iou(a, a)) == 1.0
  np.testing.assert_allclose(ab, _pixel_iou(a, b), rtol=1e-6, atol=1e-7)  # pixel-set IoU
  un = float(B.box_iou(a, b, clamp=False))
  # Unclamped inclusive-pixel overlap widths: <= 0 when the boxes are disjoint in that axis
  # (0 when they touch: the +1 of the pixel convention).
  w = min(a[2], b[2]) - max(a[0], b[0]) + 1
  h = min(a[3], b[3]) - max(a[1], b[1]) + 1
  if w > 0 and h > 0:
    assert un == ab  # the clamp only matters for disjoint boxes
  elif (w > 0) != (h > 0):
    assert un <= 0.0 and ab == 0.0  # disjoint in one axis: negative (or zero) intersection
  else:
    assert ab == 0.0 and un >= 0.0  # disjoint in both: the product of two widths <= 0
    area = lambda z: (z[2] - z[0] + 1) * (z[3] - z[1] + 1)
    union = area(a) + area(b) - w * h  # the legacy "intersection" w * h >= 0 can exceed it
    # the spurious positive IoU of legacy code; a non-positive union scores 0 (no division)
    assert (un > 0.0) == (w < 0 and h < 0 and union > 0)


def test_contour_convention():
  b = jnp.array([[3, 4, 10, 20], [0, 0, 223, 223]], jnp.int32)
  np.testing.assert_array_equal(B.to_contour_convention(b), [[3, 4, 11, 21], [0, 0, 224, 224]])
  np.testing.assert_array_equal(B.to_contour_convention(b, (224, 224)),
                                [[3, 4, 11, 21], [0, 0, 223, 223]])
  # (H, W) order: the clip of x uses W
  np.testing.assert_array_equal(B.to_contour_convention(b[1], (100, 50)), [0, 0, 49, 99])
  assert B.to_contour_convention(b).dtype == jnp.int32


# ----------------------------------------------------------------------------
# GT transforms.
# ----------------------------------------------------------------------------


def test_xywh_to_xyxy():
  np.testing.assert_allclose(B.xywh_to_xyxy(jnp.array([10.0, 20.0, 30.0, 5.0])),
                             [10, 20, 40, 25])


def test_resize_crop_boxes_exact():
  box = jnp.array([50.0, 40.0, 450.0, 360.0])  # (x0, y0, x1, y1) in a 500 wide, 400 high image
  out = B.resize_crop_boxes(box, (400, 500), 256, 224, clip=False)
  np.testing.assert_allclose(out, [50 * 256 / 500 - 16, 40 * 256 / 400 - 16,
                                   450 * 256 / 500 - 16, 360 * 256 / 400 - 16], rtol=1e-6)
  clipped = B.resize_crop_boxes(jnp.array([0.0, 0.0, 499.0, 399.0]), (400, 500), 256, 224)
  np.testing.assert_allclose(clipped, [0, 0, 223, 223])
  # identity when nothing is resized or cropped
  np.testing.assert_allclose(B.resize_crop_boxes(box, (400, 500), (400, 500)), box)
  # one image size per box
  two = B.resize_crop_boxes(jnp.stack([box, box]), jnp.array([[400, 500], [800, 1000]]), 256,
                            clip=False)
  np.testing.assert_allclose(two[1], box * jnp.array([256 / 1000, 256 / 800] * 2), rtol=1e-6)
  with pytest.raises(ValueError, match="crop_size"):
    B.resize_crop_boxes(box, (400, 500), 224, 256)


def test_legacy_cub_transform_and_its_offset():
  xywh = jnp.array([60.0, 27.0, 325.0, 304.0])  # a CUB-like annotation
  w, h = 500.0, 400.0
  out = B.legacy_resize_crop_boxes(xywh, (h, w))
  expect = [60 / w * 255 - 15, 27 / h * 255 - 15, 385 / w * 255 - 15, 331 / h * 255 - 15]
  np.testing.assert_allclose(out, expect, rtol=1e-6)
  exact = B.resize_crop_boxes(B.xywh_to_xyxy(xywh), (h, w), 256, 224, clip=False)
  diff = np.asarray(out - exact)
  # legacy - exact = 1 - x / W: between 0 and 1 pixel (reference spec §2.3)
  assert np.all(diff >= -1e-4) and np.all(diff <= 1 + 1e-4)


def test_tiny_imagenet_misparse():
  corners = jnp.array([10.0, 20.0, 30.0, 40.0])  # x0, y0, x1, y1 in a 64x64 image
  out = B.tiny_imagenet_legacy_boxes(corners)
  # read as (x, y, w, h): right edge x0 + x1; with resize = crop = 64 every c -> c*63/64 + 1
  np.testing.assert_allclose(out, [10 * 63 / 64 + 1, 20 * 63 / 64 + 1, 40 * 63 / 64 + 1,
                                   60 * 63 / 64 + 1], rtol=1e-6)
  assert float(out[3]) > 59  # extends far beyond the true box


# ----------------------------------------------------------------------------
# Quantisation tables.
# ----------------------------------------------------------------------------


def test_gray_threshold_table_is_python_int():
  th = np.arange(0, 1, 0.01)
  table = C.gray_threshold_table(th)
  for m in range(256):
    assert table[m].tolist() == [int(t * m) + 1 for t in th]


def test_cubehelix_gray_matches_matplotlib_and_opencv():
  cv2 = pytest.importorskip("cv2")
  from matplotlib import colormaps
  rgb = (colormaps["cubehelix"](np.arange(256))[..., :3].astype("float32") * 255.0).astype("uint8")
  gray = cv2.cvtColor(rgb[None], cv2.COLOR_RGB2GRAY)[0]
  np.testing.assert_array_equal(C.CUBEHELIX_GRAY, gray)
  # the colour map indexes a float intensity v by min(int(256 v), 255)
  v = np.random.default_rng(0).random(2000)
  np.testing.assert_array_equal(colormaps["cubehelix"](v),
                                colormaps["cubehelix"](np.minimum((v * 256).astype(int), 255)))


# ----------------------------------------------------------------------------
# Boxes from maps.
# ----------------------------------------------------------------------------


def _blob(h, w, cx, cy, sx, sy):
  yy, xx = np.mgrid[0:h, 0:w]
  return np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))


def _brute(map2d, t):
  """All 8-connected components of map > t: (area, first raster index, box), largest first."""
  lab, n = ndimage.label(map2d > t, structure=EIGHT)
  comps = []
  for i in range(1, n + 1):
    ys, xs = np.nonzero(lab == i)
    comps.append((len(ys), int(ys[0] * map2d.shape[1] + xs[0]),
                  [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]))
  comps.sort(key=lambda c: (-c[0], c[1]))
  return comps


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_golden_maps(backend):
  h, w = 24, 32
  uni = _blob(h, w, 15.0, 11.0, 4.0, 3.0)
  multi = np.maximum(_blob(h, w, 6.0, 6.0, 2.0, 2.0), 0.9 * _blob(h, w, 24.0, 16.0, 4.0, 4.0))
  border = _blob(h, w, 0.0, 23.0, 5.0, 5.0)  # peak in the bottom-left corner
  tie = np.zeros((h, w))
  tie[2:5, 20:23] = 1.0  # 3x3 square, first pixel (2, 20)
  tie[10:13, 2:5] = 1.0  # 3x3 square further down: same area, later in raster order
  diag = np.eye(h, w)  # a diagonal line: one 8-connected component
  nan = uni.copy()
  nan[11, :] = np.nan  # NaN pixels are never foreground: splits the blob
  maps = np.stack([uni, multi, border, tie, diag, nan]).astype(np.float32)
  th = np.array([0.5, 0.2, 2.0, -1.0], np.float32)
  out = B.boxes_from_maps(maps, th, backend=backend)
  boxes, valid = np.asarray(out.boxes), np.asarray(out.valid)
  assert boxes.shape == (6, 4, 4) and boxes.dtype == np.int32 and valid.shape == (6, 4)
  assert (valid == (np.nan_to_num(maps, nan=-np.inf).max(axis=(1, 2))[:, None] > th)).all()
  # unimodal: symmetric around the centre (15, 11)
  x0, y0, x1, y1 = boxes[0, 0]
  assert x0 + x1 == 30 and y0 + y1 == 22
  # multimodal at 0.5: the wider second blob is the largest component
  assert boxes[1, 0].tolist() == _brute(maps[1], 0.5)[0][2]
  assert boxes[1, 0][0] > 15
  # border: the box reaches the image border
  assert boxes[2, 0][0] == 0 and boxes[2, 0][3] == h - 1
  # ties: the component whose first pixel comes first in raster order
  assert boxes[3, 0].tolist() == [20, 2, 22, 4]
  # diagonal: 8-connectivity joins it into one component spanning the image
  assert boxes[4, 0].tolist() == [0, 0, h - 1, h - 1]
  # NaN row: the blob splits; the larger half wins
  assert boxes[5, 0].tolist() == _brute(maps[5], 0.5)[0][2]
  assert boxes[5, 0][3] < 11 or boxes[5, 0][1] > 11
  # empty foreground (threshold above every value): no valid box; full mask
  assert (boxes[:, 2] == 0).all() and not valid[:, 2].any()
  full = boxes[:, 3]
  assert (full[[0, 1, 2, 3, 4]] == [0, 0, w - 1, h - 1]).all()
  # V2: all components
  mb = B.boxes_from_maps(maps, th, multi_contour=True, max_boxes=3, backend=backend)
  assert mb.boxes.shape == (6, 4, 3, 4)
  assert int(mb.num_components[1, 0]) == 2
  assert mb.valid[1, 0].tolist() == [True, True, False]
  assert {tuple(b) for b in np.asarray(mb.boxes[1, 0, :2])} == {
      tuple(c[2]) for c in _brute(maps[1], 0.5)}
  assert np.asarray(mb.boxes[3, 0, :2]).tolist() == [[20, 2, 22, 4], [2, 10, 4, 12]]
  assert int(mb.num_components[0, 2]) == 0 and not np.asarray(mb.valid[0, 2]).any()


def _random_maps(rng, b, h, w, levels):
  """Maps with few distinct values: plateaus, ties, many small components."""
  return (rng.integers(0, levels, (b, h, w)) / levels).astype(np.float32)


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_boxes_match_brute_force_labelling(backend):
  rng = np.random.default_rng(1)
  th = np.array([-0.1, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0], np.float32)
  k = 4
  for trial in range(3):
    maps = _random_maps(rng, 5, 9, 13, 5 + trial)
    if trial == 2:  # smoother maps with larger components
      maps = ndimage.uniform_filter(rng.random((5, 9, 13)), (0, 3, 3)).astype(np.float32)
    out = B.boxes_from_maps(maps, th, backend=backend)
    v1, v1_valid = np.asarray(out.boxes), np.asarray(out.valid)
    v2 = B.boxes_from_maps(maps, th, multi_contour=True, max_boxes=k, backend=backend)
    for b in range(maps.shape[0]):
      for j, t in enumerate(th):
        comps = _brute(maps[b], t)
        assert v1[b, j].tolist() == (comps[0][2] if comps else [0, 0, 0, 0])
        assert v1_valid[b, j] == bool(comps)
        assert int(v2.num_components[b, j]) == len(comps)
        expect = [c[2] for c in comps[:k]] + [[0, 0, 0, 0]] * max(0, k - len(comps))
        assert np.asarray(v2.boxes[b, j]).tolist() == expect
        assert np.asarray(v2.valid[b, j]).tolist() == [i < len(comps) for i in range(k)]


def test_backends_agree_exactly_on_every_output():
  """numba and jax: same components, tie-breaks, quantisation and IoU decisions."""
  rng = np.random.default_rng(2)
  b, h, w = 6, 10, 12
  # Dyadic values with min 0 and max 1: min-max normalisation is exact on both
  # backends, so every later step must agree bit for bit.
  maps = (rng.integers(0, 257, (b, h, w)) / 256.0).astype(np.float32)
  maps[:, 0, 0], maps[:, -1, -1] = 0.0, 1.0
  maps[0] = 0.75  # constant map -> zeros after normalisation
  maps[1, 2, 3] = np.nan  # NaN map -> zeros
  gt = np.sort(rng.integers(0, 12, (b, 3, 2, 2)), axis=2).reshape(b, 3, 4)[..., [0, 2, 1, 3]]
  gt = gt.astype(np.float32)
  gt_valid = rng.random((b, 3)) < 0.8
  # (uint8 + contour_clipped, the wsolevaluation protocol, is compared in
  # test_localization.py::test_jax_backend_matches_numba.)
  cases = (("float", False, [-1.0, 0.0, 0.25, 0.5, 0.75], "inclusive", True, None),
           ("cubehelix", True, [0.0, 0.2, 0.5, 0.95, 1.0], "contour", False, (0, 0, 1, 1)))
  for quant, norm, th, conv, clamp, empty in cases:
    kw = dict(quantization=quant, normalize=norm, gt=gt, gt_valid=gt_valid,
              iou_thresholds=(0.1, 0.3, 0.5, 0.7), box_convention=conv, clamp=clamp,
              empty_box=empty, max_boxes=3)
    a = C.component_scan(maps, np.asarray(th, np.float32), backend="numba", **kw)
    c = C.component_scan(maps, np.asarray(th, np.float32), backend="jax", **kw)
    for key in a:
      np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(c[key]),
                                    err_msg=f"{key} {quant} {norm} {conv}")


def _reference_gray(x, quant):
  """wsolevaluation / official infoCAM normalise + quantise (both float64), NumPy."""
  if not np.isfinite(x).all() or x.max() == x.min():
    y = np.zeros_like(x, np.float64)
  else:
    with np.errstate(over="ignore"):
      y = x.astype(np.float64)
      y -= y.min()
      y /= y.max()
  if quant == "uint8":
    return (y * 255).astype(np.uint8).astype(np.int32)
  return C.CUBEHELIX_GRAY[np.minimum((y * 256).astype(int), 255)].astype(np.int32)


def test_kernel_quantization_reproduces_the_references():
  """The kernel's fused normalise+quantise is bit-exact w.r.t. the reference
  arithmetic; the JAX path agrees up to XLA's float32 division rounding."""
  from infocam_jax.wsol import _numba_kernel as _ccl_numba
  rng = np.random.default_rng(3)
  maps = np.concatenate([
      rng.random((3, 16, 16)) * 1e-30, rng.random((3, 16, 16)) * 2e38 - 1e38,
      rng.normal(size=(3, 16, 16)) * 7 + 1e4, rng.random((3, 16, 16)),
      np.full((1, 16, 16), 2.0)]).astype(np.float32)
  maps[-2, 3, 3] = np.inf
  th = np.arange(0, 1, 0.05)
  table = C.gray_threshold_table(th)
  levels = np.empty((16, 16), np.int32)
  qo = np.empty(len(th), np.int32)
  hist = np.full(257, -5, np.int64)  # the kernel zeroes it
  lev_jax, _, _ = C.quantize_maps(maps, th, "uint8", normalize=True)
  for quant in ("uint8", "cubehelix"):
    for i in range(len(maps)):
      _ccl_numba._quantize_map(maps[i], C.QUANTIZATIONS[quant], True, np.zeros(1, np.float32),
                               table, C.CUBEHELIX_GRAY, levels, qo, np.zeros(len(th), np.int32),
                               hist)
      ref = _reference_gray(maps[i], quant)
      np.testing.assert_array_equal(levels, ref, err_msg=f"{quant} map {i}")
      np.testing.assert_array_equal(hist, np.bincount(ref.ravel(), minlength=257))
      np.testing.assert_array_equal(qo, table[ref.max()])
      if quant == "uint8":  # XLA's division: at most one level off, rarely
        assert np.mean(np.asarray(lev_jax[i]) == ref) >= 0.98
        assert np.abs(np.asarray(lev_jax[i]) - ref).max() <= 1


def test_boxes_from_maps_under_jit_and_threads():
  rng = np.random.default_rng(4)
  maps = _random_maps(rng, 7, 8, 8, 4)
  th = np.array([0.1, 0.5], np.float32)
  eager = np.asarray(B.boxes_from_maps(maps, th, backend="numba", num_threads=1).boxes)
  threaded = np.asarray(B.boxes_from_maps(maps, th, backend="numba", num_threads=3).boxes)
  for b in range(maps.shape[0]):  # every map of every chunk is scanned (brute-force reference)
    for j, t in enumerate(th):
      comps = _brute(maps[b], t)
      assert eager[b, j].tolist() == (comps[0][2] if comps else [0, 0, 0, 0]), (b, j)
  jitted = np.asarray(jax.jit(lambda m, t: B.boxes_from_maps(m, t, backend="numba").boxes)(
      maps, th))
  np.testing.assert_array_equal(eager, threaded)
  np.testing.assert_array_equal(eager, jitted)
  assert B.resolve_backend("auto") == "numba"


@pytest.mark.parametrize("platform", ["gpu", "tpu", "cuda"])
def test_auto_backend_is_the_exact_engine_on_accelerator_hosts(platform, monkeypatch):
  """``backend="auto"`` never picks the approximate jax engine, even where JAX's default
  backend is an accelerator: the paper / wsolevaluation numbers must not depend on the host."""
  from infocam_jax.wsol import box_accuracy as L
  monkeypatch.setattr(jax, "default_backend", lambda: platform)
  assert jax.default_backend() == platform
  assert B.resolve_backend("auto") == "numba"
  rng = np.random.default_rng(3)
  maps = rng.random((3, 12, 14)).astype(np.float32)
  maps[0, 2:5, 2:9] += 2.0  # a ring: the hole box and the contour area matter
  maps[0, 3, 4:7] = 0.0
  gt = np.array([[[1, 1, 9, 6]], [[0, 0, 13, 11]], [[5, 5, 8, 8]]], np.float32)
  for protocol in ("wsolevaluation", "paper", "clean"):
    import warnings
    with warnings.catch_warnings():
      warnings.simplefilter("error")  # the jax backend would warn under the peer protocols
      auto = L.max_box_accuracy(protocol, image_size=(12, 14)).evaluate(maps, gt)
    exact = L.max_box_accuracy(protocol, image_size=(12, 14), backend="numba").evaluate(maps, gt)
    np.testing.assert_array_equal(auto.box_acc_curve, exact.box_acc_curve)
    np.testing.assert_array_equal(auto.box_acc_v2_curve, exact.box_acc_v2_curve)


def test_boxes_from_maps_rejects_bad_input():
  with pytest.raises(ValueError, match="maps"):
    B.boxes_from_maps(np.zeros((4, 4)), [0.5])
  with pytest.raises(ValueError, match="maps"):
    B.boxes_from_maps(np.zeros((1, 4, 4), bool), [0.5])
  with pytest.raises(ValueError, match="thresholds"):
    B.boxes_from_maps(np.zeros((1, 4, 4)), [[0.5]])
  with pytest.raises(ValueError, match="thresholds"):
    B.boxes_from_maps(np.zeros((1, 4, 4)), [np.nan])
  with pytest.raises(ValueError, match="backend"):
    B.boxes_from_maps(np.zeros((1, 4, 4)), [0.5], backend="cuda")
  with pytest.raises(ValueError, match="max_boxes"):
    B.boxes_from_maps(np.zeros((1, 4, 4)), [0.5], multi_contour=True, max_boxes=0)


# ----------------------------------------------------------------------------
# The engine's reproductions of OpenCV (contour area, hole contours, resize).
# ----------------------------------------------------------------------------


def _random_masks(rng, n):
  """Binary masks with thin parts, holes, nested components and border contact."""
  out = []
  for i in range(n):
    h, w = rng.integers(3, 26, 2)
    if i % 2:
      m = rng.random((h, w)) < rng.uniform(0.3, 0.8)
    else:
      coarse = rng.random((max(2, h // 4), max(2, w // 4)))
      m = ndimage.zoom(coarse, (h / coarse.shape[0], w / coarse.shape[1]), order=1)[:h, :w]
      m = m > rng.uniform(0.3, 0.7)
    out.append(m)
  return out


def test_contour_area_of_every_component_matches_opencv():
  """Quad area (hole-free components) and the border-following tracer (any component) equal
  cv2.contourArea of the component's outer contour."""
  cv2 = pytest.importorskip("cv2")
  from infocam_jax.wsol import _numba_kernel as _ccl_numba
  rng = np.random.default_rng(7)
  checked = holed = 0
  for fg in _random_masks(rng, 300):
    h, w = fg.shape
    stride = 1 << int(np.ceil(np.log2(w + 2)))
    act = np.zeros((h + 2) * stride, np.uint8)
    for y, x in zip(*np.nonzero(fg)):
      act[(y + 1) * stride + x + 1] = 1
    img = fg.astype(np.uint8) * 255
    contours, hier = cv2.findContours(img, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    lab, n = ndimage.label(fg, structure=np.ones((3, 3)))
    padded = np.pad(fg, 1).astype(int)
    quads = padded[:-1, :-1] + padded[:-1, 1:] + padded[1:, :-1] + padded[1:, 1:]
    qlab = np.pad(lab, 1)
    qlab = np.maximum.reduce([qlab[:-1, :-1], qlab[:-1, 1:], qlab[1:, :-1], qlab[1:, 1:]])
    qarea2 = np.bincount(qlab.ravel(), weights=np.select([quads == 4, quads == 3], [2, 1], 0)
                         .ravel(), minlength=n + 1)
    for k, c in enumerate(contours):
      if hier[0][k][3] >= 0:
        continue  # a hole contour
      x, y = c[0, 0]  # the first point of an outer contour is its first pixel in raster order
      comp = lab[y, x]
      a2 = int(round(2 * cv2.contourArea(c)))
      assert _ccl_numba._outer_contour_area2(act, (y + 1) * stride + x + 1, stride) == a2
      bg = ndimage.label(~np.pad(lab == comp, 1))[1]
      if bg == 1:  # no hole: the quad area is the contour area
        assert qarea2[comp] == a2
      else:
        holed += 1
      checked += 1
  assert checked > 1000 and holed > 20


def test_hole_contour_boxes_are_hole_extents_grown_by_one():
  cv2 = pytest.importorskip("cv2")
  rng = np.random.default_rng(8)
  for fg in _random_masks(rng, 200):
    contours, hier = cv2.findContours(fg.astype(np.uint8) * 255, cv2.RETR_CCOMP,
                                      cv2.CHAIN_APPROX_SIMPLE)
    got = sorted(tuple(cv2.boundingRect(c)) for k, c in enumerate(contours) if hier[0][k][3] >= 0)
    bg, n = ndimage.label(~fg)  # 4-connected background components
    want = []
    for i in range(1, n + 1):
      ys, xs = np.nonzero(bg == i)
      if xs.min() > 0 and ys.min() > 0 and xs.max() < fg.shape[1] - 1 and ys.max() < fg.shape[0] - 1:
        want.append((xs.min() - 1, ys.min() - 1, xs.max() - xs.min() + 3, ys.max() - ys.min() + 3))
    assert got == sorted(want)


def test_cv2_cubic_taps_resize_float64_maps_bit_for_bit():
  cv2 = pytest.importorskip("cv2")
  from infocam_jax.wsol import _numba_kernel as _ccl_numba
  rng = np.random.default_rng(9)
  for (h, w), (oh, ow) in (((14, 14), (224, 224)), ((17, 9), (50, 224)), ((6, 7), (64, 64)),
                           ((30, 30), (31, 29))):
    m = (rng.normal(size=(h, w)) * 10).astype(np.float32)
    (iy, wy), (ix, wx) = C.cv2_cubic_taps(h, oh), C.cv2_cubic_taps(w, ow)
    out = np.empty((oh, ow))
    _ccl_numba._resize_cubic64(m, iy, wy, ix, wx, np.empty((h, ow)), out)
    ref = cv2.resize(m.astype(np.float64), (ow, oh), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out, ref)
