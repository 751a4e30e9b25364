"""Cell-for-cell parity of the "wsolevaluation" and "paper" protocols with the reference evaluators.

The references below are written here from the peers' documented procedure (clovaai/wsolevaluation
``inference.py`` + ``evaluation.BoxEvaluator``; the official infoCAM ``util_cam.generate_bbox`` +
``util_acc.calculate_IOU``), with OpenCV doing the contour work, as the peers do:

* wsolevaluation: float64 copy of the raw map, ``cv2.resize(INTER_CUBIC)`` to the image size,
  min-max in float64 (NaN or constant -> zeros), ``uint8(255 m)``, ``cv2.threshold`` at
  ``int(t * max)``, ``cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)``, V1 = ``max(contours,
  key=cv2.contourArea)``, V2 = every contour, box ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``,
  no contour -> ``(0, 0, 0, 0)``, clamped IoU in float64, hit when ``IoU >= delta``.
* paper: float32 ``cv2.resize``, float64 min-max, matplotlib cubehelix -> uint8 RGB ->
  ``cv2.COLOR_RGB2GRAY``, threshold, largest contour, box ``(x, y, x + w, y + h)``, no contour ->
  ``(0, 0, 1, 1)``, IoU without the clamp.

Every test asserts identical per-(image, IoU threshold, map threshold) decisions.
"""

from __future__ import annotations

import numpy as np
import pytest

from infocam_jax.wsol import box_accuracy as L

cv2 = pytest.importorskip("cv2")

IOUS = (0.3, 0.5, 0.7)


# ----------------------------------------------------------------------------
# References.
# ----------------------------------------------------------------------------


def _iou(boxes, gts, clamp):
  """float64 IoU [num_boxes, num_gt] with the +1 convention (degenerate -> 0)."""
  a = np.asarray(boxes, np.float64)[:, None, :]
  g = np.asarray(gts, np.float64)[None, :, :]
  iw = np.minimum(a[..., 2], g[..., 2]) - np.maximum(a[..., 0], g[..., 0]) + 1
  ih = np.minimum(a[..., 3], g[..., 3]) - np.maximum(a[..., 1], g[..., 1]) + 1
  if clamp:
    iw, ih = np.maximum(iw, 0), np.maximum(ih, 0)
  inter = iw * ih
  area = lambda b: (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
  union = area(a) + area(g) - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _contour_boxes(gray, t, clipped):
  """(all contour boxes, box of the largest contour) of ``gray > int(t * max)``, or None, None."""
  h, w = gray.shape[:2]
  _, mask = cv2.threshold(gray, int(t * np.max(gray)), 255, cv2.THRESH_BINARY)
  contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
  if len(contours) == 0:
    return None, None

  def box(c):
    x, y, bw, bh = cv2.boundingRect(c)
    x1, y1 = x + bw, y + bh
    return [x, y, min(x1, w - 1), min(y1, h - 1)] if clipped else [x, y, x1, y1]

  return [box(c) for c in contours], box(max(contours, key=cv2.contourArea))


def wsol_reference(raw, size, thresholds, gts):
  """bool [2 (V1, V2), J, T] of wsolevaluation for one raw map and its GT boxes [G, 4]."""
  m = raw.astype(np.float64)
  if m.shape != tuple(size):
    m = cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
  if np.isnan(m).any() or m.min() == m.max():
    m = np.zeros_like(m)
  else:
    m -= m.min()
    m /= m.max()
  gray = np.expand_dims((m * 255).astype(np.uint8), 2)
  out = np.zeros((2, len(IOUS), len(thresholds)), bool)
  for k, t in enumerate(thresholds):
    every, largest = _contour_boxes(gray, t, True)
    if every is None:
      every, largest = [[0, 0, 0, 0]], [0, 0, 0, 0]
    best1 = _iou([largest], gts, True).max()
    best2 = _iou(every, gts, True).max()
    for j, d in enumerate(IOUS):
      out[0, j, k] = best1 >= d
      out[1, j, k] = best2 >= d
  return out


def paper_reference(raw, size, thresholds, gts):
  """bool [J, T] of the official infoCAM evaluation (V1) for one raw map."""
  from matplotlib import colormaps
  cam = raw.astype(np.float32)
  if cam.shape != tuple(size):
    cam = cv2.resize(cam, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
  x = cam.astype("float")
  with np.errstate(invalid="ignore", divide="ignore"):
    x -= x.min()
    x /= x.max()
  rgb = (colormaps["cubehelix"](x)[..., :3].astype("float32") * 255.0).astype("uint8")
  gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
  out = np.zeros((len(IOUS), len(thresholds)), bool)
  for k, t in enumerate(thresholds):
    _, largest = _contour_boxes(gray, t, False)
    best = _iou([largest if largest is not None else [0, 0, 1, 1]], gts, False).max()
    out[:, k] = [best >= d for d in IOUS]
  return out


def _ours(protocol, raws, size, thresholds, gts, gt_mask):
  ev = L.max_box_accuracy(protocol, cam_thresholds=thresholds, iou_thresholds=IOUS,
                          image_size=size, backend="numba")
  h1, h2 = ev.image_hits(raws, gts, gt_mask)
  return np.asarray(h1), np.asarray(h2)


def _check(protocol, raws, size, thresholds, gts, gt_mask):
  """Asserts identical decisions; returns the number of cells compared."""
  h1, h2 = _ours(protocol, raws, size, thresholds, gts, gt_mask)
  cells = 0
  for i in range(len(raws)):
    g = gts[i][gt_mask[i]]
    if protocol == "wsolevaluation":
      ref = wsol_reference(raws[i], size, thresholds, g)
      np.testing.assert_array_equal(h1[i], ref[0], err_msg=f"V1, map {i}")
      np.testing.assert_array_equal(h2[i], ref[1], err_msg=f"V2, map {i}")
      cells += 2 * ref[0].size
    else:
      ref = paper_reference(raws[i], size, thresholds, g)
      np.testing.assert_array_equal(h1[i], ref, err_msg=f"paper V1, map {i}")
      cells += ref.size
  return cells


# ----------------------------------------------------------------------------
# Crafted cases.
# ----------------------------------------------------------------------------

TH = np.arange(0, 1, 0.05)


def _pad_gts(boxes):
  g = max(len(b) for b in boxes)
  out = np.zeros((len(boxes), g, 4), np.float32)
  mask = np.zeros((len(boxes), g), bool)
  for i, b in enumerate(boxes):
    out[i, :len(b)] = b
    mask[i, :len(b)] = True
  return out, mask


def _crafted(size=48):
  maps, gts = [], []
  # 1. a thin diagonal line (more pixels, contour area 0) vs a 10x10 square.
  m = np.zeros((size, size), np.float32)
  for i in range(30):
    m[8 + i, 2 + i] = m[8 + i, 3 + i] = 1.0
  m[1:11, 34:44] = 0.8
  maps.append(m)
  gts.append([[34, 1, 44, 11]])
  # 2. a ring whose hole is the GT (V2 hits through the hole contour).
  m = np.zeros((size, size), np.float32)
  m[5:40, 5:40] = 1.0
  m[12:30, 14:36] = 0.0
  maps.append(m)
  gts.append([[13, 11, 37, 31]])
  # 3. 1-pixel contour-area ties: two 6x6 squares (area 25 each) and one 5x7 (area 24):
  #    OpenCV keeps the last one found in raster order.
  m = np.zeros((size, size), np.float32)
  m[3:9, 3:9] = 1.0
  m[20:26, 30:36] = 1.0
  m[35:40, 5:12] = 1.0
  maps.append(m)
  gts.append([[30, 20, 36, 26]])
  # 4. same pixel count, different contour area: an L of 13 px vs a plus of 13 px.
  m = np.zeros((size, size), np.float32)
  m[5:12, 5] = 1.0
  m[11, 5:12] = 1.0
  m[25:30, 30] = 1.0
  m[27, 28:33] = 1.0
  m[26:29, 29:32] = 1.0
  maps.append(m)
  gts.append([[5, 5, 12, 12], [29, 25, 33, 30]])
  # 5. border boxes: components touching every border (clipping of x + w to W - 1).
  m = np.zeros((size, size), np.float32)
  m[0:6, :] = 1.0
  m[:, size - 4:] = 0.9
  m[size - 3:, 0:10] = 0.7
  maps.append(m)
  gts.append([[0, 0, size - 1, 6], [0, size - 4, 10, size - 1]])
  # 6. exact IoU ties: the box (0, 0, 9, 9) (a 9x9 blob, +1 convention) against GT boxes with
  #    IoU exactly 3/10, 5/10 and 7/10.
  m = np.zeros((size, size), np.float32)
  m[0:9, 0:9] = 1.0
  maps.append(m)
  gts.append([[0, 0, 9, 2]])
  maps.append(m.copy())
  gts.append([[0, 0, 9, 4]])
  maps.append(m.copy())
  gts.append([[0, 0, 9, 6]])
  # 7. nested: a component inside a hole, tied in area with an outer one elsewhere.
  m = np.zeros((size, size), np.float32)
  m[2:20, 2:20] = 0.6
  m[5:17, 5:17] = 0.0
  m[9:12, 9:12] = 1.0
  m[30:33, 30:33] = 1.0
  maps.append(m)
  gts.append([[9, 9, 12, 12], [4, 4, 18, 18]])
  # 8. all-zero map.
  maps.append(np.zeros((size, size), np.float32))
  gts.append([[0, 0, 0, 0]])
  return np.stack(maps), *_pad_gts(gts)


@pytest.mark.parametrize("protocol", ["wsolevaluation", "paper"])
def test_crafted_cases_match_the_reference(protocol):
  maps, gts, mask = _crafted()
  assert _check(protocol, maps, (48, 48), TH, gts, mask) > 0


def test_exact_iou_ties_hit_at_every_iou_threshold():
  maps, gts, mask = _crafted()
  for protocol in ("wsolevaluation", "paper"):
    h1, h2 = _ours(protocol, maps[5:8], (48, 48), TH, gts[5:8], mask[5:8])
    for k, j in enumerate(range(3)):  # IoU = 3/10, 5/10, 7/10 exactly
      assert h1[k, j, 0], (protocol, k)
      assert not h1[k, j + 1:, 0].any() if j < 2 else True


def test_diagonal_line_loses_to_the_square_and_hole_is_a_box():
  maps, gts, mask = _crafted()
  h1, h2 = _ours("wsolevaluation", maps[:2], (48, 48), np.array([0.5]), gts[:2], mask[:2])
  assert h1[0, :, 0].all()  # the square, not the longer line
  assert not h1[1, 1, 0] and h2[1, 1, 0]  # the ring's hole box hits only in V2


@pytest.mark.parametrize("raw", [14, 17, 224])
def test_constant_maps_at_every_raw_size(raw):
  """No foreground under every protocol. wsolevaluation: as the peer, whose float64 resize keeps a
  float32 constant constant (float32 value x float32 tap weight is exact in float64), so
  ``normalize_scoremap`` zeroes it; clean and paper: a constant raw map stays constant by rule."""
  values = np.concatenate([[2.9687932, 0.0, -1.25, 3.3e-3, 7.0, 1e6, -0.37, 0.1],
                           np.random.default_rng(raw).normal(0, 3, 8)]).astype(np.float32)
  maps = np.broadcast_to(values[:, None, None], (len(values), raw, raw)).astype(np.float32)
  gts = np.tile(np.array([[[0, 0, 223, 223], [100, 100, 120, 120]]], np.float32),
                (len(values), 1, 1))
  mask = np.ones(gts.shape[:2], bool)
  _check("wsolevaluation", maps, (224, 224), np.arange(0, 1, 0.1), gts, mask)
  for protocol in ("wsolevaluation", "clean", "paper"):
    h1, h2 = _ours(protocol, maps, (224, 224), np.arange(0, 1, 0.1), gts, mask)
    assert not h1.any() and not h2.any(), protocol  # wsolevaluation's (0, 0, 0, 0) misses here


# ----------------------------------------------------------------------------
# Randomised CAM-like maps.
# ----------------------------------------------------------------------------


def cam_like(rng, n, raw):
  """Raw float32 maps [n, raw, raw]: blobs, multi-blob, noise, ReLU floor, border, constant, zero."""
  out = np.empty((n, raw, raw), np.float32)
  yy, xx = np.mgrid[0:raw, 0:raw] + 0.5
  for i in range(n):
    kind = i % 7
    m = np.zeros((raw, raw))
    for b in range(1 if kind == 0 else rng.integers(1, 4)):
      c = rng.uniform(-0.1 if kind == 4 else 0.15, 1.1 if kind == 4 else 0.85, 2) * raw
      s = rng.uniform(0.05, 0.25, 2) * raw
      m += rng.uniform(0.4, 1.0) * np.exp(-0.5 * (((xx - c[0]) / s[0]) ** 2
                                                  + ((yy - c[1]) / s[1]) ** 2))
    m += rng.normal(0, 0.3 if kind == 2 else 0.05, m.shape)
    if kind == 3:
      m = np.maximum(m - 0.3, 0.0)
    if kind == 5:
      m[:] = rng.normal()
    if kind == 6:
      m[:] = 0.0
    out[i] = m * rng.uniform(0.5, 20.0)
  return out


def random_gts(rng, n, size):
  boxes = []
  for _ in range(n):
    g = []
    for _ in range(rng.integers(1, 4)):
      x0, y0 = rng.integers(0, size - 8, 2)
      x1 = min(size - 1, x0 + rng.integers(6, size // 2))
      y1 = min(size - 1, y0 + rng.integers(6, size // 2))
      g.append([x0, y0, x1, y1])
    boxes.append(g)
  return _pad_gts(boxes)


@pytest.mark.parametrize("raw", [14, 17, 224])
def test_random_cam_like_maps_wsolevaluation(raw):
  rng = np.random.default_rng(raw)
  n = 21
  maps = cam_like(rng, n, raw)
  gts, mask = random_gts(rng, n, 224)
  assert _check("wsolevaluation", maps, (224, 224), np.arange(0, 1, 0.01), gts, mask) == (
      2 * n * 3 * 100)


def test_random_cam_like_maps_paper_without_resize():
  """At the image size the official pipeline has no float32 resize: identical decisions."""
  rng = np.random.default_rng(1)
  n = 28
  maps = cam_like(rng, n, 224)
  maps[5::7] = rng.normal(size=(4, 224, 224)).astype(np.float32)  # no constant maps here
  gts, mask = random_gts(rng, n, 224)
  _check("paper", maps, (224, 224), np.arange(0, 1, 0.05), gts, mask)


def test_random_cam_like_maps_paper_with_resize():
  """Raw 14x14 / 17x17 maps: OpenCV's float32 resize is reproduced to a few ulps, not bit for
  bit; non-constant maps still give identical decisions here (0 differing cells of 1,800)."""
  rng = np.random.default_rng(2)
  for raw in (14, 17):
    maps = cam_like(rng, 21, raw)
    keep = np.arange(21) % 7 < 5  # constant and all-zero maps: see the constant-map test
    maps = maps[keep]
    gts, mask = random_gts(rng, len(maps), 224)
    _check("paper", maps, (224, 224), np.arange(0, 1, 0.05), gts, mask)



def test_hole_reaching_only_the_next_iou_threshold_is_found():
  """The hole pass is skipped where no hole could reach the *next* IoU threshold; here the
  component's box misses 0.3 and its hole's box reaches 0.3 but not 0.5, inside a component whose
  extent covers just 620 of the GT's 1,600 pixels (enough for 0.3, not for 0.5)."""
  size = 96
  m = np.zeros((1, size, size), np.float32)
  m[0, 5:35, 20:81] = 1.0  # a frame plus a bar reaching far right of the GT
  m[0, 6:31, 21:38] = 0.0  # the hole: extent x 21..37, y 6..30 -> box (20, 5, 39, 32)
  gts = np.array([[[0, 0, 39, 39]]], np.float32)
  mask = np.ones((1, 1), bool)
  th = np.array([0.0, 0.5])
  _check("wsolevaluation", m, (size, size), th, gts, mask)
  h1, h2 = _ours("wsolevaluation", m, (size, size), th, gts, mask)
  assert not h1[0].any()  # the component's own box: IoU 620 / 2902
  np.testing.assert_array_equal(h2[0, :, 1], [True, False, False])  # hole box: IoU 560 / 1600


def test_hole_size_bound_is_met_exactly_by_a_thin_l_shaped_hole():
  """The hole-size bound that skips the hole pass, box area <= ((k + 7) / 2)^2 for a hole of k
  pixels, is attained: a 1-pixel-wide L of 19 pixels (10 x 10 extent) in a solid 44 x 44 component
  has the contour box 13 x 13 = 169 = ((19 + 7) / 2)^2. Against a 23 x 24 GT around it the
  component's box misses 0.3 (IoU 552 / 2025) and the hole's box just hits it (169 / 552 = 0.306):
  0.3 x 552 = 165.6 > 144 = ((19 + 5) / 2)^2, so any tighter bound would skip this hole."""
  size = 64
  m = np.zeros((1, size, size), np.float32)
  m[0, 10:54, 10:54] = 1.0
  m[0, 25:35, 25] = 0.0  # the L: x 25, y 25..34 ...
  m[0, 34, 25:35] = 0.0  # ... and y 34, x 25..34; contour box (24, 24, 36, 36)
  gts = np.array([[[20, 20, 42, 43]]], np.float32)
  mask = np.ones((1, 1), bool)
  th = np.array([0.5])
  _check("wsolevaluation", m, (size, size), th, gts, mask)
  h1, h2 = _ours("wsolevaluation", m, (size, size), th, gts, mask)
  assert not h1[0].any()
  np.testing.assert_array_equal(h2[0, :, 0], [True, False, False])


def ring_like(rng, n, size):
  """Maps [n, size, size] whose holes decide V2: 1-3 graded annuli (some open, some touching the
  border, some with a blob or a smaller ring inside the hole), sometimes a thin rectangular frame,
  plus noise; GT boxes [n, 3, 4]: near the first hole's box (jittered), the frame's outer or inner
  box, and a random one."""
  yy, xx = np.mgrid[0:size, 0:size] + 0.5
  maps = np.empty((n, size, size), np.float32)
  boxes = []
  for i in range(n):
    m = np.zeros((size, size))
    g = []
    for k in range(int(rng.integers(1, 4))):
      cx, cy = rng.uniform(-0.05, 1.05, 2) * size if k else rng.uniform(0.3, 0.7, 2) * size
      r = rng.uniform(0.08, 0.35) * size
      width = rng.uniform(1.0, 0.35 * r)
      d = np.hypot((xx - cx) / rng.uniform(0.7, 1.3), yy - cy)
      ring = np.exp(-0.5 * ((d - r) / width) ** 2) * rng.uniform(0.5, 1.0)
      if rng.random() < 0.25:  # an open ring: its "hole" reaches the outside
        ring[np.abs(np.arctan2(yy - cy, xx - cx) - rng.uniform(-3, 3)) < 0.3] = 0.0
      m += ring
      if rng.random() < 0.3:  # something inside the hole
        m += rng.uniform(0.3, 1.0) * np.exp(-0.5 * (d / (0.25 * r)) ** 2)
      if k == 0:
        j = rng.normal(0, 0.12 * r, 4)
        g.append([cx - r + j[0], cy - r + j[1], cx + r + j[2], cy + r + j[3]])
    if rng.random() < 0.5:  # a thin rectangular frame (1-2 px walls, the hole at the box edge)
      x0, y0 = rng.integers(0, size - 12, 2)
      x1, y1 = x0 + rng.integers(8, size - x0), y0 + rng.integers(8, size - y0)
      th = int(rng.integers(1, 3))
      frame = np.zeros((size, size))
      frame[y0:y1, x0:x1] = rng.uniform(0.4, 1.2)
      frame[y0 + th:y1 - th, x0 + th:x1 - th] = 0.0
      m = np.maximum(m, frame)
      g.append([x0, y0, x1, y1] if rng.random() < 0.5 else [x0 + th, y0 + th, x1 - th, y1 - th])
    m += rng.normal(0, rng.choice([0.0, 0.02, 0.1]), m.shape)
    maps[i] = m
    x0, y0 = rng.integers(0, size - 8, 2)
    g.append([x0, y0, x0 + rng.integers(6, size // 2), y0 + rng.integers(6, size // 2)])
    boxes.append(np.clip(np.round(g[:3]), 0, size - 1))
  gts = np.zeros((n, 3, 4), np.float32)
  mask = np.zeros((n, 3), bool)
  for i, b in enumerate(boxes):
    gts[i, :len(b)] = b
    mask[i, :len(b)] = True
  gts[..., 2:] = np.maximum(gts[..., 2:], gts[..., :2])
  return maps, gts, mask


def test_random_rings_where_hole_boxes_decide():
  """V2 with hole contours against the RETR_TREE reference on maps built so that holes matter:
  identical decisions, and the holes really decide (RETR_EXTERNAL would differ in many cells)."""
  rng = np.random.default_rng(11)
  size, n = 96, 24
  maps, gts, mask = ring_like(rng, n, size)
  th = np.arange(0, 1, 0.02)
  assert _check("wsolevaluation", maps, (size, size), th, gts, mask) == 2 * n * 3 * len(th)
  _, h2 = _ours("wsolevaluation", maps, (size, size), th, gts, mask)
  outer_only = np.zeros_like(h2)
  for i in range(n):
    m = maps[i].astype(np.float64)
    m = (m - m.min()) / (m.max() - m.min())
    gray = (m * 255).astype(np.uint8)
    for k, t in enumerate(th):
      _, fg = cv2.threshold(gray, int(t * gray.max()), 255, cv2.THRESH_BINARY)
      cs = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2]
      bx = [[x, y, min(x + w, size - 1), min(y + h, size - 1)]
            for x, y, w, h in map(cv2.boundingRect, cs)] or [[0, 0, 0, 0]]
      best = _iou(bx, gts[i][mask[i]], True).max()
      outer_only[i, :, k] = [best >= d for d in IOUS]
  assert (outer_only != h2).sum() >= 100, (outer_only != h2).sum()
