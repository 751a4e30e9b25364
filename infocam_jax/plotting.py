"""Figures for the experiments: localisation grids, threshold curves, lines and bars.

Every function takes NumPy-convertible arrays and an output path, writes one
PNG (creating parent folders) and returns the path as a ``pathlib.Path``.
Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas:
no pyplot state, no display, safe in threads and headless jobs, and the global
matplotlib backend is left untouched.

Box convention (as everywhere in infocam_jax): ``(x0, y0, x1, y1)`` pixel
indices with **inclusive** corners, so a box covers ``x1 - x0 + 1`` columns; it
is drawn along the outer pixel edges, ``x0 - 0.5 … x1 + 0.5``.
"""

from __future__ import annotations

from infocam_jax import _deps

_deps.require("plot", "infocam_jax.plotting")

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import cm, colors as mcolors, patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

__all__ = [
    "plot_localization_grid",
    "plot_threshold_curves",
    "plot_lines",
    "plot_bars",
    "plot_mi_errors",
]

_GT_COLOR = "#00e000"
_PRED_COLOR = "#ff2020"
# Curves that may coincide (infoCAM exactly under CAM+region) stay distinguishable: each
# curve gets its own line style, marker and marker phase, and later curves are drawn
# thinner on top of earlier ones.
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def _new_figure(width: float, height: float) -> Figure:
  fig = Figure(figsize=(width, height))
  FigureCanvasAgg(fig)
  return fig


def _check_series(series: Any, errors: Mapping[str, Any] | None) -> dict[str, Any]:
  """Validates ``series`` (non-empty mapping) and ``errors`` (keys among it); returns errors."""
  if not isinstance(series, Mapping) or not series:
    raise ValueError("`series` must be a non-empty mapping of label -> [n] values.")
  errors = dict(errors or {})
  for k in errors:
    if k not in series:
      raise ValueError(f"`errors` key {k!r} is not among the series {list(series)}.")
  return errors


def _finish(fig: Figure, ax: Any, path: str | os.PathLike, dpi: int, xlabel: str, ylabel: str,
            title: str | None, *, legend_fontsize: int = 8, grid_axis: str = "both",
            legend_outside: bool = False, caption: str | None = None) -> Path:
  """Labels, title, grid and legend of a one-axes chart, then `_save`.

  ``legend_outside``: the legend sits right of the axes, so it never covers data.
  """
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(True, axis=grid_axis, alpha=0.3)
  if legend_outside:
    ax.legend(fontsize=legend_fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0)
  else:
    ax.legend(fontsize=legend_fontsize, loc="best")
  _caption(fig, caption)
  return _save(fig, path, dpi)


def _caption(fig: Figure, caption: str | None, gap_inches: float = 0.15) -> None:
  """Small wrapped text under the figure (kept by ``bbox_inches='tight'``)."""
  if not caption:
    return
  import textwrap  # pylint: disable=g-import-not-at-top
  width_chars = max(40, int(fig.get_figwidth() * 13))
  text = "\n".join(textwrap.fill(par, width_chars) for par in str(caption).split("\n"))
  fig.text(0.0, -gap_inches / fig.get_figheight(), text, ha="left", va="top", fontsize=7.5,
           color="#333333", transform=fig.transFigure)


def _save(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
  out = Path(path)
  if out.suffix.lower() != ".png":
    raise ValueError(f"`path` must end in .png, got {str(path)!r}.")
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=dpi, format="png", bbox_inches="tight")
  return out


def _as_array(x: Any, name: str, ndim: int | None = None, shape=None, dtype=None) -> np.ndarray:
  arr = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
  if arr.dtype == object:
    raise ValueError(f"`{name}` must be a numeric array, got {arr!r}.")
  if ndim is not None and arr.ndim != ndim:
    raise ValueError(f"`{name}` must have {ndim} dimensions, got shape {arr.shape}.")
  if shape is not None:
    for got, want in zip(arr.shape, shape):
      if want is not None and got != want:
        raise ValueError(f"`{name}` must have shape {tuple(shape)} (None = any), got "
                         f"{arr.shape}.")
  return arr


def _image_for_display(images: np.ndarray) -> np.ndarray:
  """[N,H,W,C] uint8 or float -> float in [0, 1]."""
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"`images` must be uint8 or float, got dtype {images.dtype}.")
  imgs = np.nan_to_num(images.astype(np.float32))
  lo, hi = float(imgs.min()), float(imgs.max())
  if lo >= 0.0 and hi <= 1.0:
    return imgs
  # Not in [0, 1] (e.g. mean/std normalised): min-max per image for display only.
  axes = tuple(range(1, imgs.ndim))
  lo = imgs.min(axis=axes, keepdims=True)
  span = imgs.max(axis=axes, keepdims=True) - lo
  return np.where(span > 0, (imgs - lo) / np.where(span > 0, span, 1.0), 0.0)


def _map_for_display(m: np.ndarray) -> np.ndarray:
  """A map in [0, 1] as it is; any other map through the one min-max rule
  (:func:`infocam_jax.cam.normalize_maps`: NaN/inf or constant maps -> zeros)."""
  m = np.asarray(m)
  if np.all(np.isfinite(m)) and m.max() > m.min() and m.min() >= 0.0 and m.max() <= 1.0:
    return m.astype(np.float64)
  from infocam_jax import cam  # pylint: disable=g-import-not-at-top
  return np.asarray(cam.normalize_maps(m), np.float64)


def _draw_box(ax, box, color: str, linewidth: float = 1.5, linestyle: str = "-") -> None:
  x0, y0, x1, y1 = (float(v) for v in box)
  ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1.0, y1 - y0 + 1.0, fill=False,
                         edgecolor=color, linewidth=linewidth, linestyle=linestyle,
                         path_effects=[patheffects.withStroke(linewidth=linewidth + 1.5,
                                                              foreground="black")]))


def plot_localization_grid(
    path: str | os.PathLike,
    images: Any,
    maps: Mapping[str, Any],
    *,
    gt_boxes: Any | None = None,
    gt_mask: Any | None = None,
    pred_boxes: Mapping[str, Any] | None = None,
    ious: Mapping[str, Any] | None = None,
    labels: Any | None = None,
    predictions: Any | None = None,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    panel_size: float = 2.2,
    colorbar: bool = True,
    caption: str | None = None,
    dpi: int = 100,
) -> Path:
  """A grid: one row per image; the image, then one heatmap overlay per method.

  Below the grid: a legend for the boxes that are drawn (green solid = ground truth, red
  dashed = predicted) and ``caption``; right of it a colour bar of the map scale.

  Args:
    path: output ``.png``.
    images: ``[N, H, W, 3]`` (or gray ``[N, H, W, 1]``) uint8, or float in [0, 1]
      (other float ranges are min–max scaled per image for display), e.g.
      ``data.denormalize(batch["image"])``.
    maps: method name -> ``[N, H, W]`` maps at image resolution (e.g.
      ``{"CAM": ..., "infoCAM": ...}``, after `cam.upsample_maps`); maps outside
      [0, 1] are min–max normalised for display, NaN/constant maps show as 0.
    gt_boxes: ``[N, M, 4]`` or ``[N, 4]`` ground-truth boxes (x0, y0, x1, y1),
      inclusive corners, drawn in green on every panel.
    gt_mask: bool ``[N, M]``: which of the M boxes are real (default all).
    pred_boxes: method name -> ``[N, 4]`` predicted boxes, drawn in red on that
      method's panel (keys must be among ``maps``).
    ious: method name -> ``[N]`` IoU of that prediction, shown in the title.
    labels, predictions: int ``[N]`` ground-truth / predicted classes for the
      row's image title (``class_names`` maps them to names).
    alpha: heatmap opacity.
    cmap: matplotlib colormap name for the heatmaps.
    panel_size: inches per panel.
    colorbar: draw one colour bar for the heatmaps (their display scale, 0 = map
      minimum, 1 = maximum, unless the maps already lie in [0, 1]).
    caption: text under the grid, e.g. "Maps for the ground-truth class; t is the CAM
      threshold chosen on the validation split; boxes from the map thresholded at t."
    dpi: output resolution.

  Returns:
    ``Path(path)``.

  >>> import os, tempfile
  >>> out = tempfile.mkdtemp()
  >>> images = np.zeros((2, 16, 16, 3), np.uint8)
  >>> maps = {"CAM": np.random.default_rng(0).random((2, 16, 16))}
  >>> path = plot_localization_grid(os.path.join(out, "grid.png"), images, maps,
  ...                               gt_boxes=np.array([[2, 2, 9, 9], [4, 4, 12, 12]]))
  >>> path.name, path.stat().st_size > 0
  ('grid.png', True)
  """
  imgs = _as_array(images, "images")
  if imgs.ndim != 4 or imgs.shape[-1] not in (1, 3):
    raise ValueError(f"`images` must be [N, H, W, 3] (RGB) or [N, H, W, 1] (gray), got shape "
                     f"{imgs.shape}.")
  n, h, w = imgs.shape[:3]
  if n < 1:
    raise ValueError("`images` must hold at least one image.")
  if not isinstance(maps, Mapping) or not maps:
    raise ValueError("`maps` must be a non-empty mapping of method name -> [N, H, W] maps.")
  maps_np = {str(k): _as_array(v, f"maps[{k!r}]", 3, (n, h, w)) for k, v in maps.items()}
  for k, v in maps_np.items():
    if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
      raise ValueError(f"`maps[{k!r}]` must be numeric, got dtype {v.dtype}.")

  gt = None
  if gt_boxes is not None:
    gt = _as_array(gt_boxes, "gt_boxes", dtype=np.float64)
    if gt.ndim == 2:
      gt = gt[:, None, :]
    gt = _as_array(gt, "gt_boxes", 3, (n, None, 4))
    if gt_mask is None:
      gmask = np.ones(gt.shape[:2], bool)
    else:
      gmask = _as_array(gt_mask, "gt_mask", 2, gt.shape[:2]).astype(bool)
  elif gt_mask is not None:
    raise ValueError("`gt_mask` was given without `gt_boxes`.")

  preds = {}
  for k, v in (pred_boxes or {}).items():
    if k not in maps_np:
      raise ValueError(f"`pred_boxes` key {k!r} is not among the map names {list(maps_np)}.")
    preds[k] = _as_array(v, f"pred_boxes[{k!r}]", 2, (n, 4), dtype=np.float64)
  iou_np = {}
  for k, v in (ious or {}).items():
    if k not in maps_np:
      raise ValueError(f"`ious` key {k!r} is not among the map names {list(maps_np)}.")
    iou_np[k] = _as_array(v, f"ious[{k!r}]", 1, (n,), dtype=np.float64)
  labs = None if labels is None else _as_array(labels, "labels", 1, (n,))
  prds = None if predictions is None else _as_array(predictions, "predictions", 1, (n,))
  if not 0.0 <= float(alpha) <= 1.0:
    raise ValueError(f"`alpha` must lie in [0, 1], got {alpha!r}.")

  def name_of(c) -> str:
    c = int(c)
    if class_names is not None and 0 <= c < len(class_names):
      return str(class_names[c])
    return str(c)

  disp = _image_for_display(imgs)
  if disp.ndim == 4 and disp.shape[-1] == 1:
    disp = disp[..., 0]
  ncols = 1 + len(maps_np)
  fig = _new_figure(panel_size * ncols, panel_size * n * 1.08)
  axes = fig.subplots(n, ncols, squeeze=False)
  for i in range(n):
    title = []
    if labs is not None:
      title.append(f"gt: {name_of(labs[i])}")
    if prds is not None:
      mark = "" if labs is None else (" ✓" if int(prds[i]) == int(labs[i]) else " ✗")
      title.append(f"pred: {name_of(prds[i])}{mark}")
    panels = [("image", None)] + list(maps_np.items())
    for j, (name, m) in enumerate(panels):
      ax = axes[i, j]
      ax.imshow(disp[i], cmap=None if disp.ndim == 4 else "gray", vmin=0.0, vmax=1.0,
                interpolation="nearest")
      if m is not None:
        ax.imshow(_map_for_display(m[i]), cmap=cmap, alpha=float(alpha), vmin=0.0, vmax=1.0,
                  interpolation="nearest")
      if gt is not None:
        for box, ok in zip(gt[i], gmask[i]):
          if ok:
            _draw_box(ax, box, _GT_COLOR)
      if name in preds:
        _draw_box(ax, preds[name][i], _PRED_COLOR, linestyle="--")
      if m is None:
        ax.set_title("\n".join(title) if title else "image", fontsize=8)
      else:
        extra = f"\nIoU {iou_np[name][i]:.2f}" if name in iou_np else ""
        ax.set_title(f"{name}{extra}", fontsize=8)
      ax.set_xlim(-0.5, w - 0.5)
      ax.set_ylim(h - 0.5, -0.5)
      ax.set_xticks([])
      ax.set_yticks([])
  if colorbar:
    bar = fig.colorbar(cm.ScalarMappable(mcolors.Normalize(0.0, 1.0), cmap=cmap),
                       ax=axes.ravel().tolist(), fraction=0.03, pad=0.02,
                       shrink=min(1.0, 0.5 + 0.15 * n))
    bar.set_label("map value (per-image min–max)", fontsize=7)
    bar.ax.tick_params(labelsize=7)
  handles = []
  if gt is not None:
    handles.append(Line2D([], [], color=_GT_COLOR, linewidth=2.0, label="ground-truth box"))
  if preds:
    handles.append(Line2D([], [], color=_PRED_COLOR, linewidth=2.0, linestyle="--",
                          label="predicted box (map > t)"))
  fig.canvas.draw()  # positions of the panels after the colour bar took its room
  bottom = min(a.get_position().y0 for a in axes[-1])
  left = axes[-1, 0].get_position().x0
  gap = 0.08 / fig.get_figheight()  # inches -> figure fraction
  if handles:
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(left, bottom - gap),
               ncol=len(handles), fontsize=8, frameon=False, handlelength=2.5,
               borderaxespad=0.0, borderpad=0.0)
    gap += 0.3 / fig.get_figheight()
  if caption:
    import textwrap  # pylint: disable=g-import-not-at-top
    text = "\n".join(textwrap.fill(par, max(40, int(panel_size * ncols * 14)))
                      for par in str(caption).split("\n"))
    fig.text(left, bottom - gap, text, ha="left", va="top", fontsize=7.5, color="#333333")
  return _save(fig, path, dpi)


def plot_threshold_curves(
    path: str | os.PathLike,
    thresholds: Any,
    curves: Mapping[str, Any],
    *,
    mark_best: bool = True,
    reference_threshold: float | None = None,
    baselines: Mapping[str, float] | None = None,
    xlabel: str = "CAM threshold",
    ylabel: str = "box accuracy (%)",
    title: str | None = None,
    caption: str | None = None,
    dpi: int = 120,
) -> Path:
  """Accuracy against map threshold for several curves (methods × IoU thresholds).

  The legend sits outside the axes (right), so it never hides a curve; each curve has its
  own line style and marker (markers at staggered positions), so curves that coincide
  exactly stay visible.

  Args:
    path: output ``.png``.
    thresholds: ``[T]`` increasing map thresholds (e.g. 0, 0.01, …, 0.99).
    curves: label -> ``[T]`` accuracy (e.g. ``{"infoCAM IoU≥0.5": ..., "CAM IoU≥0.5": ...}``).
      NaN points are left out of the line.
    mark_best: mark each curve's maximum with a large dot and its threshold in the legend
      (the first maximum on ties, as MaxBoxAcc picks it).
    reference_threshold: draw a vertical dotted line there (e.g. the paper's 0.2).
    baselines: label -> accuracy of a method that has no CAM threshold (e.g. the centred
      box, whose parameter is a box size), each drawn as a horizontal line across the
      axes and named in the legend with its value.
    caption: optional text under the figure (e.g. which split chose the threshold).

  Returns:
    ``Path(path)``.

  Example::

    plot_threshold_curves("curves.png", np.linspace(0, 0.99, 100),
                          {"CAM": cam_acc, "infoCAM": info_acc},
                          baselines={"centred box (best size)": 41.3})

  >>> import os, tempfile
  >>> out = tempfile.mkdtemp()
  >>> thresholds = np.arange(0, 1, 0.1)
  >>> curves = {"CAM": 50 - 40 * (thresholds - 0.3) ** 2, "infoCAM": 55 - 40 * (thresholds - 0.2) ** 2}
  >>> path = plot_threshold_curves(os.path.join(out, "curves.png"), thresholds, curves,
  ...                              reference_threshold=0.2)
  >>> path.name
  'curves.png'
  """
  t = _as_array(thresholds, "thresholds", 1, dtype=np.float64)
  if t.size < 1:
    raise ValueError("`thresholds` must not be empty.")
  if not isinstance(curves, Mapping) or not curves:
    raise ValueError("`curves` must be a non-empty mapping of label -> [T] values.")
  base = {}
  for k, v in (baselines or {}).items():
    try:
      base[str(k)] = float(v)
    except (TypeError, ValueError):
      raise ValueError(f"`baselines[{k!r}]` must be a number, got {v!r}.") from None
  ys = {str(label): _as_array(values, f"curves[{label!r}]", 1, (t.size,), dtype=np.float64)
        for label, values in curves.items()}
  fig = _new_figure(6.0, 4.0)
  ax = fig.subplots()
  n = len(ys)
  every = max(1, t.size // 8)
  for idx, (label, y) in enumerate(ys.items()):
    line, = ax.plot(t, y, label=label, linewidth=max(1.0, 2.6 - 0.45 * idx),
                    linestyle=_LINESTYLES[idx % len(_LINESTYLES)],
                    marker=_MARKERS[idx % len(_MARKERS)], markersize=4.5,
                    markevery=(int(idx * every / max(n, 1)) % every, every),
                    markerfacecolor="none" if idx % 2 else None, zorder=2 + idx)
    if mark_best and np.any(np.isfinite(y)):
      best = int(np.nanargmax(y))
      ax.plot([t[best]], [y[best]], marker=_MARKERS[idx % len(_MARKERS)], color=line.get_color(),
              markersize=9, markeredgecolor="black", linestyle="none", zorder=20 + idx)
      line.set_label(f"{label} (best {y[best]:.2f} at {t[best]:.2f})")
  for idx, (label, value) in enumerate(base.items()):
    ax.axhline(value, color=("0.25", "0.55", "0.4")[idx % 3], linewidth=1.3,
               linestyle=(0, (6, 2, 1, 2)), label=f"{label}: {value:.2f} (no threshold)",
               zorder=1)
  if reference_threshold is not None:
    ax.axvline(float(reference_threshold), color="gray", linestyle=":", linewidth=1.0,
               label=f"threshold {float(reference_threshold):g}")
  return _finish(fig, ax, path, dpi, xlabel, ylabel, title, legend_fontsize=7,
                 legend_outside=True, caption=caption)


def plot_lines(
    path: str | os.PathLike,
    x: Any,
    series: Mapping[str, Any],
    *,
    errors: Mapping[str, Any] | None = None,
    reference: Any | None = None,
    reference_label: str = "true value",
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    logx: bool = False,
    dpi: int = 120,
) -> Path:
  """Lines with optional error bars and a reference curve.

  E.g. the synthetic-MI experiment: ``x`` = dimension (or sample size),
  ``series`` = estimator -> mean estimate (nats), ``errors`` = estimator ->
  standard error or ``[2, n]`` lower/upper error, ``reference`` = true MI.

  Returns:
    ``Path(path)``.

  >>> import os, tempfile
  >>> out = tempfile.mkdtemp()
  >>> dims = [2, 4, 8]
  >>> path = plot_lines(os.path.join(out, "mi.png"), dims, {"softmax": [1.1, 1.0, 0.9]},
  ...                   errors={"softmax": [0.02, 0.02, 0.03]}, reference=[1.2, 1.2, 1.2],
  ...                   xlabel="dimension d", ylabel="MI (nats)")
  >>> path.suffix
  '.png'
  """
  xs = _as_array(x, "x", 1, dtype=np.float64)
  n = xs.size
  if n < 1:
    raise ValueError("`x` must not be empty.")
  errors = _check_series(series, errors)
  fig = _new_figure(6.0, 4.0)
  ax = fig.subplots()
  if reference is not None:
    ref = _as_array(reference, "reference", 1, (n,), dtype=np.float64)
    ax.plot(xs, ref, "k--", linewidth=1.5, label=reference_label)
  for label, values in series.items():
    y = _as_array(values, f"series[{label!r}]", 1, (n,), dtype=np.float64)
    if label in errors:
      e = _as_array(errors[label], f"errors[{label!r}]", dtype=np.float64)
      if e.shape not in ((n,), (2, n)):
        raise ValueError(f"`errors[{label!r}]` must have shape ({n},) or (2, {n}), got "
                         f"{e.shape}.")
      if np.any(e < 0):
        raise ValueError(f"`errors[{label!r}]` must be non-negative.")
      ax.errorbar(xs, y, yerr=e, marker="o", markersize=4, capsize=3, label=str(label))
    else:
      ax.plot(xs, y, marker="o", markersize=4, label=str(label))
  if logx:
    ax.set_xscale("log")
  return _finish(fig, ax, path, dpi, xlabel, ylabel, title)


def plot_bars(
    path: str | os.PathLike,
    categories: Sequence[Any],
    series: Mapping[str, Any],
    *,
    errors: Mapping[str, Any] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    rotate_labels: bool | None = None,
    value_labels: bool | None = None,
    value_format: str = "{:.3g}",
    caption: str | None = None,
    dpi: int = 120,
) -> Path:
  """Grouped bars: one group per category, one bar per series.

  E.g. per-class accuracy of softmax vs PC-softmax: ``categories`` = class
  names, ``series`` = {"softmax": [K], "PC-softmax": [K]}.

  A bar of height 0 is invisible, so every zero bar is marked: a short tick at 0 in the
  series' colour and a "0" label, whatever ``value_labels`` says.

  Args:
    value_labels: write each bar's value above it (``value_format``). Default (None):
      when there are at most 40 bars in all; zero bars are labelled always.
    value_format: ``str.format`` pattern of the labels, e.g. ``"{:.1f}"``.
    caption: optional text under the figure.

  Returns:
    ``Path(path)``.

  >>> import os, tempfile
  >>> out = tempfile.mkdtemp()
  >>> path = plot_bars(os.path.join(out, "bars.png"), ["CUB", "Tiny-ImageNet"],
  ...                  {"CAM": [45.0, 40.1], "infoCAM": [55.8, 43.3]}, ylabel="Top-1 Loc (%)")
  >>> path.exists()
  True
  """
  cats = [str(c) for c in categories]
  n = len(cats)
  if n < 1:
    raise ValueError("`categories` must not be empty.")
  errors = _check_series(series, errors)
  s = len(series)
  width = 0.8 / s
  fig = _new_figure(max(6.0, 0.35 * n * max(1, s) + 1.5), 4.0)
  ax = fig.subplots()
  pos = np.arange(n, dtype=np.float64)
  label_all = value_labels if value_labels is not None else n * s <= 40
  fontsize = 7 if n * s <= 40 else 5
  for idx, (label, values) in enumerate(series.items()):
    y = _as_array(values, f"series[{label!r}]", 1, (n,), dtype=np.float64)
    yerr = None
    if label in errors:
      yerr = _as_array(errors[label], f"errors[{label!r}]", 1, (n,), dtype=np.float64)
    x = pos + (idx - (s - 1) / 2) * width
    bars = ax.bar(x, y, width, yerr=yerr, capsize=2 if yerr is not None else 0,
                  label=str(label))
    color = bars.patches[0].get_facecolor() if bars.patches else None
    zero = y == 0
    if np.any(zero):  # a visible stub where a bar would be, in the series' colour
      ax.plot(x[zero], y[zero], marker="_", markersize=max(4.0, 40.0 * width * 6.0 / n),
              markeredgewidth=2.5, linestyle="none", color=color, clip_on=False)
    shown = np.isfinite(y) & (zero | label_all)
    top = y + (0.0 if yerr is None else np.nan_to_num(yerr))
    for xi, yi, ti in zip(x[shown], y[shown], top[shown]):
      ax.annotate(value_format.format(yi), (xi, max(ti, 0.0)), xytext=(0, 2),
                  textcoords="offset points", ha="center", va="bottom", fontsize=fontsize,
                  rotation=90 if n * s > 40 else 0)
  ax.margins(y=0.08)
  ax.set_xticks(pos)
  rotate = rotate_labels if rotate_labels is not None else (n > 8 or max(map(len, cats)) > 6)
  ax.set_xticklabels(cats, rotation=60 if rotate else 0, ha="right" if rotate else "center",
                     fontsize=7 if n > 20 else 9)
  return _finish(fig, ax, path, dpi, xlabel, ylabel, title, grid_axis="y", caption=caption,
                 legend_outside=True)



def plot_mi_errors(
    path: str | os.PathLike,
    x: Any,
    series: Mapping[str, Any],
    *,
    errors: Mapping[str, Any] | None = None,
    target: float | None = 0.01,
    separate: Sequence[str] | None = None,
    error_label: str = "error bars: ± 1 standard error",
    xlabel: str = "dimension d",
    ylabel: str = "estimate − true MI (nats)",
    title: str | None = None,
    caption: str | None = None,
    dpi: int = 120,
) -> Path:
  """Errors of MI estimators (nats) against a setting, with the target band.

  E.g. the synthetic-MI study: ``x`` = dimensions d, ``series`` = estimator -> [n]
  (estimate − true MI), ``errors`` = estimator -> [n] standard errors (or [2, n] lower /
  upper). Draws a zero line and the ±``target`` band on every panel, staggers the series
  sideways so their error bars do not overlap, and puts the curves named in ``separate``
  (e.g. a softmax read with + log K on imbalanced data, off by +0.12 nats) on a second
  panel with its own y scale, so the accurate curves are not squashed together. By default
  ``separate`` holds every series that leaves ±5·``target`` anywhere (none when
  ``target`` is None). The legend (below the panels) names the band and the error bars.

  Returns:
    ``Path(path)``.

  Example::

    plot_mi_errors("mi.png", [1, 2, 5, 10], {"PC-softmax": err_pc, "softmax + log K": err_sm},
                   errors={"PC-softmax": se_pc, "softmax + log K": se_sm})

  >>> import os, tempfile
  >>> out = tempfile.mkdtemp()
  >>> path = plot_mi_errors(os.path.join(out, "errors.png"), [2, 4, 8],
  ...                       {"PC-softmax": [0.004, -0.002, 0.006], "softmax": [0.12, 0.11, 0.13]},
  ...                       errors={"PC-softmax": [0.003] * 3, "softmax": [0.003] * 3})
  >>> path.exists()
  True
  """
  xs = _as_array(x, "x", 1, dtype=np.float64)
  n = xs.size
  if n < 1:
    raise ValueError("`x` must not be empty.")
  if np.any(~np.isfinite(xs)):
    raise ValueError("`x` must be finite.")
  errors = _check_series(series, errors)
  if target is not None and not (np.isfinite(target) and target > 0):
    raise ValueError(f"`target` must be a positive number of nats or None, got {target!r}.")
  ys = {str(k): _as_array(v, f"series[{k!r}]", 1, (n,), dtype=np.float64)
        for k, v in series.items()}
  es = {}
  for k, v in errors.items():
    e = _as_array(v, f"errors[{k!r}]", dtype=np.float64)
    if e.shape not in ((n,), (2, n)):
      raise ValueError(f"`errors[{k!r}]` must have shape ({n},) or (2, {n}), got {e.shape}.")
    if np.any(e < 0):
      raise ValueError(f"`errors[{k!r}]` must be non-negative.")
    es[str(k)] = e
  if separate is None:
    limit = None if target is None else 5.0 * target
    apart = [k for k, y in ys.items()
             if limit is not None and np.any(np.abs(np.nan_to_num(y)) > limit)]
  else:
    apart = [str(k) for k in separate]
    for k in apart:
      if k not in ys:
        raise ValueError(f"`separate` entry {k!r} is not among the series {list(ys)}.")
  if len(apart) == len(ys):
    apart = []  # nothing left for a main panel: one panel
  groups = [[k for k in ys if k not in apart]] + ([apart] if apart else [])
  fig = _new_figure(5.2 * len(groups) + 0.6, 4.2)
  axes = fig.subplots(1, len(groups), squeeze=False)[0]
  logx = n > 1 and xs.min() > 0 and xs.max() / xs.min() >= 5
  s = len(ys)
  styles = {k: i for i, k in enumerate(ys)}
  handles: dict[str, Any] = {}
  for ax, group in zip(axes, groups):
    ax.axhline(0.0, color="black", linewidth=1.0, zorder=1)
    if target is not None:
      band = ax.axhspan(-target, target, color="#2ca02c", alpha=0.15, zorder=0, linewidth=0)
      handles[f"target band ±{target:g} nats"] = band
    for k in group:
      i = styles[k]
      shift = (i - (s - 1) / 2) * 0.035
      xi = xs * (1.0 + shift) if logx else xs + shift * (np.ptp(xs) or 1.0)
      kw = dict(marker=_MARKERS[i % len(_MARKERS)], markersize=5,
                linestyle=_LINESTYLES[i % len(_LINESTYLES)], linewidth=1.4,
                color=f"C{i % 10}", label=k, zorder=3)
      if k in es:
        h = ax.errorbar(xi, ys[k], yerr=es[k], capsize=3, elinewidth=1.0, **kw)
      else:
        h, = ax.plot(xi, ys[k], **kw)
      handles[k] = h
    if logx:
      ax.set_xscale("log")
      ax.set_xticks(xs)
      ax.set_xticklabels([f"{v:g}" for v in xs])
      ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)
    if target is not None:
      lo, hi = ax.get_ylim()
      pad = 0.5 * target
      ax.set_ylim(min(lo, -target - pad), max(hi, target + pad))
  axes[0].set_ylabel(ylabel)
  if len(groups) == 2:
    axes[0].set_title("near zero", fontsize=9)
    axes[1].set_title("off the left panel's scale (own y axis)", fontsize=9)
    axes[1].set_ylabel(ylabel)
  if title:
    fig.suptitle(title, fontsize=10)
  order = [k for k in ys] + [k for k in handles if k not in ys]
  leg = fig.legend([handles[k] for k in order], order, loc="upper center",
                   bbox_to_anchor=(0.5, 0.0), ncol=2 if len(order) > 3 else len(order),
                   fontsize=7.5, frameon=False, title=error_label if es else None,
                   title_fontsize=7.5)
  fig.tight_layout()
  if caption:
    fig.canvas.draw()
    box = leg.get_window_extent().transformed(fig.transFigure.inverted())
    import textwrap  # pylint: disable=g-import-not-at-top
    text = "\n".join(textwrap.fill(p, max(40, int(fig.get_figwidth() * 14)))
                     for p in str(caption).split("\n"))
    fig.text(0.02, box.y0 - 0.1 / fig.get_figheight(), text, ha="left", va="top",
             fontsize=7.5, color="#333333")
  return _save(fig, path, dpi)
