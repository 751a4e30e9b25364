"""Cluttered-digit scenes: the generator behind the offline tfds datasets.

Real handwritten digits (the 1,797 8x8 images that scikit-learn ships inside
its wheel) are upscaled smoothly and placed at a random position and scale on
a cluttered background: a smooth random colour field, pixel noise, fragments
of *other* digits (random sub-windows, flipped/rotated so they do not read as
whole digits) and random pen strokes of the same width as the digit strokes.
Every scene has exactly one whole digit, whose class is the label, and its
exact box: the tight box of the pixels where the digit's ink opacity is at
least 0.5.

Everything here is pure NumPy (+ Pillow for the smooth resampling of tiny
arrays) and deterministic: `render_scene` draws all its randomness from the
`numpy.random.Generator` it is given; the tfds builders in
`infocam_jax.data.offline` seed one generator per example from
(config seed, split, example index).

Box conventions: `Scene.box` holds inclusive pixel corners
(x0, y0, x1, y1) of the canvas; `Scene.bbox` the same box in tfds' normalised
(ymin, xmin, ymax, xmax) form, i.e. the continuous extent
[x0, x1 + 1) / size.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os

import numpy as np

from infocam_jax.wsol.boxes import iou_levels
from infocam_jax.cam import resize_matrix

__all__ = [
    "SceneSpec",
    "Scene",
    "load_digits",
    "instance_split",
    "render_scene",
    "hit_rates",
    "fixed_box_scores",
]


@dataclasses.dataclass(frozen=True)
class SceneSpec:
  """Parameters of the scene distribution (all sizes in pixels unless stated).

  Attributes:
    image_size: side of the square canvas.
    digit_height: range of the digit patch height as a fraction of
      `image_size` (the 8x8 digit is resampled to this height; the ink box of
      a digit spans ~100% of the patch height and ~70% of its width).
    aspect_jitter: the patch width is the height times U(1 - a, 1 + a).
    num_fragments: inclusive range of the number of digit fragments.
    fragment_cells: inclusive range of a fragment's side in 8x8-digit cells.
    max_fragment_overlap: a fragment may cover at most this fraction of its
      own area inside the target digit's patch (rejection sampling).
    num_strokes: inclusive range of the number of random pen strokes.
    noise_std: range of the per-pixel Gaussian noise (intensities in [0, 1]).
    inverted_prob: probability of a dark-ink-on-light-background scene.
  """

  image_size: int = 64
  digit_height: tuple[float, float] = (0.30, 0.60)
  aspect_jitter: float = 0.15
  num_fragments: tuple[int, int] = (4, 8)
  fragment_cells: tuple[int, int] = (3, 5)
  max_fragment_overlap: float = 0.15
  num_strokes: tuple[int, int] = (1, 3)
  noise_std: tuple[float, float] = (0.02, 0.08)
  inverted_prob: float = 0.3

  def __post_init__(self):
    if self.image_size < 16:
      raise ValueError(f"`image_size` must be >= 16, got {self.image_size}.")
    lo, hi = self.digit_height
    if not 0.1 <= lo <= hi <= 0.95:
      raise ValueError(
          f"`digit_height` must satisfy 0.1 <= lo <= hi <= 0.95, got {self.digit_height}.")


@dataclasses.dataclass(frozen=True)
class Scene:
  """One rendered scene.

  Attributes:
    image: uint8 [S, S, 3].
    box: int (x0, y0, x1, y1), inclusive pixel corners of the digit's ink.
    bbox: float (ymin, xmin, ymax, xmax) in [0, 1], tfds' normalised box.
  """

  image: np.ndarray
  box: tuple[int, int, int, int]
  bbox: tuple[float, float, float, float]


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's 1,797 handwritten digits: (images float32 [N,8,8] in [0,1], labels int64 [N]).

  Read straight from the data file inside the scikit-learn wheel
  (``sklearn/datasets/data/digits.csv.gz``, 64 pixel values 0..16 and the
  label per row), which avoids importing scikit-learn (seconds); falls back
  to ``sklearn.datasets.load_digits`` when the file is not where expected.
  """
  table = None
  spec = importlib.util.find_spec("sklearn")
  if spec is not None and spec.submodule_search_locations:
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")
    if os.path.exists(path):
      table = np.loadtxt(path, delimiter=",", dtype=np.float64)
  if table is None:
    from sklearn.datasets import load_digits as _load  # pylint: disable=g-import-not-at-top
    bunch = _load()
    table = np.concatenate([bunch.data, bunch.target[:, None]], axis=1)
  if table.shape != (1797, 65):
    raise ValueError(f"scikit-learn's digits table has shape {table.shape}, expected (1797, 65).")
  images = (table[:, :64].reshape(-1, 8, 8) / 16.0).astype(np.float32)
  labels = table[:, 64].astype(np.int64)
  images.setflags(write=False)
  labels.setflags(write=False)
  return images, labels


def instance_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
  """Stratified, disjoint partition of digit instances.

  Within each class the instances are permuted with `seed` and cut at the
  cumulative `fractions` (rounded down, the remainder going to the last part),
  so every part holds every class and the parts are disjoint and complete.

  Returns:
    One sorted int64 index array per fraction.
  """
  fractions = tuple(float(f) for f in fractions)
  if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
    raise ValueError(f"`fractions` must be positive and sum to 1, got {fractions}.")
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  parts: list[list[np.ndarray]] = [[] for _ in fractions]
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    cuts = np.floor(np.cumsum(fractions)[:-1] * len(members)).astype(int)
    for p, chunk in enumerate(np.split(members, cuts)):
      parts[p].append(chunk)
  return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def _cubic_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] bicubic (Keys, a = -0.5) upsampling weights: ``cam.resize_matrix``'s.

  Half-pixel centres (edges map to edges, like PIL and OpenCV) and replicated
  borders; used only to upsample, so no anti-aliasing filter is needed.
  """
  return resize_matrix(int(n_in), int(n_out), "bicubic", -0.5)


def _resample(a: np.ndarray, height: int, width: int) -> np.ndarray:
  """Smooth (bicubic, edge-aligned) upsampling of a float32 2-D array."""
  a = np.asarray(a, np.float32)
  return _cubic_matrix(a.shape[0], int(height)) @ a @ _cubic_matrix(a.shape[1], int(width)).T


def _ink_alpha(intensity: np.ndarray) -> np.ndarray:
  """Opacity of pen ink from a smoothly upsampled digit intensity in [0, 1].

  A soft threshold turns the blurry bicubic blobs into strokes with a one- to
  two-pixel anti-aliased edge.
  """
  return np.clip((intensity - np.float32(0.3)) * np.float32(1 / 0.3), 0.0, 1.0)


def _stroke_alpha(rng: np.random.Generator, size: int, width: float) -> tuple[np.ndarray, int, int]:
  """Opacity of one random quadratic Bezier pen stroke of the given width.

  Coverage falls off linearly over one pixel at the stroke's edge (distance
  from the pixel centre to the curve), like the anti-aliased edges of the
  upsampled digits. Computed only inside the stroke's bounding window.

  Returns:
    (alpha [h, w], top, left): the window's opacity and its canvas offset.
  """
  length = rng.uniform(0.25, 0.5) * size
  p0 = rng.uniform(0, size, 2)
  angle = rng.uniform(0, 2 * np.pi)
  p2 = p0 + length * np.array([np.cos(angle), np.sin(angle)])
  p1 = (p0 + p2) / 2 + rng.normal(0, length / 3, 2)
  t = _BEZIER_T
  pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2  # [K, 2] (x, y)
  margin = int(np.ceil(width / 2)) + 1
  left = int(np.floor(pts[:, 0].min())) - margin
  top = int(np.floor(pts[:, 1].min())) - margin
  w = int(np.ceil(pts[:, 0].max())) + margin - left
  h = int(np.ceil(pts[:, 1].max())) + margin - top
  a = (pts[:-1] - (left, top)).astype(np.float32)
  ab = (pts[1:] - pts[:-1]).astype(np.float32)
  px = (np.arange(w, dtype=np.float32) + 0.5)[None, :, None] - a[:, 0]  # [1, w, S]
  py = (np.arange(h, dtype=np.float32) + 0.5)[:, None, None] - a[:, 1]  # [h, 1, S]
  denom = np.maximum((ab * ab).sum(-1), 1e-6)
  tt = np.clip((px * ab[:, 0] + py * ab[:, 1]) / denom, 0.0, 1.0)
  dx = px - tt * ab[:, 0]
  dy = py - tt * ab[:, 1]
  dist = np.sqrt((dx * dx + dy * dy).min(-1))
  return np.clip(width / 2 - dist + 0.5, 0.0, 1.0), top, left


_BEZIER_T = np.linspace(0.0, 1.0, 12)[:, None]


def _composite(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray, top: int, left: int) -> None:
  """In place: canvas[top:, left:] = (1 - alpha) * canvas + alpha * colour, clipped to the canvas."""
  size = canvas.shape[0]
  h, w = alpha.shape
  y0, x0 = max(top, 0), max(left, 0)
  y1, x1 = min(top + h, size), min(left + w, size)
  if y1 <= y0 or x1 <= x0:
    return
  a = alpha[y0 - top:y1 - top, x0 - left:x1 - left, None].astype(np.float32, copy=False)
  region = canvas[y0:y1, x0:x1]
  region += a * (colour - region)


def render_scene(rng: np.random.Generator, digit: np.ndarray, fragment_pool: np.ndarray,
                 spec: SceneSpec = SceneSpec()) -> Scene:
  """Renders one cluttered scene around `digit`.

  Args:
    rng: the only source of randomness.
    digit: float [8, 8] in [0, 1], the whole digit to place (the label).
    fragment_pool: float [N, 8, 8] digits whose pieces make the clutter; pass
      digits of the same instance split as `digit` so that splits stay
      disjoint.
    spec: the scene distribution.

  Returns:
    A `Scene` (uint8 image, inclusive pixel box, normalised tfds box).
  """
  size = spec.image_size
  # Polarity and palette: ink and fragments share one colour family, so
  # colour does not single out the target.
  if rng.uniform() < spec.inverted_prob:
    bg_base = rng.uniform(0.55, 0.9, 3).astype(np.float32)
    ink_base = rng.uniform(0.0, 0.3, 3).astype(np.float32)
  else:
    bg_base = rng.uniform(0.05, 0.4, 3).astype(np.float32)
    ink_base = rng.uniform(0.6, 1.0, 3).astype(np.float32)

  # Background: a smooth random colour field plus pixel noise (added last).
  grid = int(rng.integers(3, 7))
  coarse = bg_base + 0.35 * (rng.uniform(0, 1, (grid, grid, 3)).astype(np.float32) - 0.5)
  up = _cubic_matrix(grid, size)
  canvas = np.ascontiguousarray((up @ coarse.transpose(2, 0, 1) @ up.T).transpose(1, 2, 0))

  # Target geometry first (fragments avoid its patch).
  height = int(round(size * rng.uniform(*spec.digit_height)))
  width = int(round(height * rng.uniform(1 - spec.aspect_jitter, 1 + spec.aspect_jitter)))
  width = min(max(width, 4), size)
  height = min(max(height, 4), size)
  top = int(rng.integers(0, size - height + 1))
  left = int(rng.integers(0, size - width + 1))
  cell = height / 8.0  # pixels per digit cell: fragments and strokes match it

  # Fragments of other digits: up to 10 candidates per fragment, all drawn at
  # once; the first that is not blank and stays off the target is used.
  n_frag = int(rng.integers(spec.num_fragments[0], spec.num_fragments[1] + 1))
  n_cand = 10 * n_frag
  lo, hi = spec.fragment_cells
  cand_src = rng.integers(0, len(fragment_pool), n_cand).tolist()
  cand_h = rng.integers(lo, hi + 1, n_cand)
  cand_w = rng.integers(lo, hi + 1, n_cand)
  cand_r0 = (rng.uniform(size=n_cand) * (9 - cand_h)).astype(int).tolist()
  cand_c0 = (rng.uniform(size=n_cand) * (9 - cand_w)).astype(int).tolist()
  cand_h, cand_w = cand_h.tolist(), cand_w.tolist()
  cand_rot = rng.integers(0, 4, n_cand).tolist()
  cand_flip = (rng.uniform(size=n_cand) < 0.5).tolist()
  cand_scale = (cell * rng.uniform(0.8, 1.25, n_cand)).tolist()
  cand_y = rng.uniform(size=n_cand).tolist()
  cand_x = rng.uniform(size=n_cand).tolist()
  colours = np.clip(ink_base + rng.uniform(-0.1, 0.1, (n_frag + spec.num_strokes[1] + 1, 3)),
                    0, 1).astype(np.float32)
  k = 0
  for f in range(n_frag):
    for _attempt in range(10):
      j, k = k, k + 1
      # Geometry first (cheap), pixels only for an accepted candidate. One
      # blank cell of padding: the bicubic ramp then rounds off the cut stroke
      # ends instead of leaving straight, block-like edges.
      ph, pw = cand_h[j] + 2, cand_w[j] + 2
      if cand_rot[j] % 2:
        ph, pw = pw, ph
      fh = max(2, int(round(ph * cand_scale[j])))
      fw = max(2, int(round(pw * cand_scale[j])))
      ftop = -(fh // 4) + int(cand_y[j] * (size - 3 * fh // 4 + fh // 4 + 1))
      fleft = -(fw // 4) + int(cand_x[j] * (size - 3 * fw // 4 + fw // 4 + 1))
      oy = max(0, min(ftop + fh, top + height) - max(ftop, top))
      ox = max(0, min(fleft + fw, left + width) - max(fleft, left))
      if oy * ox > spec.max_fragment_overlap * fh * fw:
        continue
      r0, c0 = cand_r0[j], cand_c0[j]
      piece = fragment_pool[cand_src[j], r0:r0 + cand_h[j], c0:c0 + cand_w[j]]
      if piece.sum() < 2.0:  # nearly blank window: try another
        continue
      if cand_rot[j]:
        piece = np.rot90(piece, cand_rot[j])
      if cand_flip[j]:
        piece = piece[:, ::-1]
      padded = np.zeros((ph, pw), np.float32)
      padded[1:-1, 1:-1] = piece
      _composite(canvas, _ink_alpha(_resample(padded, fh, fw)), colours[f], ftop, fleft)
      break
    if k >= n_cand:
      break

  # Pen strokes with the digits' stroke width.
  n_strokes = int(rng.integers(spec.num_strokes[0], spec.num_strokes[1] + 1))
  for i in range(n_strokes):
    alpha, stop, sleft = _stroke_alpha(rng, size, width=max(1.0, 1.3 * cell))
    _composite(canvas, alpha, colours[n_frag + i], stop, sleft)

  # The target digit, on top.
  alpha = _ink_alpha(_resample(digit, height, width))
  _composite(canvas, alpha, colours[-1], top, left)

  sigma = np.float32(rng.uniform(*spec.noise_std))
  canvas += sigma * rng.standard_normal(canvas.shape, dtype=np.float32)
  canvas *= 255.0
  canvas += 0.5
  image = np.clip(canvas, 0, 255).astype(np.uint8)  # rounds half up

  ink = alpha >= 0.5
  rows = np.flatnonzero(ink.any(1))
  cols = np.flatnonzero(ink.any(0))
  if rows.size == 0:  # a blank digit (does not occur in sklearn's set): use the patch
    rows, cols = np.array([0, height - 1]), np.array([0, width - 1])
  x0, x1 = left + int(cols[0]), left + int(cols[-1])
  y0, y1 = top + int(rows[0]), top + int(rows[-1])
  bbox = (y0 / size, x0 / size, (y1 + 1) / size, (x1 + 1) / size)
  return Scene(image=image, box=(x0, y0, x1, y1), bbox=bbox)


def hit_rates(boxes: np.ndarray, candidates: np.ndarray, threshold: float = 0.5) -> np.ndarray:
  """[M] fraction of the inclusive boxes [N, 4] with IoU >= ``threshold`` against each of the
  candidate boxes [M, 4] (the library's IoU rule, ``boxes.iou_levels``: exact at ties)."""
  hits = np.asarray(iou_levels(np.asarray(boxes)[:, None], np.asarray(candidates)[None],
                               [threshold])) > 0
  return hits.mean(axis=0)


def fixed_box_scores(boxes: np.ndarray, image_size: int, threshold: float = 0.5) -> dict[str, float]:
  """Image-independent baselines on inclusive pixel boxes [N, 4] of an S x S canvas.

  Returns the fraction of images with IoU >= `threshold` for
    * ``full``: the whole-image box;
    * ``centred_mean``: a centred box with the mean ground-truth width/height;
    * ``centred_best``: the best centred box over all integer widths/heights
      (an oracle choice, an upper bound for any centred box).
  """
  boxes = np.asarray(boxes, np.float64)
  s = image_size

  def centred(w, h):
    x0 = (s - w) / 2.0
    y0 = (s - h) / 2.0
    return np.array([x0, y0, x0 + w - 1, y0 + h - 1])

  full = np.array([0, 0, s - 1, s - 1], np.float64)
  widths = boxes[:, 2] - boxes[:, 0] + 1
  heights = boxes[:, 3] - boxes[:, 1] + 1
  grid = [centred(w, h) for w in range(2, s + 1, 2) for h in range(2, s + 1, 2)]
  rates = hit_rates(boxes, np.stack([full, centred(widths.mean(), heights.mean()), *grid]),
                    threshold)
  out = {"full": float(rates[0]), "centred_mean": float(rates[1])}
  best = max(0.0, float(rates[2:].max()))
  out["centred_best"] = best
  return out
