"""Numba kernel: connected components of every threshold of a map in one pass.

Private module behind :func:`infocam_jax.wsol.boxes.boxes_from_maps` and the
localisation accumulators (``backend="numba"``). Pure NumPy in, NumPy out;
:func:`infocam_jax.wsol.components.component_scan` wraps it in ``jax.pure_callback`` so
it also runs inside ``jax.jit`` on the host CPU.

Problem. Each float map is first normalised and quantised to an integer
*level image* (:func:`_quantize_map`) so that "pixel is foreground at
threshold t" becomes ``level >= q[t]``. For every query level ``q[t]`` we need
facts about the 8-connected components of the foreground ``{level >= q[t]}``:

* V1: the bounding box of the largest component: most pixels (ties: the
  component whose first pixel in raster order comes first), or largest
  ``cv2.contourArea`` of the outer contour (``LARGEST_CONTOUR``, below);
* V2: for IoU thresholds ``delta_1 < ... < delta_J``, whether *any*
  component's box has IoU >= delta_j with some ground-truth box;
* optionally the boxes of all components (largest first, at most ``K``).

Algorithm. Foregrounds of decreasing thresholds are nested, so one pass over
the pixels in decreasing level order with a union-find answers all queries
(the component tree / "max-tree" idea): pixels are counting-sorted by the
first query level at which they become foreground (O(HW + T), raster order
inside a bucket, the bucket sizes from the level histogram the quantisation
counts; pixels below the lowest query level go last and are never
activated), then activated one by one; an activated pixel is united with its
already-active 8-neighbours. Roots carry area, bounding box, first pixel and
(for V2) a hit level. After the last pixel of a bucket is active, the
queries of that level are answered from the running state. Tricks that matter (measured, see BUILD_NOTES): the float map
is normalised and quantised inside the kernel (doing it in XLA first cost as
much as the scan); a padded grid whose row stride is a power of two (no
bounds checks, shifts instead of division); pixel activity in a byte array
(less cache than testing ``parent``); the 8 neighbours' activity packed into a
byte and a 256-entry table listing one representative neighbour per group of
mutually adjacent neighbours (two active neighbours that are 8-adjacent to
each other are already in one component), so a pixel usually costs one
``find``; component attributes in one row per component id (roots hold
``-(id + 2)``); branch-free min/max updates of boxes, first pixels and the
running largest component (these comparisons are data dependent and were
mispredicted); unsigned (uint64) indices in the hot loop (numba adds a
negative-index fix-up to every signed index: ~20% of the scan); for V2 each
root keeps its hit level
``h = #{j : IoU(box, some gt) >= delta_j}`` and a histogram of ``h`` over live
roots is updated only when a root's box changes, so a query costs O(J) and
never materialises the boxes.

"IoU >= delta" is decided division free (``inter >= delta * union`` in float32,
delta rounded down), the same formula as the JAX path
(:func:`infocam_jax.wsol.boxes.iou_levels`), so the backends agree bit for bit.

Contour area (``LARGEST_CONTOUR``, the reference evaluators' "largest"). The
outer contour of an 8-connected component through its boundary pixel centres
encloses, when the component has no hole, exactly the union of the unit
squares of its 2x2 pixel quads with 4 pixels and the half squares of those
with 3 (checked against ``cv2.contourArea`` in tests/test_boxes.py). That
"quad area" and the Euler number (Gray's bit-quad formula, 8-connected
foreground) change by a table lookup on the 8-neighbour mask when a pixel is
activated and add when components merge, so each root carries both. At a
query, a component without holes (Euler number 1) has contour area = quad
area; a component with holes has a larger one, bounded by its bounding box
``(x1 - x0) * (y1 - y0)``: unless one holed component's quad area already
exceeds every rival's bound, the holed components whose bound reaches the
best area are traced (Suzuki-Abe border following on the active pixels,
shoelace area). Ties go to the component whose first pixel comes *last* in
raster order: OpenCV lists top-level contours in reverse order of discovery
and ``max`` keeps the first maximum; a contour nested in a hole is always
smaller than its parent, so it never ties for the maximum.

Hole boxes (``hole_boxes``, wsolevaluation's V2 with ``RETR_TREE``). Every
hole -- a 4-connected background component not connected to the image
border -- has its own contour, whose bounding box is the hole's extent grown
by one pixel. The number of holes at a query is ``components - Euler number``
(free). At a query with holes whose V2 level is not already maximal, each
holed component is a candidate when a hole inside its extent could still
reach the next IoU threshold (:func:`_may_hold_hit_hole`); only maps with a
candidate get a second pass (:func:`_hole_levels`): the background pixels of
the candidates' window in increasing level order (the component scan's sort,
walked backwards), a 4-connected union-find whose roots carry their extent,
up to the highest needed query.

Threads: a batch is cut into chunks of a few maps that worker threads (the
caller among them) take from a shared counter; each thread keeps its scratch
arrays between calls.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading
from typing import Any

import numba
import numpy as np

from infocam_jax.wsol.conventions import (BOX_CONTOUR, BOX_CONTOUR_CLIPPED, BOX_INCLUSIVE, LARGEST_CONTOUR,
                              LARGEST_PIXELS, QUANT_CUBEHELIX, QUANT_FLOAT, QUANT_UINT8)

# Ring order of the 8 neighbours: W, NW, N, NE, E, SE, S, SW (dx, dy). W comes
# first so that it is the representative of its group whenever it is active:
# in a run of same-level pixels W is the previous pixel, whose root is cached.
_RING = ((-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1))


def _representatives_table(members: Any, joined: Any) -> np.ndarray:
  """[256, 5] int8: for a bit mask of active neighbours (ring order ``_RING``),
  the count and ring indices of one representative per group of the active
  ``members``, two being in one group when ``joined(a, b, mask)``; the lowest
  index represents its group (W when active)."""
  table = np.zeros((256, 5), np.int8)
  for mask in range(256):
    active = [j for j in members if mask >> j & 1]
    group = {j: j for j in active}

    def root(a):
      while group[a] != a:
        a = group[a]
      return a

    for a in active:
      for b in active:
        if joined(a, b, mask):
          ra, rb = root(a), root(b)
          if ra != rb:
            group[max(ra, rb)] = min(ra, rb)
    reps = sorted({root(a) for a in active})
    table[mask, 0] = len(reps)
    table[mask, 1:1 + len(reps)] = reps
  table.setflags(write=False)
  return table


def _adjacent8(a: int, b: int, mask: int) -> bool:
  (ax, ay), (bx, by) = _RING[a], _RING[b]
  return max(abs(ax - bx), abs(ay - by)) == 1


def _joined4(a: int, b: int, mask: int) -> bool:
  """4-neighbours a, b (a then b clockwise) with the diagonal pixel between them active."""
  return b == (a + 2) % 8 and bool(mask >> (a + 1) % 8 & 1)


# Foreground (8-connected): mutually 8-adjacent neighbours are already one component.
_REPS = _representatives_table(range(8), _adjacent8)
# Background of the hole pass (4-connected): W, N, E, S; two are already one component
# when the diagonal pixel between them is active too.
_REPS4 = _representatives_table((0, 2, 4, 6), _joined4)


def _quad_table() -> np.ndarray:
  """[256, 2] int32: change of (2 x quad area, 4 x Euler number) when a pixel
  with this 8-neighbour activity mask (ring order ``_RING``) is activated.

  Quad area: +2 for a 2x2 quad of 4 foreground pixels, +1 for 3. Euler number
  of an 8-connected foreground (Gray's bit quads): ``(Q1 - Q3 - 2 QD) / 4``
  with Q1/Q3 the quads with one/three foreground pixels and QD the two
  diagonal ones.
  """
  bit = {d: j for j, d in enumerate(_RING)}
  quads = [((-1, -1), (0, -1), (-1, 0)), ((0, -1), (1, -1), (1, 0)),
           ((-1, 0), (-1, 1), (0, 1)), ((1, 0), (0, 1), (1, 1))]

  def contrib(q):  # q: the 4 values of a quad, row-major (a b / c d)
    n = sum(q)
    area = 2 if n == 4 else (1 if n == 3 else 0)
    diag = n == 2 and q[0] == q[3]
    euler = (1 if n == 1 else 0) - (1 if n == 3 else 0) - (2 if diag else 0)
    return area, euler

  table = np.zeros((256, 2), np.int32)
  for mask in range(256):
    for quad in quads:
      cells = sorted(list(quad) + [(0, 0)], key=lambda d: (d[1], d[0]))  # row-major
      for centre in (0, 1):
        q = [centre if d == (0, 0) else (mask >> bit[d]) & 1 for d in cells]
        a, e = contrib(q)
        sign = 1 if centre else -1
        table[mask, 0] += sign * a
        table[mask, 1] += sign * e
  table.setflags(write=False)
  return table


_QUAD = _quad_table()


@numba.njit(cache=True, nogil=True)
def _padded_row(width):
  """(shift, stride, xmask) of the padded pixel grid: rows of a power-of-two stride >= width + 2."""
  shift = 1
  while (1 << shift) < width + 2:
    shift += 1
  stride = 1 << shift
  return shift, stride, stride - 1


@numba.njit(cache=True, nogil=True)
def _find(parent, p):
  """Root pixel of active pixel p (roots hold -(id + 2) in `parent`); path halving.

  Indices are uint64 throughout the hot loop: numba emits a negative-index
  wraparound fix-up for every signed index, which cost ~40% of the
  neighbour test (measured).
  """
  while True:
    q = parent[p]
    if q < 0:
      return p
    uq = np.uint64(q)
    g = parent[uq]
    if g < 0:
      return uq
    parent[p] = g
    p = np.uint64(g)


@numba.njit(cache=True, nogil=True)
def _sort_desc(keys, idx):
  """Insertion sort of idx by keys descending (stable); tiny inputs."""
  n = keys.shape[0]
  for i in range(n):
    idx[i] = i
  for i in range(1, n):
    j = i
    cur = idx[i]
    while j > 0 and keys[idx[j - 1]] < keys[cur]:
      idx[j] = idx[j - 1]
      j -= 1
    idx[j] = cur


@numba.njit(cache=True, nogil=True)
def _hit_level(x0, y0, x1, y1, gt, gt_valid, gt_area, iou_thr, box_mode, clamp, width, height):
  """Number of IoU thresholds met by one predicted box against its best GT box.

  Division free: "IoU >= delta" is decided as ``union > 0 and inter >=
  delta * union`` in float32, with ``iou_thr`` holding each delta rounded
  *down* to float32 (see boxes.iou_threshold_array); the JAX path uses the
  same formula, so both agree bit for bit.
  """
  if box_mode == BOX_CONTOUR_CLIPPED:
    x1 = min(x1 + 1, width - 1)
    y1 = min(y1 + 1, height - 1)
  elif box_mode == BOX_CONTOUR:
    x1 = x1 + 1
    y1 = y1 + 1
  one = np.float32(1.0)
  zero = np.float32(0.0)
  ax0 = np.float32(x0)
  ay0 = np.float32(y0)
  ax1 = np.float32(x1)
  ay1 = np.float32(y1)
  a_area = (ax1 - ax0 + one) * (ay1 - ay0 + one)
  best = 0
  num_j = iou_thr.shape[0]
  for g in range(gt.shape[0]):
    if not gt_valid[g]:
      continue
    iw = min(ax1, gt[g, 2]) - max(ax0, gt[g, 0]) + one
    ih = min(ay1, gt[g, 3]) - max(ay0, gt[g, 1]) + one
    if clamp:
      iw = max(iw, zero)
      ih = max(ih, zero)
    inter = iw * ih
    union = (a_area + gt_area[g]) - inter
    if union > zero:
      level = best
      while level < num_j and inter >= iou_thr[level] * union:
        level += 1
      best = level
  return best


@numba.njit(cache=True, nogil=True)
def v1_hit_levels(box, area, gt, gt_valid, iou_thr, box_mode, width, height, out):
  """``out[b, t]`` = IoU thresholds met by the V1 box ``box[b, t]`` (inclusive extent, the
  ``box`` output of :func:`scan_maps`) against its best GT box, the box taken through
  ``box_mode``; an empty foreground (``area == 0``) is the box ``(0, 0, 0, 0)`` as is (the
  wsolevaluation convention). The clamped IoU of :func:`_hit_level`."""
  num_b, num_t = area.shape
  gt_area = np.empty(gt.shape[1], np.float32)
  one = np.float32(1.0)
  for b in range(num_b):
    for g in range(gt.shape[1]):
      gt_area[g] = (gt[b, g, 2] - gt[b, g, 0] + one) * (gt[b, g, 3] - gt[b, g, 1] + one)
    for t in range(num_t):
      if area[b, t] == 0:
        out[b, t] = _hit_level(0, 0, 0, 0, gt[b], gt_valid[b], gt_area, iou_thr, BOX_INCLUSIVE,
                               True, width, height)
      else:
        out[b, t] = _hit_level(np.int64(box[b, t, 0]), np.int64(box[b, t, 1]),
                               np.int64(box[b, t, 2]), np.int64(box[b, t, 3]), gt[b],
                               gt_valid[b], gt_area, iou_thr, box_mode, True, width, height)


@numba.njit(cache=True, nogil=True)
def mask_histograms(m, mask, edges, inv_step, fg, bg, stats):
  """PxAP's per-map histograms, ``np.histogram``'s bins exactly, in one pass.

  ``fg`` / ``bg`` (int64 ``[len(edges) - 1]``, overwritten) count the float64 scores of the
  pixels with ``mask == 1`` / ``mask == 0`` in ``[e_i, e_{i+1})``, the last bin closed;
  scores outside ``[e_0, e_last]`` and NaN are not counted (``np.histogram``'s range).
  ``edges`` ascending float64; ``inv_step`` only speeds up the search (a first guess
  ``int((v - e_0) * inv_step)`` that the comparisons then correct). ``stats`` = (min, max, 1.0
  if a NaN) of the map (min and max count a NaN as 0), as :func:`_quantize_gray_raw`.
  """
  nb = edges.shape[0] - 1
  for i in range(nb):
    fg[i] = 0
    bg[i] = 0
  lo = edges[0]
  hi = edges[nb]
  mn = np.inf
  mx = -np.inf
  nan = False
  height, width = m.shape
  for y in range(height):
    for x in range(width):
      v = np.float64(m[y, x])
      isn = v != v
      nan |= isn
      w = 0.0 if isn else v
      mn = min(mn, w)
      mx = max(mx, w)
      k = mask[y, x]
      if (k != 0 and k != 1) or not (v >= lo and v <= hi):
        continue
      i = min(max(np.int64((v - lo) * inv_step), 0), nb - 1)
      while i > 0 and edges[i] > v:
        i -= 1
      while i < nb - 1 and edges[i + 1] <= v:
        i += 1
      if k == 1:
        fg[i] += 1
      else:
        bg[i] += 1
  stats[0] = mn
  stats[1] = mx
  stats[2] = 1.0 if nan else 0.0


@numba.njit(cache=True, nogil=True)
def _outer_contour_area2(act, start, stride):
  """Twice the ``cv2.contourArea`` of the outer contour of the component whose
  first pixel in raster order is ``start`` (padded-grid index; ``act`` marks
  the foreground, zero on the padding).

  Suzuki-Abe border following (as ``cv2.findContours``): from ``start`` search
  clockwise from its west neighbour for the first foreground neighbour
  ``p1``; then at each border pixel search counter-clockwise, starting after
  the pixel we came from; stop at the step ``p1 -> start``. The area is the
  shoelace sum over the visited pixel centres.
  """
  # Neighbour offsets counter-clockwise on screen: E, NE, N, NW, W, SW, S, SE.
  offs = np.empty(8, np.int64)
  offs[0] = 1
  offs[1] = -stride + 1
  offs[2] = -stride
  offs[3] = -stride - 1
  offs[4] = -1
  offs[5] = stride - 1
  offs[6] = stride
  offs[7] = stride + 1
  s0 = np.int64(start)
  first = -1
  for k in range(1, 8):  # clockwise from W (direction 4): 3, 2, 1, 0, 7, 6, 5
    d = (4 - k) & 7
    if act[s0 + offs[d]] != 0:
      first = d
      break
  if first < 0:
    return np.int64(0)  # a single pixel
  p1 = s0 + offs[first]
  cur = s0
  back = first  # direction from `cur` to the previous border pixel
  area2 = np.int64(0)
  while True:
    d = (back + 1) & 7
    while act[cur + offs[d]] == 0:
      d = (d + 1) & 7
    nxt = cur + offs[d]
    area2 += (cur % stride) * (nxt // stride) - (nxt % stride) * (cur // stride)
    if nxt == s0 and cur == p1:
      break
    back = (d + 4) & 7
    cur = nxt
  return area2 if area2 >= 0 else -area2


@numba.njit(cache=True, nogil=True)
def _largest_by_contour(act, attr, rlist, ncomp, stride, shift):
  """Id of the live component with the largest outer contour area (ties: the
  one whose first pixel comes last in raster order), or -1 when none."""
  best = np.int64(-1)
  best_a2 = np.int64(-1)
  best_first = np.int64(-1)
  holed = 0
  for jj in range(ncomp):
    c = rlist[jj]
    if attr[c, 8] != 4:  # Euler number != 1: has holes, area decided below
      holed += 1
      continue
    a2 = np.int64(attr[c, 7])
    f = np.int64(attr[c, 1])
    if a2 > best_a2 or (a2 == best_a2 and f > best_first):
      best = np.int64(c)
      best_a2 = a2
      best_first = f
  if holed == 0:
    return best
  # A holed component's contour area lies between its quad area (holes only add area)
  # and its bounding-box bound (x1 - x0) * (y1 - y0). When one holed candidate's lower
  # bound beats every other candidate's upper bound it wins without being traced.
  lead = np.int64(-1)
  lead_lo = np.int64(-1)
  for jj in range(ncomp):
    c = rlist[jj]
    if attr[c, 8] != 4 and np.int64(attr[c, 7]) > lead_lo:
      lead = np.int64(c)
      lead_lo = np.int64(attr[c, 7])
  if lead_lo > best_a2:
    clear = True
    for jj in range(ncomp):
      c = rlist[jj]
      if attr[c, 8] != 4 and c != lead:
        bound2 = 2 * np.int64(attr[c, 3] - attr[c, 2]) * np.int64(attr[c, 5] - attr[c, 4])
        if bound2 >= lead_lo:
          clear = False
          break
    if clear:
      return lead
  for jj in range(ncomp):
    c = rlist[jj]
    if attr[c, 8] == 4:
      continue
    bound2 = 2 * np.int64(attr[c, 3] - attr[c, 2]) * np.int64(attr[c, 5] - attr[c, 4])
    if bound2 < best_a2:
      continue
    f = np.int64(attr[c, 1])
    a2 = _outer_contour_area2(act, f, stride)
    if a2 > best_a2 or (a2 == best_a2 and f > best_first):
      best = np.int64(c)
      best_a2 = a2
      best_first = f
  return best


@numba.njit(cache=True, nogil=True)
def _may_hold_hit_hole(attr, c, gt, gt_valid, gt_area, thr, box_mode, clamp, width, height):
  """False when no hole of holed component ``c`` can have a contour box with
  IoU >= ``thr`` against any GT box (a necessary condition; True otherwise).

  A hole's contour box lies inside the component's extent (the hole is
  enclosed by the component), and so does it after ``box_mode``: its
  intersection with a GT box G is at most the extent's, and IoU >= thr needs
  ``inter >= thr |G|``. A hole's k pixels are pixels of the extent that are
  not the component's, and it spans w + h <= k + 1, so its box has area <=
  ((k + 7) / 2)^2, which IoU >= thr needs to be >= thr |G|.
  """
  if not clamp:
    return True  # without the clamp a disjoint box can score; no bound used
  x0 = attr[c, 2]
  x1 = attr[c, 3]
  y0 = attr[c, 4]
  y1 = attr[c, 5]
  k = np.float64((x1 - x0 + 1) * (y1 - y0 + 1) - attr[c, 0])
  if box_mode == BOX_CONTOUR_CLIPPED:
    x1 = min(x1 + 1, width - 1)
    y1 = min(y1 + 1, height - 1)
  elif box_mode == BOX_CONTOUR:
    x1 = x1 + 1
    y1 = y1 + 1
  for g in range(gt.shape[0]):
    if not gt_valid[g]:
      continue
    iw = min(np.float64(x1), np.float64(gt[g, 2])) - max(np.float64(x0), np.float64(gt[g, 0])) + 1.0
    ih = min(np.float64(y1), np.float64(gt[g, 3])) - max(np.float64(y0), np.float64(gt[g, 1])) + 1.0
    need = thr * np.float64(gt_area[g]) * (1.0 - 1e-6)
    if iw > 0.0 and ih > 0.0 and iw * ih >= need and ((k + 7.0) / 2.0) ** 2 >= need:
      return True
  return False


@numba.njit(cache=True, nogil=True)
def _scan_map(levels, lhist, num_levels, q, want_v1, want_v2, max_boxes, largest, hole_boxes,
              gt, gt_valid, iou_thr, box_mode, clamp, empty_box,
              out_box, out_area, out_v2, out_mbox, out_marea, out_ncomp, out_need, win,
              act, parent, attr, rpos, rlist, counts, order, bucket, dq, reps, quad):
  height, width = levels.shape
  shift, stride, xmask = _padded_row(width)
  for i in range((height + 2) * stride):
    act[i] = 0
  num_q = q.shape[0]
  num_j = iou_thr.shape[0]
  qc = np.empty(num_q, np.int64)
  for t in range(num_q):
    qc[t] = min(max(np.int64(q[t]), 0), num_levels)
  q_order = np.empty(num_q, np.int64)
  _sort_desc(qc, q_order)
  # Only the state at the query levels is observed, so pixels are bucketed by
  # the first (highest) query level at which they are foreground -- at most T
  # buckets instead of one per level, thicker bands in raster order (better
  # locality), and pixels below the lowest query level are never touched.
  # dq[0] > dq[1] > ...: the distinct query levels below num_levels.
  nb = 0
  for k in range(num_q):
    v = qc[q_order[k]]
    if v < num_levels and (nb == 0 or dq[nb - 1] != v):
      dq[nb] = v
      nb += 1
  b = 0
  for v in range(num_levels - 1, -1, -1):
    while b < nb and dq[b] > v:
      b += 1
    bucket[v] = b  # b == nb: below every query, never activated (sorted last)
  # Bucket sizes from the level histogram; the scatter is branch free (the level
  # is data dependent): the skipped pixels form bucket nb, sorted last.
  for i in range(nb + 2):
    counts[i] = 0
  top = num_levels - 1
  for v in range(num_levels):
    counts[bucket[v] + 1] += lhist[v]
  for i in range(nb):
    counts[i + 1] += counts[i]
  # counts[i] is now the start of bucket i; after the scatter below, the end.
  for y in range(height):
    row = (y + 1) * stride + 1
    for x in range(width):
      bb = bucket[min(levels[y, x], top)]
      order[counts[bb]] = row + x
      counts[bb] += 1

  hist = np.zeros(num_j + 1, np.int64)
  gt_area = np.empty(gt.shape[0], np.float32)
  one = np.float32(1.0)
  for g in range(gt.shape[0]):
    gt_area[g] = (gt[g, 2] - gt[g, 0] + one) * (gt[g, 3] - gt[g, 1] + one)
  empty_level = 0
  if want_v2 and empty_box[0] >= 0:
    # The substitute box of an empty mask is used as is (no convention).
    empty_level = _hit_level(np.int64(empty_box[0]), np.int64(empty_box[1]),
                             np.int64(empty_box[2]), np.int64(empty_box[3]), gt,
                             gt_valid, gt_area, iou_thr, 0, clamp, width, height)
  offs = np.array([-1, -stride - 1, -stride, -stride + 1, 1, stride + 1, stride, stride - 1],
                  np.int64)
  uoffs = np.empty(8, np.uint64)  # two's complement: p + uoffs[j] wraps to p + offs[j]
  for j in range(8):
    uoffs[j] = np.uint64(offs[j])
  u1 = np.uint64(1)
  u2 = np.uint64(2)
  u3 = np.uint64(3)
  u4 = np.uint64(4)
  u5 = np.uint64(5)
  u6 = np.uint64(6)
  u7 = np.uint64(7)
  us = np.uint64(stride)
  ushift = np.uint64(shift)
  uxmask = np.uint64(xmask)

  # `act` marks active pixels (a byte array: the 8-neighbour test touches less
  # cache than `parent`). Root attributes live in small tables indexed by a
  # component id; a root pixel stores -(id + 2) in `parent`, any other active
  # pixel its parent's index (inactive entries are never read).
  contour = want_v1 and largest == LARGEST_CONTOUR
  holes_on = want_v2 and hole_boxes
  track = max_boxes > 0 or contour or holes_on  # keep the list of live roots
  euler4 = 0  # 4 x Euler number of the whole foreground
  ncomp = 0
  next_id = 0
  best = np.int64(-1)
  best_area = np.int64(0)
  best_first = np.int64(0)
  k = 0
  pos = 0
  for bi in range(-1, nb):
    if bi < 0:
      v = num_levels  # queries with an empty foreground come first
    else:
      v = dq[bi]
      end = counts[bi]
      while pos < end:
        p = np.uint64(order[np.uint64(pos)])
        pos += 1
        m = (np.uint64(act[p - u1]) | (np.uint64(act[p - us - u1]) << u1)
             | (np.uint64(act[p - us]) << u2) | (np.uint64(act[p - us + u1]) << u3)
             | (np.uint64(act[p + u1]) << u4) | (np.uint64(act[p + us + u1]) << u5)
             | (np.uint64(act[p + us]) << u6) | (np.uint64(act[p + us - u1]) << u7))
        act[p] = 1
        euler4 += quad[m, 1]
        px = np.int32((p & uxmask) - u1)
        py = np.int32((p >> ushift) - u1)
        nrep = reps[m, 0]
        if nrep == 0:
          i = np.uint64(next_id)
          parent[p] = -(next_id + 2)
          next_id += 1
          attr[i, 0] = 1
          attr[i, 1] = np.int32(p)
          attr[i, 2] = px
          attr[i, 3] = px
          attr[i, 4] = py
          attr[i, 5] = py
          attr[i, 7] = 0
          attr[i, 8] = 4
          r = p
          ncomp += 1
          if want_v2:
            h = _hit_level(np.int64(px), np.int64(py), np.int64(px), np.int64(py), gt, gt_valid,
                           gt_area, iou_thr, box_mode, clamp, width, height)
            attr[i, 6] = h
            hist[h] += 1
          if track:
            rpos[i] = ncomp - 1
            rlist[ncomp - 1] = np.int32(i)
        else:
          r = _find(parent, p + uoffs[reps[m, 1]])
          parent[p] = np.int32(r)
          i = np.uint64(-parent[r] - 2)
          attr[i, 0] += 1
          attr[i, 7] += quad[m, 0]
          attr[i, 8] += quad[m, 1]
          # Branch-free updates: these comparisons are data dependent and
          # mispredicted often (measured: ~30% of the scan time on smooth maps).
          attr[i, 1] = min(attr[i, 1], np.int32(p))
          ox0 = attr[i, 2]
          ox1 = attr[i, 3]
          oy0 = attr[i, 4]
          oy1 = attr[i, 5]
          nx0 = min(ox0, np.int32(px))
          nx1 = max(ox1, np.int32(px))
          ny0 = min(oy0, np.int32(py))
          ny1 = max(oy1, np.int32(py))
          attr[i, 2] = nx0
          attr[i, 3] = nx1
          attr[i, 4] = ny0
          attr[i, 5] = ny1
          changed = (nx0 != ox0) | (nx1 != ox1) | (ny0 != oy0) | (ny1 != oy1)
          for j in range(1, nrep):
            rn = _find(parent, p + uoffs[reps[m, 1 + j]])
            if rn == r:
              continue
            n_i = np.uint64(-parent[rn] - 2)
            if attr[n_i, 0] < attr[i, 0]:
              rn, r = r, rn
              n_i, i = i, n_i
            # absorb root r (id i) into root rn (id n_i)
            parent[r] = np.int32(rn)
            attr[n_i, 0] += attr[i, 0]
            attr[n_i, 7] += attr[i, 7]
            attr[n_i, 8] += attr[i, 8]
            if attr[i, 1] < attr[n_i, 1]:
              attr[n_i, 1] = attr[i, 1]
            if attr[i, 2] < attr[n_i, 2]:
              attr[n_i, 2] = attr[i, 2]
            if attr[i, 3] > attr[n_i, 3]:
              attr[n_i, 3] = attr[i, 3]
            if attr[i, 4] < attr[n_i, 4]:
              attr[n_i, 4] = attr[i, 4]
            if attr[i, 5] > attr[n_i, 5]:
              attr[n_i, 5] = attr[i, 5]
            ncomp -= 1
            if want_v2:
              hist[attr[i, 6]] -= 1
            if track:
              slot = rpos[i]
              last = rlist[ncomp]
              rlist[slot] = last
              rpos[last] = slot
            r = rn
            i = n_i
            changed = True
          if want_v2 and changed:
            h = _hit_level(np.int64(attr[i, 2]), np.int64(attr[i, 4]), np.int64(attr[i, 3]),
                           np.int64(attr[i, 5]), gt, gt_valid, gt_area, iou_thr,
                           box_mode, clamp, width, height)
            hist[attr[i, 6]] -= 1
            attr[i, 6] = h
            hist[h] += 1
        if want_v1 and not contour:
          a = np.int64(attr[i, 0])
          f = np.int64(attr[i, 1])
          better = (a > best_area) | ((a == best_area) & (f < best_first))
          best = np.int64(i) if better else best
          best_area = a if better else best_area
          best_first = f if better else best_first
    # Answer the queries whose foreground is exactly "level >= v" (all active pixels).
    while k < num_q and qc[q_order[k]] == v:
      t = q_order[k]
      k += 1
      out_ncomp[t] = ncomp
      if contour:
        best = _largest_by_contour(act, attr, rlist, ncomp, stride, shift)
        best_area = np.int64(attr[best, 0]) if best >= 0 else 0
      if want_v1:
        if best < 0:
          out_area[t] = 0
          out_box[t, 0] = 0
          out_box[t, 1] = 0
          out_box[t, 2] = 0
          out_box[t, 3] = 0
        else:
          out_area[t] = best_area
          out_box[t, 0] = attr[best, 2]
          out_box[t, 1] = attr[best, 4]
          out_box[t, 2] = attr[best, 3]
          out_box[t, 3] = attr[best, 5]
      if want_v2:
        if ncomp == 0:
          out_v2[t] = empty_level
        else:
          h = num_j
          while h > 0 and hist[h] == 0:
            h -= 1
          out_v2[t] = h
      out_need[t] = False
      if holes_on and ncomp > euler4 // 4 and out_v2[t] < num_j:
        # Some component has a hole (#holes = components - Euler number). Only holed
        # components that could hold a hole box reaching the next IoU threshold are
        # candidates; the hole pass is then run on the union of their boxes.
        thr = np.float64(iou_thr[out_v2[t]])
        for jj in range(ncomp):
          c = rlist[jj]
          if attr[c, 8] != 4 and _may_hold_hit_hole(attr, c, gt, gt_valid, gt_area, thr,
                                                     box_mode, clamp, width, height):
            out_need[t] = True
            win[0] = min(win[0], attr[c, 2])
            win[1] = min(win[1], attr[c, 4])
            win[2] = max(win[2], attr[c, 3])
            win[3] = max(win[3], attr[c, 5])
      if max_boxes > 0:
        # Top-K components by (area desc, first pixel asc): K selection passes.
        prev_a = np.int64(1) << 40
        prev_f = np.int64(-1)
        for j in range(max_boxes):
          sel_c = -1
          sel_a = np.int64(-1)
          sel_f = np.int64(0)
          for jj in range(ncomp):
            c = rlist[jj]
            ca = np.int64(attr[c, 0])
            cf = np.int64(attr[c, 1])
            # strictly after the previous pick in the order, and best so far
            if (ca < prev_a or (ca == prev_a and cf > prev_f)) and (
                ca > sel_a or (ca == sel_a and cf < sel_f)):
              sel_c = c
              sel_a = ca
              sel_f = cf
          if sel_c >= 0:
            out_marea[t, j] = attr[sel_c, 0]
            out_mbox[t, j, 0] = attr[sel_c, 2]
            out_mbox[t, j, 1] = attr[sel_c, 4]
            out_mbox[t, j, 2] = attr[sel_c, 3]
            out_mbox[t, j, 3] = attr[sel_c, 5]
            prev_a = sel_a
            prev_f = sel_f
          else:
            out_marea[t, j] = 0
            out_mbox[t, j, 0] = 0
            out_mbox[t, j, 1] = 0
            out_mbox[t, j, 2] = 0
            out_mbox[t, j, 3] = 0
  return nb


@numba.njit(cache=True, nogil=True)
def _quantize_map(m, mode, normalize, ts, table, lut, levels, q_out, q_float, lhist):
  """Float map -> level image, its histogram ``lhist`` and query levels.

  ``normalize``: per-map min-max ``(x - min) / (max - min)`` with the
  arithmetic of the reference evaluators: float64 for ``QUANT_UINT8``
  (wsolevaluation's ``normalize_scoremap`` on ``t2n``'s float64) and
  ``QUANT_CUBEHELIX`` (the official infoCAM ``intensity_to_rgb``), float32 for
  ``QUANT_FLOAT``; a map with a non-finite value or zero range becomes zeros.
  ``QUANT_FLOAT``: ``level = #{ts < v}`` (``ts`` sorted, NaN -> 0), queries
  ``q_float``; ``QUANT_UINT8``: ``level = uint8(255 v)``; ``QUANT_CUBEHELIX``:
  ``level = lut[min(int(256 v), 255)]``; for the last two the queries are
  ``table[max level]``.
  """
  height, width = m.shape
  zero32 = np.float32(0.0)
  ok = False
  mode32_overflow = False
  mn = np.float32(0.0)
  span32 = np.float32(1.0)
  span64 = 1.0
  mn64 = 0.0
  if normalize:
    finite = True
    mn = np.float32(np.inf)
    mx = np.float32(-np.inf)
    for y in range(height):
      for x in range(width):
        v = m[y, x]
        if not np.isfinite(v):
          finite = False
        if v < mn:
          mn = v
        if v > mx:
          mx = v
    if finite and mx > mn:
      ok = True
      mn64 = np.float64(mn)
      span64 = np.float64(mx) - mn64
      span32 = mx - mn
      mode32_overflow = not np.isfinite(span32)  # range beyond float32: use float64
  num_t = ts.shape[0]
  top = 0
  for i in range(lhist.shape[0]):
    lhist[i] = 0
  if mode == QUANT_UINT8 and ok:
    # wsolevaluation in float64 as it runs (``t2n`` casts to float64; ``cam -=
    # cam.min(); cam /= cam.max()``; ``(cam * 255).astype(np.uint8)``), in a
    # tight, branch-free loop.
    for y in range(height):
      for x in range(width):
        w64 = min(max((np.float64(m[y, x]) - mn64) / span64, 0.0), 1.0)
        lev = np.int32(w64 * 255.0)
        levels[y, x] = lev
        lhist[lev] += 1
        top = max(top, lev)
    for t in range(q_out.shape[0]):
      q_out[t] = table[top, t]
    return
  for y in range(height):
    for x in range(width):
      v = m[y, x]
      if mode == QUANT_CUBEHELIX:
        if normalize:
          w = (np.float64(v) - mn64) / span64 if ok else 0.0
        else:
          w = np.float64(v) if v == v else 0.0
        w = min(max(w, 0.0), 1.0)
        lev = np.int64(lut[min(np.int64(w * 256.0), 255)])
      else:
        if normalize:
          if ok:
            if mode32_overflow:
              v = np.float32((np.float64(v) - mn64) / span64)
            else:
              v = (v - mn) / span32
          else:
            v = zero32
        if mode == QUANT_FLOAT:
          a = 0
          b = num_t
          while a < b:
            c = (a + b) >> 1
            if ts[c] < v:
              a = c + 1
            else:
              b = c
          lev = a
        else:
          w64 = min(max(np.float64(v), 0.0), 1.0) if v == v else 0.0
          lev = np.int64(w64 * 255.0)
      levels[y, x] = lev
      lhist[lev] += 1
      if lev > top:
        top = lev
  for t in range(q_out.shape[0]):
    q_out[t] = q_float[t] if mode == QUANT_FLOAT else table[top, t]


@numba.njit(cache=True, nogil=True)
def _quantize_gray_raw(m, table, levels, q_out, lhist, stats):
  """``QUANT_UINT8`` without normalisation, fused with the validity statistics.

  One pass over a float32 or float64 map: ``level = int(255 * float64(v))``
  for ``v`` in [0, 1] (numpy's ``uint8(255 m)`` of the float64 value, exactly;
  values outside [0, 1] are clamped and NaN counts as 0, so that the scan
  stays in bounds -- such maps are rejected by the caller from ``stats``),
  the level histogram ``lhist``, the queries ``table[max level]``, and
  ``stats = (min, max, has NaN)`` (min and max count a NaN as 0: only
  meaningful when there is none).
  """
  height, width = m.shape
  for i in range(lhist.shape[0]):
    lhist[i] = 0
  top = 0
  mn = np.inf
  mx = -np.inf
  nan = False
  for y in range(height):
    for x in range(width):
      v = np.float64(m[y, x])
      isn = v != v
      nan |= isn
      w = 0.0 if isn else v
      mn = min(mn, w)
      mx = max(mx, w)
      lev = np.int32(min(max(w, 0.0), 1.0) * 255.0)
      levels[y, x] = lev
      lhist[lev] += 1
      top = max(top, lev)
  stats[0] = mn
  stats[1] = mx
  stats[2] = 1.0 if nan else 0.0
  for t in range(q_out.shape[0]):
    q_out[t] = table[top, t]


@numba.njit(cache=True, nogil=True)
def _resize_cubic64(m, iy, wy, ix, wx, tmp, out):
  """``cv2.resize(float64(m), INTER_CUBIC)`` bit for bit: a horizontal then a
  vertical 4-tap pass in float64 with OpenCV's float32 tap weights and
  replicated-border indices (``iy/ix`` int64 ``[H|W, 4]``, ``wy/wx`` float64)."""
  h = m.shape[0]
  big_h, big_w = out.shape
  for r in range(h):
    for d in range(big_w):
      tmp[r, d] = (((np.float64(m[r, ix[d, 0]]) * wx[d, 0] + np.float64(m[r, ix[d, 1]]) * wx[d, 1])
                    + np.float64(m[r, ix[d, 2]]) * wx[d, 2]) + np.float64(m[r, ix[d, 3]]) * wx[d, 3])
  for o in range(big_h):
    r0 = iy[o, 0]
    r1 = iy[o, 1]
    r2 = iy[o, 2]
    r3 = iy[o, 3]
    for d in range(big_w):
      out[o, d] = (((tmp[r0, d] * wy[o, 0] + tmp[r1, d] * wy[o, 1]) + tmp[r2, d] * wy[o, 2])
                   + tmp[r3, d] * wy[o, 3])


@numba.njit(cache=True, nogil=True)
def _hole_levels(q, need, win, num_levels, width, height, order, counts, dq, nb, gt, gt_valid,
                 iou_thr, box_mode, clamp, out, parent, hact, hattr, hlist, reps4):
  """V2 hit level of the boxes of the holes at the queries with ``need[t]`` (``out [T]``).

  Background at query t: ``levels < q[t]``. The pixels come in the component
  scan's order (``order``, ``counts``, ``dq``, ``nb``: bucket b holds the
  levels ``[dq[b], dq[b - 1])`` in raster order, bucket ``nb`` those below
  every query), walked backwards -- increasing levels -- and only up to the
  highest needed query. Only the window ``win`` (x0, y0, x1, y1) is scanned:
  every hole that matters lies inside it, and a background component inside
  it that does not reach the window's edge is a hole of the whole image (a
  path out of it would cross the edge). Each pixel is united with its active
  4-neighbours; the ring around the window is one active "outside"
  component (id 0, which always survives a union), so a hole is a root with
  id > 0. As in the component scan, the 8 neighbours' activity is packed into
  a byte and ``reps4`` lists one neighbour per group of 4-neighbours already
  known to be connected (two 4-neighbours are when the pixel between them is
  active), so a pixel usually costs one ``find``. A hole's contour box is
  its extent grown by one pixel (the enclosing component's pixels around
  it), then ``box_mode`` as for components. Holes whose box is too small to
  reach the lowest IoU threshold with the smallest GT box (box area <=
  ``(x1 - x0 + 4) * (y1 - y0 + 4)`` in every convention, and IoU <= area
  ratio) are never listed; the listed ones (``hattr[id, 4]`` = position in
  ``hlist``, -1 = not listed) are evaluated at the needed queries.
  """
  shift, stride, xmask = _padded_row(width)
  num_j = iou_thr.shape[0]
  num_q = q.shape[0]
  qc = np.empty(num_q, np.int64)
  answer = np.zeros(nb + 1, np.bool_)  # answer[b]: some needed query has level dq[b]
  bmin = nb
  for t in range(num_q):
    out[t] = 0
    qc[t] = min(max(np.int64(q[t]), 0), num_levels)
    if need[t]:
      for bb in range(nb):
        if dq[bb] == qc[t]:
          answer[bb] = True
          bmin = min(bmin, bb)
  if bmin == nb:
    return
  gt_area = np.empty(gt.shape[0], np.float32)
  one = np.float32(1.0)
  amin = np.inf
  for g in range(gt.shape[0]):
    gt_area[g] = (gt[g, 2] - gt[g, 0] + one) * (gt[g, 3] - gt[g, 1] + one)
    if gt_valid[g]:
      amin = min(amin, np.float64(gt_area[g]))
  if num_j == 0 or amin == np.inf:
    return
  amin = amin * np.float64(iou_thr[0]) * (1.0 - 1e-6)
  wx0, wy0, wx1, wy1 = win[0], win[1], win[2], win[3]
  # Padded-grid row y + 1 and column x + 1 hold pixel (x, y). The ring around the
  # window: active, pointing at the outside root (pixel 0, id 0); window pixels
  # start inactive.
  for y in range(wy0, wy1 + 3):
    row = y * stride
    hact[row + wx0] = 1
    parent[row + wx0] = 0
    hact[row + wx1 + 2] = 1
    parent[row + wx1 + 2] = 0
    for x in range(wx0 + 1, wx1 + 2):
      hact[row + x] = 0
  for x in range(wx0, wx1 + 3):
    hact[wy0 * stride + x] = 1
    parent[wy0 * stride + x] = 0
    hact[(wy1 + 2) * stride + x] = 1
    parent[(wy1 + 2) * stride + x] = 0
  parent[0] = -2
  hattr[0, 0] = 0
  hattr[0, 1] = 0
  hattr[0, 2] = width - 1
  hattr[0, 3] = height - 1
  hattr[0, 4] = -1
  next_id = 1
  nl = 0
  # Hot loop on unsigned indices (numba adds a negative-index fix-up to every signed one).
  offs = np.array([-1, -stride - 1, -stride, -stride + 1, 1, stride + 1, stride, stride - 1],
                  np.int64)
  uoffs = np.empty(8, np.uint64)
  for j in range(8):
    uoffs[j] = np.uint64(offs[j])
  last_p = np.uint64(0)
  last_r = np.uint64(0)
  u1 = np.uint64(1)
  us = np.uint64(stride)
  ushift = np.uint64(shift)
  uxmask = np.uint64(xmask)
  wx0p = np.uint64(wx0 + 1)
  wx1p = np.uint64(wx1 + 1)
  wy0p = np.uint64(wy0 + 1)
  wy1p = np.uint64(wy1 + 1)
  for bk in range(nb, bmin, -1):  # after bucket bk, the background is "level < dq[bk - 1]"
    pos = counts[bk - 1]
    end = counts[bk]
    while pos < end:
      p = np.uint64(order[np.uint64(pos)])
      pos += 1
      if ((p & uxmask) < wx0p) | ((p & uxmask) > wx1p) | ((p >> ushift) < wy0p) | (
          (p >> ushift) > wy1p):
        continue  # outside the window
      m = (np.uint64(hact[p - u1]) | (np.uint64(hact[p - us - u1]) << np.uint64(1))
           | (np.uint64(hact[p - us]) << np.uint64(2)) | (np.uint64(hact[p - us + u1]) << np.uint64(3))
           | (np.uint64(hact[p + u1]) << np.uint64(4)) | (np.uint64(hact[p + us + u1]) << np.uint64(5))
           | (np.uint64(hact[p + us]) << np.uint64(6)) | (np.uint64(hact[p + us - u1]) << np.uint64(7)))
      hact[p] = 1
      px = np.int32((p & uxmask) - u1)
      py = np.int32((p >> ushift) - u1)
      nrep = reps4[m, 0]
      if nrep == 0:  # a new background component
        rpix = p
        r = np.uint64(next_id)
        parent[p] = -(next_id + 2)
        next_id += 1
        hattr[r, 0] = px
        hattr[r, 1] = py
        hattr[r, 2] = px
        hattr[r, 3] = py
        hattr[r, 4] = -1
        changed = True
      else:
        if reps4[m, 1] == 0 and last_p + u1 == p:
          rpix = last_r  # the west neighbour was processed just before: its root is known
        else:
          rpix = _find(parent, p + uoffs[reps4[m, 1]])
        r = np.uint64(-parent[rpix] - 2)
        parent[p] = np.int32(rpix)
        ox0 = hattr[r, 0]
        oy0 = hattr[r, 1]
        ox1 = hattr[r, 2]
        oy1 = hattr[r, 3]
        nx0 = min(ox0, px)
        ny0 = min(oy0, py)
        nx1 = max(ox1, px)
        ny1 = max(oy1, py)
        hattr[r, 0] = nx0
        hattr[r, 1] = ny0
        hattr[r, 2] = nx1
        hattr[r, 3] = ny1
        changed = (nx0 != ox0) | (ny0 != oy0) | (nx1 != ox1) | (ny1 != oy1)
        for j in range(1, nrep):
          rp = _find(parent, p + uoffs[reps4[m, 1 + j]])
          if rp == rpix:
            continue
          rn = np.uint64(-parent[rp] - 2)
          if rn < r:  # the older id survives: the outside (id 0) always does
            rp, rpix = rpix, rp
            rn, r = r, rn
          if hattr[rn, 4] >= 0:  # drop rn from the list of holes
            i = np.uint64(hattr[rn, 4])
            nl -= 1
            last = hlist[np.uint64(nl)]
            hlist[i] = last
            hattr[np.uint64(last), 4] = np.int32(i)
          parent[rp] = np.int32(rpix)
          hattr[r, 0] = min(hattr[r, 0], hattr[rn, 0])
          hattr[r, 1] = min(hattr[r, 1], hattr[rn, 1])
          hattr[r, 2] = max(hattr[r, 2], hattr[rn, 2])
          hattr[r, 3] = max(hattr[r, 3], hattr[rn, 3])
          changed = True
      if changed and r != 0 and hattr[r, 4] < 0 and (
          np.float64(hattr[r, 2] - hattr[r, 0] + 4) * np.float64(hattr[r, 3] - hattr[r, 1] + 4)
          >= amin):  # a hole (not the outside) whose box became large enough: list it
        hattr[r, 4] = nl
        hlist[np.uint64(nl)] = np.int32(r)
        nl += 1
      last_p = p
      last_r = rpix
    if not answer[bk - 1]:
      continue
    best = 0
    for i in range(nl):
      c = hlist[i]
      h = _hit_level(np.int64(hattr[c, 0] - 1), np.int64(hattr[c, 1] - 1),
                     np.int64(hattr[c, 2] + 1), np.int64(hattr[c, 3] + 1),
                     gt, gt_valid, gt_area, iou_thr, box_mode, clamp, width, height)
      best = max(best, h)
      if best == num_j:
        break
    for t in range(num_q):
      if need[t] and qc[t] == dq[bk - 1]:
        out[t] = best


def _make_workspace(raw_h: int, raw_w: int, height: int, width: int, num_levels: int, num_t: int,
                    track: bool, holes_on: bool, resize: bool) -> tuple[np.ndarray, ...]:
  """The scratch arrays of :func:`_scan_chunk` (one set per worker thread, reused)."""
  _, stride, _ = _padded_row(width)
  n = (height + 2) * stride
  hw = height * width
  return (
      np.empty((raw_h if resize else 0, width), np.float64),  # tmp: horizontal resize pass
      np.empty((height if resize else 0, width), np.float64),  # big: the resized map
      np.empty(n, np.uint8),  # act
      np.empty(n, np.int32),  # parent
      # per component id: area, first pixel, x0, x1, y0, y1, V2 hit level,
      # 2 x quad area, 4 x Euler number (one row)
      np.empty((hw, 9), np.int32),  # attr
      np.empty(hw if track else 1, np.int32),  # rpos
      np.empty(hw if track else 1, np.int32),  # rlist
      np.empty(4, np.int64),  # win: x0, y0, x1, y1 of the hole-pass candidates' boxes
      np.zeros(num_t, np.int64),  # hole_level
      np.empty(n if holes_on else 0, np.int32),  # hparent
      np.empty(n if holes_on else 0, np.uint8),  # hact
      np.empty((hw + 1 if holes_on else 0, 5), np.int32),  # hattr
      np.empty(hw if holes_on else 0, np.int32),  # hlist
      np.zeros(num_t, np.bool_),  # need
      np.empty(max(num_levels, num_t) + 2, np.int64),  # counts
      np.empty(num_levels, np.int64),  # bucket
      np.empty(num_t + 1, np.int64),  # dq
      np.empty(hw, np.int32),  # order
      np.empty((height, width), np.int32),  # levels
      np.empty(num_levels + 1, np.int64),  # lhist
      np.empty(num_t, np.int32),  # q
  )


@numba.njit(cache=True, nogil=True)
def _scan_chunk(maps, mode, normalize, ts, table, lut, q_float, num_levels, lo, hi,
                iy, wy, ix, wx, want_v1, want_v2, max_boxes, largest, hole_boxes,
                gt, gt_valid, iou_thr, box_mode, clamp, empty_box,
                out_box, out_area, out_v2, out_mbox, out_marea, out_ncomp, out_invalid, out_stats,
                reps, quad, reps4, ws):
  (tmp, big, act, parent, attr, rpos, rlist, win, hole_level, hparent, hact, hattr, hlist, need,
   counts, bucket, dq, order, levels, lhist, q) = ws
  _, raw_h, raw_w = maps.shape
  resize = iy.shape[0] > 0
  height = levels.shape[0]
  width = levels.shape[1]
  holes_on = want_v2 and hole_boxes
  raw_gray = mode == QUANT_UINT8 and not normalize and not resize
  for b in range(lo, hi):
    if raw_gray:  # one pass: levels, histogram and the validity statistics
      _quantize_gray_raw(maps[b], table, levels, q, lhist, out_stats[b])
      out_invalid[b] = (out_stats[b, 2] != 0.0 or out_stats[b, 1] == np.inf
                        or out_stats[b, 0] == -np.inf)
    else:
      finite = True
      for y in range(raw_h):
        for x in range(raw_w):
          finite &= np.isfinite(maps[b, y, x])
      out_invalid[b] = not finite
    if raw_gray:
      pass
    elif resize:
      _resize_cubic64(maps[b], iy, wy, ix, wx, tmp, big)
      _quantize_map(big, mode, normalize, ts, table, lut, levels, q, q_float, lhist)
    else:
      _quantize_map(maps[b], mode, normalize, ts, table, lut, levels, q, q_float, lhist)
    win[0] = width
    win[1] = height
    win[2] = -1
    win[3] = -1
    nb = _scan_map(levels, lhist, num_levels, q, want_v1, want_v2, max_boxes, largest, hole_boxes,
              gt[b], gt_valid[b], iou_thr, box_mode, clamp, empty_box,
              out_box[b], out_area[b], out_v2[b], out_mbox[b], out_marea[b], out_ncomp[b],
              need, win, act, parent, attr, rpos, rlist, counts, order, bucket, dq, reps,
              quad)
    if holes_on:
      any_need = False
      for t in range(q.shape[0]):
        any_need = any_need or need[t]
      if any_need:
        _hole_levels(q, need, win, num_levels, width, height, order, counts, dq, nb, gt[b],
                     gt_valid[b], iou_thr, box_mode, clamp, hole_level, hparent, hact, hattr,
                     hlist, reps4)
        for t in range(q.shape[0]):
          if need[t] and hole_level[t] > out_v2[b, t]:
            out_v2[b, t] = hole_level[t]


_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_TLS = threading.local()


def _thread_workspace(key: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
  """This thread's scratch arrays for maps of the shape described by ``key`` (the last one kept)."""
  if getattr(_TLS, "key", None) != key:
    _TLS.ws = _make_workspace(*key)
    _TLS.key = key
  return _TLS.ws


def default_num_threads() -> int:
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # pragma: no cover - non-Linux
    return max(1, os.cpu_count() or 1)


def _pool() -> concurrent.futures.ThreadPoolExecutor:
  global _POOL
  with _POOL_LOCK:
    if _POOL is None:
      _POOL = concurrent.futures.ThreadPoolExecutor(
          max_workers=default_num_threads(), thread_name_prefix="infocam-boxes")
    return _POOL


def scan_maps(maps: np.ndarray, *, mode: int, normalize: bool, thresholds: np.ndarray,
              q_float: np.ndarray | None = None, table: np.ndarray | None = None,
              lut: np.ndarray | None = None, resize_taps: tuple[np.ndarray, ...] | None = None,
              want_v1: bool = True, largest: int = LARGEST_PIXELS, gt: np.ndarray | None = None,
              gt_valid: np.ndarray | None = None, iou_thr: np.ndarray | None = None,
              box_mode: int = BOX_INCLUSIVE, clamp: bool = True, empty_box: Any = None,
              hole_boxes: bool = False, max_boxes: int = 0,
              num_threads: int | None = None, want_stats: bool = False) -> dict[str, Any]:
  """Quantises float maps and runs the one-pass component scan over the batch.

  Args:
    maps: float32 ``[B, h, w]`` (float64 is kept as float64 for ``QUANT_UINT8``
      without ``normalize`` or resize: levels ``int(255 v)`` of the float64
      values, wsolevaluation's ``uint8(255 m)``; every other case reads float32).
    mode: ``QUANT_FLOAT`` (foreground of query t: ``level >= q_float[t]`` with
      ``level = #{thresholds < v}``), ``QUANT_UINT8`` (``level = floor(255 v)``)
      or ``QUANT_CUBEHELIX`` (``level = lut[min(floor(256 v), 255)]``); for
      the last two the queries are ``table[max level of the map]``.
    normalize: min-max normalise each map first (as ``cam.normalize_maps``).
    thresholds: float32 ``[T]`` sorted ascending (QUANT_FLOAT only).
    q_float: int32 ``[T]`` query levels (QUANT_FLOAT).
    table: int32 ``[256, T]`` query level per map maximum (gray modes).
    lut: uint8 ``[256]`` (QUANT_CUBEHELIX).
    resize_taps: None, or ``(iy, wy, ix, wx)`` from
      :func:`infocam_jax.wsol.conventions.cv2_cubic_taps`: each map is first resized to
      ``[len(iy), len(ix)]`` exactly as ``cv2.resize`` of its float64 copy.
    want_v1: compute the largest component's box and area.
    largest: ``LARGEST_PIXELS`` or ``LARGEST_CONTOUR`` (V1).
    gt, gt_valid, iou_thr: float32 ``[B, G, 4]``, bool ``[B, G]``, float32
      ``[J]`` ascending; when ``gt`` is given, V2 hit levels are computed.
    box_mode: one of ``BOX_*`` (convention applied before the IoU).
    clamp: clamp the intersection at zero (False: the official infoCAM IoU).
    empty_box: ``(x0, y0, x1, y1)`` evaluated when a foreground is empty, or
      None (an empty foreground never hits).
    hole_boxes: V2 also evaluates the contour boxes of holes.
    max_boxes: K > 0 also returns the K largest components' boxes.
    num_threads: worker threads (default: the CPUs this process may use).
    want_stats: also return ``stats`` (below).

  Returns:
    dict with ``box`` int32 ``[B, T, 4]`` (inclusive extent, zeros when empty),
    ``area`` int32 ``[B, T]`` (pixels; 0 = empty foreground), ``v2_level`` int8
    ``[B, T]`` (number of IoU thresholds met by the best box),
    ``num_components`` int32 ``[B, T]``, ``multi_box`` int32 ``[B, T, K, 4]``,
    ``multi_area`` int32 ``[B, T, K]``, ``invalid`` bool ``[B]`` (the map,
    before any resize, has a NaN or inf); with ``want_stats``, ``stats`` float64
    ``[B, 3]`` (``QUANT_UINT8`` without ``normalize`` or resize: the map's min, max
    and 1.0 if it holds a NaN, computed in the quantisation pass; zeros otherwise).
  """
  raw_gray = mode == QUANT_UINT8 and not normalize and resize_taps is None
  if raw_gray and np.asarray(maps).dtype == np.float64:
    maps = np.ascontiguousarray(maps)  # levels int(255 v) of the float64 values, as the peer
  else:
    maps = np.ascontiguousarray(maps, dtype=np.float32)
  num_b = maps.shape[0]
  if resize_taps is None:
    iy = ix = np.zeros((0, 4), np.int64)
    wy = wx = np.zeros((0, 4), np.float64)
    height, width = maps.shape[1:]
  else:
    iy, wy, ix, wx = (np.ascontiguousarray(a) for a in resize_taps)
    height, width = iy.shape[0], ix.shape[0]
  if height + 2 > 32767 or width + 2 > 32767:
    raise ValueError(f"maps must be smaller than 32765 pixels per side, got {height}x{width}.")
  ts = np.ascontiguousarray(thresholds, dtype=np.float32).reshape(-1)
  if mode == QUANT_FLOAT:
    num_t = ts.shape[0]
    q_float = np.ascontiguousarray(q_float, dtype=np.int32).reshape(-1)
    table = np.zeros((1, num_t), np.int32)
    num_levels = num_t + 1
  else:
    table = np.ascontiguousarray(table, dtype=np.int32)
    num_t = table.shape[1]
    q_float = np.zeros(num_t, np.int32)
    num_levels = 256
  lut = np.zeros(256, np.uint8) if lut is None else np.ascontiguousarray(lut, dtype=np.uint8)
  want_v2 = gt is not None
  if want_v2:
    gt = np.ascontiguousarray(gt, dtype=np.float32)
    gt_valid = np.ascontiguousarray(gt_valid, dtype=np.bool_)
    iou_thr = np.ascontiguousarray(iou_thr, dtype=np.float32)
  else:
    gt = np.zeros((num_b, 0, 4), np.float32)
    gt_valid = np.zeros((num_b, 0), np.bool_)
    iou_thr = np.zeros((0,), np.float32)
  eb = np.full(4, -1, np.int64) if empty_box is None else np.asarray(empty_box, np.int64)
  k = int(max_boxes)
  out = {
      "box": np.zeros((num_b, num_t, 4), np.int32),
      "area": np.zeros((num_b, num_t), np.int32),
      "v2_level": np.zeros((num_b, num_t), np.int8),
      "num_components": np.zeros((num_b, num_t), np.int32),
      "multi_box": np.zeros((num_b, num_t, k, 4), np.int32),
      "multi_area": np.zeros((num_b, num_t, k), np.int32),
      "invalid": np.zeros(num_b, np.bool_),
      "stats": np.zeros((num_b, 3), np.float64),
  }
  stats = out.pop("stats")
  if want_stats:
    out["stats"] = stats
  if num_b == 0:
    return out
  head = (maps, int(mode), bool(normalize), ts, table, lut, q_float, num_levels)
  tail = (iy, wy, ix, wx, bool(want_v1), bool(want_v2), k, int(largest), bool(hole_boxes), gt,
          gt_valid, iou_thr, int(box_mode), bool(clamp), eb, out["box"], out["area"],
          out["v2_level"], out["multi_box"], out["multi_area"], out["num_components"],
          out["invalid"], stats, _REPS, _QUAD, _REPS4)
  threads = default_num_threads() if num_threads is None else max(1, int(num_threads))
  threads = min(threads, num_b)
  track = k > 0 or (want_v1 and largest == LARGEST_CONTOUR) or (want_v2 and hole_boxes)
  ws_key = (maps.shape[1], maps.shape[2], height, width, num_levels, num_t, bool(track),
            bool(want_v2 and hole_boxes), resize_taps is not None)
  # Dynamic scheduling: workers (the calling thread among them) take chunks of a few maps
  # from a shared counter, so one slow (noisy) map does not hold up a static half of the batch.
  chunk = max(1, min(4, -(-num_b // (8 * threads))))
  num_chunks = -(-num_b // chunk)
  tickets = itertools.count()

  def work():
    ws = _thread_workspace(ws_key)
    while True:
      i = next(tickets)  # atomic under the GIL
      if i >= num_chunks:
        return
      _scan_chunk(*head, i * chunk, min(num_b, (i + 1) * chunk), *tail, ws)

  futures = [_pool().submit(work) for _ in range(threads - 1)]
  try:
    work()
  finally:
    for f in futures:  # never return (or raise) while a worker still writes into `out`
      f.result()
  return out
