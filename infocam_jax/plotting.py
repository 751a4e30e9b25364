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

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = [
    "plot_localization_grid",
    "plot_threshold_curves",
    "plot_lines",
    "plot_bars",
]

_GT_COLOR = "#00e000"
_PRED_COLOR = "#ff2020"


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
            title: str | None, *, legend_fontsize: int = 8, grid_axis: str = "both") -> Path:
  """Labels, title, grid and legend of a one-axes chart, then `_save`."""
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(True, axis=grid_axis, alpha=0.3)
  ax.legend(fontsize=legend_fontsize, loc="best")
  return _save(fig, path, dpi)


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
  m = m.astype(np.float64)
  if not np.all(np.isfinite(m)) or m.max() == m.min():
    return np.zeros_like(m)
  if m.min() >= 0.0 and m.max() <= 1.0:
    return m
  return (m - m.min()) / (m.max() - m.min())


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
    dpi: int = 100,
) -> Path:
  """A grid: one row per image; the image, then one heatmap overlay per method.

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
    dpi: output resolution.

  Returns:
    ``Path(path)``.
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
  return _save(fig, path, dpi)


def plot_threshold_curves(
    path: str | os.PathLike,
    thresholds: Any,
    curves: Mapping[str, Any],
    *,
    mark_best: bool = True,
    reference_threshold: float | None = None,
    xlabel: str = "CAM threshold",
    ylabel: str = "box accuracy (%)",
    title: str | None = None,
    dpi: int = 120,
) -> Path:
  """Accuracy against map threshold for several curves (methods × IoU thresholds).

  Args:
    path: output ``.png``.
    thresholds: ``[T]`` increasing map thresholds (e.g. 0, 0.01, …, 0.99).
    curves: label -> ``[T]`` accuracy (e.g. ``{"infoCAM IoU≥0.5": ..., "CAM IoU≥0.5": ...}``).
      NaN points are left out of the line.
    mark_best: mark each curve's maximum with a dot and its threshold in the legend
      (the first maximum on ties, as MaxBoxAcc picks it).
    reference_threshold: draw a vertical dotted line there (e.g. the paper's 0.2).

  Returns:
    ``Path(path)``.
  """
  t = _as_array(thresholds, "thresholds", 1, dtype=np.float64)
  if t.size < 1:
    raise ValueError("`thresholds` must not be empty.")
  if not isinstance(curves, Mapping) or not curves:
    raise ValueError("`curves` must be a non-empty mapping of label -> [T] values.")
  fig = _new_figure(6.0, 4.0)
  ax = fig.subplots()
  for label, values in curves.items():
    y = _as_array(values, f"curves[{label!r}]", 1, (t.size,), dtype=np.float64)
    line, = ax.plot(t, y, label=str(label), linewidth=1.5)
    if mark_best and np.any(np.isfinite(y)):
      k = int(np.nanargmax(y))
      ax.plot([t[k]], [y[k]], "o", color=line.get_color(), markersize=6)
      line.set_label(f"{label} (best {y[k]:.2f} at {t[k]:.2f})")
  if reference_threshold is not None:
    ax.axvline(float(reference_threshold), color="gray", linestyle=":", linewidth=1.0,
               label=f"threshold {float(reference_threshold):g}")
  return _finish(fig, ax, path, dpi, xlabel, ylabel, title, legend_fontsize=7)


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
    dpi: int = 120,
) -> Path:
  """Grouped bars: one group per category, one bar per series.

  E.g. per-class accuracy of softmax vs PC-softmax: ``categories`` = class
  names, ``series`` = {"softmax": [K], "PC-softmax": [K]}.

  Returns:
    ``Path(path)``.
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
  for idx, (label, values) in enumerate(series.items()):
    y = _as_array(values, f"series[{label!r}]", 1, (n,), dtype=np.float64)
    yerr = None
    if label in errors:
      yerr = _as_array(errors[label], f"errors[{label!r}]", 1, (n,), dtype=np.float64)
    ax.bar(pos + (idx - (s - 1) / 2) * width, y, width, yerr=yerr, capsize=2 if yerr is not None
           else 0, label=str(label))
  ax.set_xticks(pos)
  rotate = rotate_labels if rotate_labels is not None else (n > 8 or max(map(len, cats)) > 6)
  ax.set_xticklabels(cats, rotation=60 if rotate else 0, ha="right" if rotate else "center",
                     fontsize=7 if n > 20 else 9)
  return _finish(fig, ax, path, dpi, xlabel, ylabel, title, grid_axis="y")

