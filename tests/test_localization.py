"""Tests of infocam_jax.wsol.box_accuracy: streaming MaxBoxAcc / Top-1 Loc accumulators."""

from __future__ import annotations

import json
from fractions import Fraction

import chex
import jax
import numpy as np
import pytest
from scipy import ndimage

from infocam_jax.wsol import components as C
from infocam_jax.wsol import boxes as B
from infocam_jax.wsol import box_accuracy as L

H = W = 24
TH = np.arange(0, 1, 0.1)
IOUS = (0.3, 0.5, 0.7)


def _maps(rng, n, h=H, w=W):
  """Smooth CAM-like maps: 1-3 blobs plus noise on a coarse grid, upsampled."""
  out = np.empty((n, h, w), np.float32)
  yy, xx = np.mgrid[0:h, 0:w]
  for i in range(n):
    m = np.zeros((h, w))
    for _ in range(rng.integers(1, 4)):
      cx, cy = rng.uniform(0.15, 0.85, 2) * (w, h)
      s = rng.uniform(0.06, 0.2, 2) * (w, h)
      m += rng.uniform(0.4, 1) * np.exp(-0.5 * (((xx - cx) / s[0]) ** 2 + ((yy - cy) / s[1]) ** 2))
    m += ndimage.zoom(rng.normal(0, 0.1, (6, 6)), (h / 6, w / 6), order=1)
    out[i] = m
  return out


def _gts(rng, n, g=2):
  lo = rng.integers(0, 14, (n, g, 2))
  hi = lo + rng.integers(2, 10, (n, g, 2))
  boxes = np.concatenate([lo, np.minimum(hi, 23)], -1).astype(np.float32)
  mask = np.ones((n, g), bool)
  mask[:, 1:] = rng.random((n, g - 1)) < 0.5
  return boxes, mask


# ----------------------------------------------------------------------------
# An independent, per-image reference of the three protocols (NumPy/SciPy).
# ----------------------------------------------------------------------------


def _levels_and_fg(m, protocol, t):
  x = m.astype(np.float32)
  ok = np.isfinite(x).all() and x.max() > x.min()
  if protocol == "paper":
    y = np.zeros(x.shape)
    if ok:
      y = (x.astype(np.float64) - x.min()) / (np.float64(x.max()) - x.min())
    gray = C.CUBEHELIX_GRAY[np.minimum((y * 256).astype(int), 255)].astype(int)
    return gray > int(t * gray.max())
  if protocol == "wsolevaluation":  # float64, as the peer's t2n + normalize_scoremap
    y = np.zeros(x.shape)
    if ok:
      y = x.astype(np.float64) - x.min()
      y /= y.max()
    gray = (y * 255).astype(np.uint8).astype(int)
    return gray > int(t * gray.max())
  y = (x - x.min()) / (x.max() - x.min()) if ok else np.zeros_like(x)
  return y > np.float32(t)


def _components(fg, protocol):
  """Inclusive extents of the candidate boxes, the V1 box first.

  clean: 8-connected components by pixel count (ties: first pixel in raster order), SciPy.
  wsolevaluation / paper: OpenCV's contours (RETR_TREE), V1 = the first contour of largest
  cv2.contourArea; V2 = every contour (wsolevaluation) or the outer ones (paper).
  """
  if protocol == "clean":
    lab, n = ndimage.label(fg, structure=np.ones((3, 3)))
    comps = []
    for i in range(1, n + 1):
      ys, xs = np.nonzero(lab == i)
      comps.append((len(ys), ys[0] * fg.shape[1] + xs[0],
                    [xs.min(), ys.min(), xs.max(), ys.max()]))
    comps.sort(key=lambda c: (-c[0], c[1]))
    return [c[2] for c in comps]
  import cv2
  contours, hier = cv2.findContours(fg.astype(np.uint8) * 255, cv2.RETR_TREE,
                                    cv2.CHAIN_APPROX_SIMPLE)
  if len(contours) == 0:
    return []

  def extent(c):
    x, y, w, h = cv2.boundingRect(c)
    return [x, y, x + w - 1, y + h - 1]

  def depth(k):
    d, p = 0, hier[0][k][3]
    while p >= 0:
      d, p = d + 1, hier[0][p][3]
    return d

  keep = [k for k in range(len(contours)) if protocol == "wsolevaluation" or depth(k) % 2 == 0]
  first = max(contours, key=cv2.contourArea)
  return [extent(first)] + [extent(contours[k]) for k in keep]


def _convention(box, protocol, h, w):
  x0, y0, x1, y1 = box
  if protocol == "wsolevaluation":
    return [x0, y0, min(x1 + 1, w - 1), min(y1 + 1, h - 1)]
  if protocol == "paper":
    return [x0, y0, x1 + 1, y1 + 1]
  return box


def _iou_exact(a, b, clamp):
  """IoU as an exact fraction (boxes are integers here)."""
  iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
  ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
  if clamp:
    iw, ih = max(iw, 0), max(ih, 0)
  inter = iw * ih
  union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
  return Fraction(int(inter), int(union)) if union > 0 else Fraction(0)


def _reference_hits(maps, gts, gt_mask, protocol):
  """Per-image V1 and V2 hits [N, J, T] by a literal loop."""
  clamp = protocol != "paper"
  empty = {"clean": None, "wsolevaluation": [0, 0, 0, 0], "paper": [0, 0, 1, 1]}[protocol]
  n, h, w = maps.shape
  h1 = np.zeros((n, len(IOUS), len(TH)), bool)
  h2 = np.zeros_like(h1)
  for i in range(n):
    gt = [[int(v) for v in g] for g, ok in zip(gts[i], gt_mask[i]) if ok]
    for k, t in enumerate(TH):
      comps = _components(_levels_and_fg(maps[i], protocol, t), protocol)
      if comps:
        cand = [_convention(c, protocol, h, w) for c in comps]
      else:
        cand = [] if empty is None else [empty]
      best1 = max([_iou_exact(cand[0], g, clamp) for g in gt], default=None) if cand else None
      best2 = max([_iou_exact(c, g, clamp) for c in cand for g in gt], default=None)
      for j, d in enumerate(IOUS):
        dj = Fraction(d).limit_denominator(1000)
        h1[i, j, k] = best1 is not None and best1 >= dj
        h2[i, j, k] = best2 is not None and best2 >= dj
  return h1, h2


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  n = 24
  maps = _maps(rng, n)
  maps[3] = 0.5  # constant map: empty foregrounds
  gts, gt_mask = _gts(rng, n)
  correct = rng.random(n) < 0.6
  return maps, gts, gt_mask, correct


@pytest.mark.parametrize("protocol", ["clean", "wsolevaluation", "paper"])
def test_accumulators_equal_a_per_image_loop(data, protocol):
  maps, gts, gt_mask, correct = data
  ev = L.max_box_accuracy(protocol, cam_thresholds=TH, iou_thresholds=IOUS, loc_threshold=0.2)
  state = ev.init()
  for lo in range(0, len(maps), 8):
    sl = slice(lo, lo + 8)
    state = ev.update(state, maps[sl], gts[sl], gt_mask[sl], correct=correct[sl])
  h1, h2 = _reference_hits(maps, gts, gt_mask, protocol)
  np.testing.assert_array_equal(state.hits, h1.sum(0))
  np.testing.assert_array_equal(state.hits_v2, h2.sum(0))
  np.testing.assert_array_equal(state.hits_top1, (h1 & correct[:, None, None]).sum(0))
  np.testing.assert_array_equal(state.hits_v2_top1, (h2 & correct[:, None, None]).sum(0))
  assert int(state.num_images) == len(maps) and int(state.num_correct) == correct.sum()
  # the per-image hits of `image_hits` are the same decisions
  i1, i2 = ev.image_hits(maps[:8], gts[:8], gt_mask[:8])
  np.testing.assert_array_equal(i1, h1[:8])
  np.testing.assert_array_equal(i2, h2[:8])
  res = ev.compute(state)
  assert res.protocol == protocol
  j = IOUS.index(0.5)
  curve = 100 * h1.sum(0) / len(maps)
  np.testing.assert_allclose(res.box_acc_curve, curve)
  assert res.max_box_acc == pytest.approx(curve[j].max())
  assert res.max_box_acc_threshold == pytest.approx(TH[np.argmax(curve[j])])
  v2 = 100 * h2.sum(0) / len(maps)
  assert res.max_box_acc_v2 == pytest.approx(v2.max(1).mean())
  np.testing.assert_allclose(res.max_box_acc_v2_per_iou, v2.max(1))
  assert res.gt_known_loc_pooled == pytest.approx(curve[j, 2])
  assert res.top1_loc_pooled == pytest.approx(100 * (h1[:, j, 2] & correct).mean())
  assert res.top1_cls == pytest.approx(100 * correct.mean())
  headline = res.gt_known_loc_meter if protocol == "paper" else res.gt_known_loc_pooled
  assert res.gt_known_loc == pytest.approx(headline)
  json.dumps(res.to_dict())


def test_batching_does_not_change_pooled_counts_but_changes_the_meter(data):
  maps, gts, gt_mask, correct = data
  ev = L.max_box_accuracy("paper", cam_thresholds=TH, iou_thresholds=IOUS)
  a = ev.evaluate(maps, gts, gt_mask, correct, batch_size=8)
  b = ev.evaluate(maps, gts, gt_mask, correct, batch_size=5)  # padded last batch
  np.testing.assert_array_equal(a.box_acc_curve, b.box_acc_curve)
  np.testing.assert_array_equal(a.box_acc_v2_curve, b.box_acc_v2_curve)
  assert a.num_images == b.num_images == len(maps)
  assert a.gt_known_loc == a.gt_known_loc_meter  # the paper's headline is the meter


def test_running_meter_differs_from_hits_over_images():
  """Official AverageEpochMeter of cumulative ratios: (100*1 + 50*1) / 2 = 75, not 50."""
  ev = L.max_box_accuracy("paper", cam_thresholds=(0.2,), iou_thresholds=(0.5,))
  m = np.zeros((1, 8, 8), np.float32)
  m[0, 2:6, 2:6] = 1.0  # a 4x4 blob -> paper box (2, 2, 6, 6)
  hit_gt = np.array([[[2, 2, 6, 6]]], np.float32)
  miss_gt = np.array([[[0, 0, 0, 0]]], np.float32)
  s = ev.update(ev.init(), m, hit_gt, correct=np.array([True]))
  s = ev.update(s, m, miss_gt, correct=np.array([True]))
  res = ev.compute(s)
  assert res.gt_known_loc_pooled == 50.0
  assert res.gt_known_loc_meter == pytest.approx(75.0)
  assert res.gt_known_loc == pytest.approx(75.0) and res.top1_loc == pytest.approx(75.0)
  # the reversed order gives (0*1 + 50*1) / 2 = 25
  s = ev.update(ev.init(), m, miss_gt, correct=np.array([True]))
  s = ev.update(s, m, hit_gt, correct=np.array([True]))
  assert ev.compute(s).gt_known_loc == pytest.approx(25.0)


def test_protocol_quirks_on_golden_cases():
  m = np.zeros((2, 16, 16), np.float32)
  m[0, 4:8, 4:8] = 1.0  # a 4x4 square exactly covering its GT box
  gt = np.array([[[4, 4, 7, 7]], [[5, 5, 15, 15]]], np.float32)
  # map 1 is constant: nothing is above any threshold
  kw = dict(cam_thresholds=(0.0, 0.5), iou_thresholds=(0.5, 0.6))
  clean = L.max_box_accuracy("clean", **kw).evaluate(m, gt)
  assert np.isnan(clean.gt_known_loc) and clean.max_box_acc == 50.0  # 0.2 not in the grid
  ws = L.max_box_accuracy("wsolevaluation", **kw).evaluate(m, gt)
  paper = L.max_box_accuracy("paper", loc_threshold=0.0, **kw).evaluate(m, gt)
  # clean: the inclusive extent is the GT box itself (IoU 1)
  assert clean.box_acc_curve[:, 1].tolist() == [50.0, 50.0]
  # wsolevaluation/paper: OpenCV's (x, y, x+w, y+h) box is one pixel larger: IoU 16/25 = 0.64
  assert ws.box_acc_curve[:, 1].tolist() == [50.0, 50.0]
  kw64 = dict(cam_thresholds=(0.0, 0.5), iou_thresholds=(0.5, 0.65))
  assert L.max_box_accuracy("wsolevaluation", **kw64).evaluate(m, gt).box_acc_curve[
      :, 1].tolist() == [50.0, 0.0]
  assert L.max_box_accuracy("clean", **kw64).evaluate(m, gt).box_acc_curve[
      :, 1].tolist() == [50.0, 50.0]
  # the constant map: clean predicts nothing; wsolevaluation evaluates (0, 0, 0, 0) (miss);
  # the paper evaluates (0, 0, 1, 1) with the unclamped IoU against (5, 5, 15, 15):
  # inter = (1-5+1)^2 = 9, union = 4 + 121 - 9 = 116 -> 0.078 (miss) ...
  assert paper.box_acc_curve[0, 0] == 50.0
  # ... and against a GT box far from the corner it is a spurious hit
  # (a legacy box past the 16x16 frame, which only the paper protocol accepts):
  # inter = (1 - 16 + 1)^2 = 196, union = 4 + 289 - 196 = 97 -> "IoU" 2.02
  far = np.array([[[4, 4, 7, 7]], [[16, 16, 32, 32]]], np.float32)
  spur = L.max_box_accuracy("paper", loc_threshold=0.0, **kw).evaluate(m, far)
  assert spur.box_acc_curve[0].tolist() == [100.0, 100.0]
  with pytest.raises(ValueError, match="outside the 16x16"):
    L.max_box_accuracy("wsolevaluation", **kw).evaluate(m, far)


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_wsolevaluation_clips_contour_boxes_at_the_border(backend):
  """A component touching the right/bottom border: wsolevaluation's OpenCV box
  (x, y, x + w, y + h) is clipped to (W - 1, H - 1), so it equals the inclusive extent
  there (IoU 1 with that GT box); the paper's unclipped box is one pixel larger (16/25)."""
  m = np.zeros((2, 16, 16), np.float32)
  m[0, 12:16, 12:16] = 1.0  # inclusive extent (12, 12, 15, 15)
  m[1, 0:4, 0:4] = 1.0  # away from the border: contour box (0, 0, 4, 4) in both protocols
  gt = np.array([[[12, 12, 15, 15]], [[0, 0, 3, 3]]], np.float32)
  kw = dict(cam_thresholds=(0.5,), iou_thresholds=(0.5, 0.9), backend=backend)
  ws = L.max_box_accuracy("wsolevaluation", **kw).evaluate(m, gt)
  paper = L.max_box_accuracy("paper", loc_threshold=0.5, **kw).evaluate(m, gt)
  # rows: IoU thresholds 0.5, 0.9; map 0 hits both under wsolevaluation (IoU 1), map 1
  # only 0.5 (IoU 16/25); under the paper protocol both maps are at 16/25. (Clipping only
  # one side would give 16/20 = 0.8: a miss at 0.9.)
  for curve in ("box_acc_curve", "box_acc_v2_curve"):
    assert getattr(ws, curve)[:, 0].tolist() == [100.0, 50.0], curve
    assert getattr(paper, curve)[:, 0].tolist() == [100.0, 0.0], curve


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_empty_foreground_is_a_miss_in_clean_and_box_0000_in_wsolevaluation(backend):
  """A constant map has an empty foreground at every threshold. clean: no box, never a
  hit, even against a GT box at the corner; wsolevaluation evaluates (0, 0, 0, 0), which
  is exactly that GT box (IoU 1, a hit)."""
  m = np.zeros((1, 8, 8), np.float32)
  gt = np.array([[[0, 0, 0, 0]]], np.float32)
  kw = dict(cam_thresholds=(0.0, 0.5), iou_thresholds=(0.5,), backend=backend)
  clean = L.max_box_accuracy("clean", **kw).evaluate(m, gt)
  ws = L.max_box_accuracy("wsolevaluation", **kw).evaluate(m, gt)
  for curve in ("box_acc_curve", "box_acc_v2_curve"):
    assert getattr(clean, curve).tolist() == [[0.0, 0.0]], curve
    assert getattr(ws, curve).tolist() == [[100.0, 100.0]], curve


def test_valid_mask_correct_none_and_merge(data):
  maps, gts, gt_mask, correct = data
  ev = L.max_box_accuracy("clean", cam_thresholds=TH, iou_thresholds=IOUS)
  full = ev.update(ev.init(), maps[:8], gts[:8], gt_mask[:8], correct=correct[:8])
  valid = np.arange(8) < 5
  part = ev.update(ev.init(), maps[:8], gts[:8], gt_mask[:8], correct=correct[:8], valid=valid)
  ref = ev.update(ev.init(), maps[:5], gts[:5], gt_mask[:5], correct=correct[:5])
  for f in ("hits", "hits_top1", "hits_v2", "num_images", "num_correct"):
    np.testing.assert_array_equal(getattr(part, f), getattr(ref, f))
  rest = ev.update(ev.init(), maps[5:8], gts[5:8], gt_mask[5:8], correct=correct[5:8])
  merged = ev.merge(ref, rest)
  for f in ("hits", "hits_top1", "hits_v2", "hits_v2_top1", "num_images", "num_correct"):
    np.testing.assert_array_equal(getattr(merged, f), getattr(full, f))
  # no correctness given: Top-1 metrics are undefined, GT-known ones are not
  res = ev.compute(ev.update(ev.init(), maps[:8], gts[:8], gt_mask[:8]))
  assert np.isnan(res.top1_loc) and np.isnan(res.top1_cls) and not np.isnan(res.gt_known_loc)
  assert np.isnan(res.top1_loc_curve).all()
  assert res.to_dict()["top1_loc"] is None
  # an image without a valid GT box never hits
  none = ev.update(ev.init(), maps[:8], gts[:8], np.zeros_like(gt_mask[:8]))
  assert int(none.hits.sum()) == 0 and int(none.num_images) == 8


def test_update_does_not_retrace_and_host_path_equals_traced(data):
  """``update`` on host arrays scans outside ``jit`` (maps read in place); inside a ``jit`` the
  same scan runs through ``pure_callback``: both give the same state, NaN maps included, and
  neither retraces per batch."""
  maps, gts, gt_mask, correct = data
  maps = np.array(maps)
  maps[3, 5, 5] = np.nan
  maps[17] = np.inf
  ev = L.max_box_accuracy("wsolevaluation", cam_thresholds=TH, iou_thresholds=IOUS)
  step = jax.jit(chex.assert_max_traces(ev.update_fn, n=1))
  state = ev.init()
  for lo in range(0, 24, 8):
    sl = slice(lo, lo + 8)
    state = step(state, maps[sl], gts[sl], gt_mask[sl], correct[sl], np.ones(8, bool))
  before = L._update_from_scan_jit._cache_size()
  s2 = ev.init()
  for lo in range(0, 24, 8):
    sl = slice(lo, lo + 8)
    s2 = ev.update(s2, maps[sl], gts[sl], gt_mask[sl], correct=correct[sl])
  assert L._update_from_scan_jit._cache_size() <= before + 1
  assert int(state.num_invalid_maps) == int(s2.num_invalid_maps) == 2
  for f in ("hits", "hits_v2", "hits_top1", "num_images", "num_correct"):
    np.testing.assert_array_equal(getattr(state, f), getattr(s2, f))
  np.testing.assert_array_equal(np.asarray(ev.image_hits(maps, gts, gt_mask)),
                                np.asarray(jax.jit(ev.image_hits)(maps, gts, gt_mask)))


def test_jax_backend_matches_numba(data):
  maps, gts, gt_mask, correct = data
  # dyadic maps with min 0 and max 1: the normalisation is exact on both backends
  q = (np.round(maps * 64) / 64).astype(np.float32)
  q -= q.min(axis=(1, 2), keepdims=True)
  top = q.max(axis=(1, 2), keepdims=True)
  q /= np.where(top > 0, top, 1)  # now min 0, max exactly 1
  res = {}
  for backend in ("numba", "jax"):
    ev = L.max_box_accuracy("clean", cam_thresholds=TH, iou_thresholds=IOUS, backend=backend)
    res[backend] = ev.evaluate(q[:16], gts[:16], gt_mask[:16], correct[:16], batch_size=16)
  for f in ("box_acc_curve", "box_acc_v2_curve", "top1_loc_curve"):
    np.testing.assert_array_equal(getattr(res["numba"], f), getattr(res["jax"], f))
  # the wsolevaluation arithmetic (uint8, contour_clipped, empty box) with the pixel-count
  # "largest" and no hole boxes, which is what the jax backend runs under that protocol
  kw = dict(quantization="uint8", normalize=True, gt=gts[:16], gt_valid=gt_mask[:16],
            iou_thresholds=IOUS, box_convention="contour_clipped", empty_box=(0, 0, 0, 0))
  a = C.component_scan(q[:16], TH, backend="numba", **kw)
  b = C.component_scan(q[:16], TH, backend="jax", **kw)
  for key in a:
    np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)
  with pytest.warns(UserWarning, match="jax backend"):
    L.max_box_accuracy("wsolevaluation", backend="jax")


def test_resizes_maps_to_image_size(data):
  maps, gts, gt_mask, _ = data
  small = maps[:8, ::4, ::4]  # 6x6 "raw CAMs"
  from infocam_jax import cam
  ev = L.max_box_accuracy("clean", cam_thresholds=TH, iou_thresholds=IOUS, image_size=(H, W))
  ev_big = L.max_box_accuracy("clean", cam_thresholds=TH, iou_thresholds=IOUS)
  a = ev.update(ev.init(), small, gts[:8], gt_mask[:8])
  up = cam.upsample_maps(small, (H, W), "bicubic")
  b = ev_big.update(ev_big.init(), up, gts[:8], gt_mask[:8])
  np.testing.assert_array_equal(a.hits, b.hits)
  np.testing.assert_array_equal(a.hits_v2, b.hits_v2)


def test_agrees_with_the_opencv_contour_reference():
  """wsolevaluation's procedure with OpenCV: same hits on nearly every (map, threshold)."""
  cv2 = pytest.importorskip("cv2")
  rng = np.random.default_rng(5)
  n, size = 24, 48
  maps = _maps(rng, n, size, size)
  maps -= maps.min(axis=(1, 2), keepdims=True)
  maps /= maps.max(axis=(1, 2), keepdims=True)
  gts = np.clip(rng.integers(0, 40, (n, 1, 4)), 0, 47).astype(np.float32)
  gts[..., 2:] = np.maximum(gts[..., 2:], gts[..., :2] + 6)
  gts = np.minimum(gts, 47)
  th = np.arange(0, 1, 0.05)
  ref = np.zeros((2, n, len(th)), bool)
  for i in range(n):
    img = (maps[i] * 255).astype(np.uint8)
    for k, t in enumerate(th):
      _, mask = cv2.threshold(img, int(t * img.max()), 255, cv2.THRESH_BINARY)
      cs = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
      boxes = [[0, 0, 0, 0]] if not cs else []
      for c in cs:
        x, y, w, h = cv2.boundingRect(c)
        boxes.append([x, y, min(x + w, size - 1), min(y + h, size - 1)])
      areas = [cv2.contourArea(c) for c in cs]
      largest = boxes[int(np.argmax(areas))] if cs else [0, 0, 0, 0]
      g = [int(v) for v in gts[i, 0]]
      ref[0, i, k] = _iou_exact(largest, g, True) >= Fraction(1, 2)
      ref[1, i, k] = max(_iou_exact(b, g, True) for b in boxes) >= Fraction(1, 2)
  ev = L.max_box_accuracy("wsolevaluation", cam_thresholds=th, iou_thresholds=(0.5,))
  h1, h2 = ev.image_hits(maps, gts)
  assert np.mean(np.asarray(h1)[:, 0] == ref[0]) >= 0.99
  assert np.mean(np.asarray(h2)[:, 0] == ref[1]) >= 0.99


def test_paper_protocol_agrees_with_the_official_pipeline():
  """cv2.resize(INTER_CUBIC) -> matplotlib cubehelix -> RGB2GRAY -> largest contour, at 0.2."""
  cv2 = pytest.importorskip("cv2")
  from matplotlib import colormaps
  rng = np.random.default_rng(6)
  n, size = 32, 56
  raw = rng.normal(size=(n, 7, 7)).astype(np.float32)
  raw += 3 * np.exp(-((np.arange(7)[:, None] - 3) ** 2 + (np.arange(7) - 3) ** 2) / 4)
  gts = rng.integers(0, 30, (n, 1, 2)).astype(np.float32)
  gts = np.concatenate([gts, gts + rng.integers(8, 26, (n, 1, 2))], -1)
  hits = []
  for i in range(n):
    cam = cv2.resize(raw[i], (size, size), interpolation=cv2.INTER_CUBIC).astype("float")
    cam -= cam.min()
    cam /= cam.max()
    rgb = (colormaps["cubehelix"](cam)[..., :3].astype("float32") * 255.0).astype("uint8")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    _, mask = cv2.threshold(gray, int(0.2 * np.max(gray)), 255, cv2.THRESH_BINARY)
    cs = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if cs:
      x, y, w, h = cv2.boundingRect(max(cs, key=cv2.contourArea))
      box = [x, y, x + w, y + h]
    else:
      box = [0, 0, 1, 1]
    hits.append(_iou_exact(box, [int(v) for v in gts[i, 0]], False) >= Fraction(1, 2))
  ev = L.max_box_accuracy("paper", cam_thresholds=(0.2,), iou_thresholds=(0.5,),
                          image_size=(size, size))
  mine = np.asarray(ev.image_hits(raw, gts)[0])[:, 0, 0]
  assert np.mean(mine == np.array(hits)) >= 0.95


def test_bad_arguments():
  with pytest.raises(ValueError, match="protocol"):
    L.max_box_accuracy("cvpr")
  with pytest.raises(ValueError, match="loc_threshold"):
    L.max_box_accuracy(cam_thresholds=(0.1, 0.3), loc_threshold=0.2)
  assert np.isnan(L.max_box_accuracy(cam_thresholds=(0.1, 0.3)).loc_threshold)
  with pytest.raises(ValueError, match="loc_iou"):
    L.max_box_accuracy(iou_thresholds=(0.3, 0.7))
  with pytest.raises(ValueError, match="cam_thresholds"):
    L.max_box_accuracy(cam_thresholds=(0.5, 0.2))
  with pytest.raises(ValueError, match="iou_thresholds"):
    L.max_box_accuracy(iou_thresholds=(0.0, 0.5))
  ev = L.max_box_accuracy(cam_thresholds=TH)
  m = np.zeros((2, 8, 8), np.float32)
  with pytest.raises(ValueError, match="gt_boxes"):
    ev.update(ev.init(), m, np.zeros((2, 4)))
  with pytest.raises(ValueError, match="gt_boxes"):
    ev.update(ev.init(), m, np.array([[[5, 0, 2, 3]], [[0, 0, 1, 1]]], np.float32))
  with pytest.raises(ValueError, match="correct"):
    ev.update(ev.init(), m, np.zeros((2, 1, 4)), correct=np.ones(2, np.int32))
  with pytest.raises(ValueError, match="valid"):
    ev.update(ev.init(), m, np.zeros((2, 1, 4)), valid=np.ones(3, bool))
  with pytest.raises(ValueError, match="No images"):
    ev.compute(ev.init())


def test_gt_boxes_outside_the_frame_are_rejected():
  m = np.zeros((1, 32, 32), np.float32)
  for protocol in ("clean", "wsolevaluation", "paper"):
    ev = L.max_box_accuracy(protocol, cam_thresholds=TH)
    with pytest.raises(ValueError, match=r"outside the 32x32 \(HxW\) frame of the maps' size"):
      ev.update(ev.init(), m, np.array([[[500, 500, 900, 900]]], np.float32))
  # boxes in 224 coordinates given to an evaluator of 64x64 images
  ev = L.max_box_accuracy("wsolevaluation", cam_thresholds=TH, image_size=64)
  with pytest.raises(ValueError, match="64x64 .* `image_size`"):
    ev.update(ev.init(), m, np.array([[[10, 20, 180, 200]]], np.float32))
  # the frame's edge coordinate itself (wsolevaluation's resize_bbox gives 224) is accepted,
  # and so are the paper's legacy boxes (CUB: -15 .. 240 on a 224 crop)
  ev.update(ev.init(), m, np.array([[[0, 0, 64, 64]]], np.float32))
  ev = L.max_box_accuracy("paper", image_size=224)
  legacy = np.asarray(B.legacy_resize_crop_boxes([[0.0, 0.0, 500.0, 375.0]], (375, 500)))
  ev.update(ev.init(), m, legacy[None])
  # a box outside the mask is not checked
  ev.update(ev.init(), m, np.array([[[900, 0, 901, 1]]], np.float32), np.array([[False]]))


def test_non_finite_maps_are_counted_and_warned_about():
  m = np.zeros((4, 16, 16), np.float32)
  m[:, 4:8, 4:8] = 1.0
  m[1, 0, 0] = np.nan
  m[2, 3, 3] = np.inf
  m[3, 3, 3] = np.nan  # padding: not counted
  gt = np.tile(np.array([[[4, 4, 7, 7]]], np.float32), (4, 1, 1))
  ev = L.max_box_accuracy("clean", cam_thresholds=TH)
  s = ev.update(ev.init(), m, gt, valid=np.array([True, True, True, False]))
  with pytest.warns(RuntimeWarning, match="2 of 3 maps contain NaN or inf"):
    res = ev.compute(s)
  assert res.num_invalid_maps == 2 and res.to_dict()["num_invalid_maps"] == 2
  # they are evaluated as all-zero maps: no foreground, so no hit; never NaN
  assert res.max_box_acc == pytest.approx(100 / 3) and np.isfinite(res.box_acc_curve).all()
