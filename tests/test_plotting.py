"""Tests of infocam_jax.plotting: PNGs are written, decodable, and inputs are validated."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest

from infocam_jax import plotting

N, H, W = 2, 24, 32
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read_png(path: Path) -> np.ndarray:
  data = path.read_bytes()
  assert data[:8] == _PNG_MAGIC
  img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
  assert img is not None and img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
  return img


def _grid_inputs(seed=0):
  rng = np.random.default_rng(seed)
  images = np.full((N, H, W, 3), 128, np.uint8)
  yy, xx = np.mgrid[:H, :W]
  blob = np.exp(-((yy - 10) ** 2 + (xx - 14) ** 2) / 30.0)
  maps = {"CAM": np.stack([blob] * N), "infoCAM": rng.normal(size=(N, H, W))}
  gt = np.array([[[4, 3, 20, 18], [0, 0, W - 1, H - 1]]] * N, np.float32)
  gt_mask = np.array([[True, False]] * N)
  pred = {"CAM": np.array([[6, 5, 22, 17]] * N), "infoCAM": np.array([[0, 0, 1, 1]] * N)}
  return images, maps, gt, gt_mask, pred


def test_grid_writes_png_and_draws_boxes(tmp_path):
  images, maps, gt, gt_mask, pred = _grid_inputs()
  titles = dict(ious={"CAM": [0.61, 0.5], "infoCAM": [0.0, 0.01]}, labels=[1, 2],
                predictions=[1, 0], class_names=["a", "b", "c"])
  out = plotting.plot_localization_grid(
      tmp_path / "sub" / "grid.png", images, maps, gt_boxes=gt, gt_mask=gt_mask,
      pred_boxes=pred, **titles)
  assert out == tmp_path / "sub" / "grid.png" and out.stat().st_size > 1000
  with_boxes = _read_png(out)
  bare = _read_png(plotting.plot_localization_grid(tmp_path / "bare.png", images, maps, **titles))
  # The box legend adds a strip under the grid; the panels above it have the same layout.
  assert with_boxes.shape[1:] == bare.shape[1:] and with_boxes.shape[0] > bare.shape[0]
  assert np.any(with_boxes[:bare.shape[0]] != bare)
  # The GT box colour (pure-ish green) appears only when boxes are drawn.
  def green(img):  # BGR(A) from cv2
    return np.sum((img[..., 1] > 200) & (img[..., 0] < 60) & (img[..., 2] < 60))
  assert green(with_boxes) > 50 and green(bare) == 0


def test_grid_accepts_float_images_single_box_and_constant_maps(tmp_path):
  images, maps, gt, _, _ = _grid_inputs(1)
  normalised = (images.astype(np.float32) - 120.0) / 60.0  # mean/std style, not in [0, 1]
  maps = {"const": np.zeros((N, H, W)), "nan": np.full((N, H, W), np.nan)}
  out = plotting.plot_localization_grid(tmp_path / "g.png", normalised, maps, gt_boxes=gt[:, 0])
  _read_png(out)
  gray = plotting.plot_localization_grid(tmp_path / "gray.png", images[..., :1], maps)
  _read_png(gray)


def test_grid_validates_inputs(tmp_path):
  images, maps, gt, gt_mask, pred = _grid_inputs()
  p = tmp_path / "x.png"
  with pytest.raises(ValueError, match="images"):
    plotting.plot_localization_grid(p, images[0], maps)
  with pytest.raises(ValueError, match="maps"):
    plotting.plot_localization_grid(p, images, {})
  with pytest.raises(ValueError, match=r"maps\['CAM'\]"):
    plotting.plot_localization_grid(p, images, {"CAM": maps["CAM"][:, :-1]})
  with pytest.raises(ValueError, match="gt_boxes"):
    plotting.plot_localization_grid(p, images, maps, gt_boxes=gt[..., :3])
  with pytest.raises(ValueError, match="gt_mask"):
    plotting.plot_localization_grid(p, images, maps, gt_boxes=gt, gt_mask=gt_mask[:, :1])
  with pytest.raises(ValueError, match="gt_mask"):
    plotting.plot_localization_grid(p, images, maps, gt_mask=gt_mask)
  with pytest.raises(ValueError, match="pred_boxes"):
    plotting.plot_localization_grid(p, images, maps, pred_boxes={"GradCAM": pred["CAM"]})
  with pytest.raises(ValueError, match="pred_boxes"):
    plotting.plot_localization_grid(p, images, maps, pred_boxes={"CAM": pred["CAM"][:1]})
  with pytest.raises(ValueError, match="ious"):
    plotting.plot_localization_grid(p, images, maps, ious={"CAM": [0.5]})
  with pytest.raises(ValueError, match="labels"):
    plotting.plot_localization_grid(p, images, maps, labels=[1, 2, 3])
  with pytest.raises(ValueError, match="path"):
    plotting.plot_localization_grid(tmp_path / "x.jpg", images, maps)
  assert not p.exists()


def test_threshold_curves(tmp_path):
  t = np.linspace(0.0, 0.99, 100)
  curves = {"CAM IoU≥0.5": 50 * np.sin(3 * t) ** 2,
            "infoCAM IoU≥0.5": 60 * np.sin(2.5 * t) ** 2}
  curves["with NaN"] = np.where(t > 0.9, np.nan, 30 * t)
  marked = _read_png(plotting.plot_threshold_curves(tmp_path / "c.png", t, curves,
                                                    reference_threshold=0.2, title="curves"))
  plain = _read_png(plotting.plot_threshold_curves(tmp_path / "d.png", t, curves,
                                                   mark_best=False))
  assert marked.shape != plain.shape or np.any(marked != plain)
  with pytest.raises(ValueError, match="thresholds"):
    plotting.plot_threshold_curves(tmp_path / "e.png", [], curves)
  with pytest.raises(ValueError, match="curves"):
    plotting.plot_threshold_curves(tmp_path / "e.png", t, {"x": t[:-1]})
  with pytest.raises(ValueError, match="curves"):
    plotting.plot_threshold_curves(tmp_path / "e.png", t, {})
  assert not (tmp_path / "e.png").exists()


def test_lines_and_bars(tmp_path):
  d = [1, 2, 5, 10]
  out = plotting.plot_lines(tmp_path / "mi.png", d, {"softmax": [0.5, 0.9, 1.3, 1.5],
                                                     "PC-softmax": [0.4, 0.8, 1.2, 1.4]},
                            errors={"softmax": [0.02, 0.03, 0.02, 0.05],
                                    "PC-softmax": np.full((2, 4), 0.01)},
                            reference=[0.55, 0.95, 1.35, 1.6], xlabel="d", ylabel="MI (nats)",
                            logx=True)
  _read_png(out)
  with pytest.raises(ValueError, match="errors"):
    plotting.plot_lines(tmp_path / "f.png", d, {"a": d}, errors={"a": [1, 2]})
  with pytest.raises(ValueError, match="errors"):
    plotting.plot_lines(tmp_path / "f.png", d, {"a": d}, errors={"b": d})
  with pytest.raises(ValueError, match="errors"):
    plotting.plot_lines(tmp_path / "f.png", d, {"a": d}, errors={"a": [-1, 0, 0, 0]})
  with pytest.raises(ValueError, match="reference"):
    plotting.plot_lines(tmp_path / "f.png", d, {"a": d}, reference=[1.0])
  names = [f"class {k}" for k in range(12)]
  rng = np.random.default_rng(0)
  bars = plotting.plot_bars(tmp_path / "bars.png", names,
                            {"softmax": rng.random(12), "PC-softmax": rng.random(12)},
                            errors={"softmax": np.full(12, 0.05)}, ylabel="accuracy")
  _read_png(bars)
  with pytest.raises(ValueError, match="series"):
    plotting.plot_bars(tmp_path / "g.png", names, {"softmax": rng.random(11)})
  with pytest.raises(ValueError, match="categories"):
    plotting.plot_bars(tmp_path / "g.png", [], {"softmax": []})
  assert not (tmp_path / "f.png").exists() and not (tmp_path / "g.png").exists()


def test_no_global_backend_or_pyplot_side_effects(tmp_path):
  import sys
  backend = matplotlib.get_backend()
  images, maps, *_ = _grid_inputs()
  plotting.plot_localization_grid(tmp_path / "s.png", images, maps)
  assert matplotlib.get_backend() == backend
  if "matplotlib.pyplot" in sys.modules:
    import matplotlib.pyplot as plt
    assert not plt.get_fignums()  # no figures left open in pyplot's registry


@pytest.fixture
def captured(monkeypatch):
  """The figures the plotting functions save (they are still written to disk)."""
  figs = []
  save = plotting._save

  def spy(fig, path, dpi):
    fig.canvas.draw()
    figs.append(fig)
    return save(fig, path, dpi)

  monkeypatch.setattr(plotting, "_save", spy)
  return figs


def _legend_texts(legend):
  return [t.get_text() for t in legend.get_texts()]


def test_threshold_curves_legend_outside_styles_distinct_and_baselines(tmp_path, captured):
  t = np.linspace(0.0, 0.99, 100)
  region = 50 * np.exp(-((t - 0.3) / 0.2) ** 2)
  curves = {"CAM": 46 * np.exp(-((t - 0.22) / 0.18) ** 2), "CAM + region": region,
            "infoCAM": region.copy()}  # exactly coincident with CAM + region
  _read_png(plotting.plot_threshold_curves(tmp_path / "c.png", t, curves,
                                           baselines={"centred box": 31.4},
                                           caption="box size chosen on val"))
  fig = captured[-1]
  ax = fig.axes[0]
  legend = ax.get_legend()
  # Legend right of the axes: it cannot cover any curve.
  assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
  lines = {ln.get_label(): ln for ln in ax.get_lines()}
  drawn = [lines[k] for k in lines if k.startswith(("CAM (", "CAM + region (", "infoCAM ("))]
  assert len(drawn) == 3
  styles = {(ln.get_linestyle(), ln.get_marker()) for ln in drawn}
  assert len(styles) == 3  # the two coincident curves differ in line style and marker
  base = [ln for k, ln in lines.items() if k.startswith("centred box")]
  assert len(base) == 1 and np.all(np.asarray(base[0].get_ydata(), float) == 31.4)
  assert "centred box: 31.40 (no threshold)" in _legend_texts(legend)
  assert any("box size chosen on val" in txt.get_text() for txt in fig.texts)
  with pytest.raises(ValueError, match="baselines"):
    plotting.plot_threshold_curves(tmp_path / "e.png", t, curves, baselines={"b": "high"})


def test_grid_legend_colorbar_and_caption(tmp_path, captured):
  images, maps, gt, gt_mask, pred = _grid_inputs()
  plotting.plot_localization_grid(tmp_path / "g.png", images, maps, gt_boxes=gt,
                                  gt_mask=gt_mask, pred_boxes=pred,
                                  caption="maps for the ground-truth class; t from val")
  fig = captured[-1]
  assert len(fig.axes) == N * (1 + len(maps)) + 1  # panels + one colour bar
  assert fig.axes[-1].get_ylabel().startswith("map value")
  (legend,) = fig.legends
  assert _legend_texts(legend) == ["ground-truth box", "predicted box (map > t)"]
  styles = [h.get_linestyle() for h in legend.legend_handles]
  assert styles == ["-", "--"]
  assert any("ground-truth class" in txt.get_text() for txt in fig.texts)
  # Without boxes there is nothing to explain: no legend; colour bar can be turned off.
  plotting.plot_localization_grid(tmp_path / "h.png", images, maps, colorbar=False)
  assert not captured[-1].legends and len(captured[-1].axes) == N * (1 + len(maps))
  plotting.plot_localization_grid(tmp_path / "i.png", images, maps, gt_boxes=gt)
  assert _legend_texts(captured[-1].legends[0]) == ["ground-truth box"]


def test_bars_label_zero_bars(tmp_path, captured):
  cats = [f"class {k}" for k in range(60)]
  sm = np.linspace(1.0, 99.0, 60)
  sm[[3, 7]] = 0.0
  plotting.plot_bars(tmp_path / "b.png", cats, {"softmax": sm, "PC": np.full(60, 50.0)})
  ax = captured[-1].axes[0]
  labels = [a.get_text() for a in ax.texts]
  assert labels == ["0", "0"]  # 120 bars: only the zero bars are labelled
  plotting.plot_bars(tmp_path / "c.png", cats[:4], {"softmax": [0.0, 12.5, 99.0, 3.0]},
                     value_format="{:.1f}")
  labels = [a.get_text() for a in captured[-1].axes[0].texts]
  assert labels == ["0.0", "12.5", "99.0", "3.0"]  # few bars: every value
  plotting.plot_bars(tmp_path / "d.png", cats[:4], {"softmax": [0.0, 12.5, 99.0, 3.0]},
                     value_labels=False)
  assert [a.get_text() for a in captured[-1].axes[0].texts] == ["0"]


def _mi_inputs():
  d = [1, 2, 5, 10]
  series = {"balanced: PC": [-0.001, -0.0013, -0.002, -0.0012],
            "imbalanced: softmax + log K": [0.119, 0.1192, 0.1178, 0.1191],
            "imbalanced: PC": [-0.0004, -0.0005, -0.0021, -0.0005]}
  errors = {k: [0.005, 0.006, 0.003, 0.0008] for k in series}
  return d, series, errors


def test_mi_errors_band_separate_panel_and_error_legend(tmp_path, captured):
  d, series, errors = _mi_inputs()
  _read_png(plotting.plot_mi_errors(tmp_path / "mi.png", d, series, errors=errors,
                                    error_label="error bars: ± 1 paired standard error"))
  fig = captured[-1]
  left, right = fig.axes
  labels_of = lambda ax: {c.get_label() for c in ax.containers}
  # The +0.12-nat curve leaves ±5 x target and gets its own panel and scale.
  assert labels_of(right) == {"imbalanced: softmax + log K"}
  assert labels_of(left) == {"balanced: PC", "imbalanced: PC"}
  assert left.get_ylim()[1] < 0.05 < 0.119 < right.get_ylim()[1]
  for ax in (left, right):  # the ±0.01-nat band on both panels
    (band,) = ax.patches  # axhspan
    ext = band.get_extents().transformed(ax.transData.inverted())
    np.testing.assert_allclose([ext.y0, ext.y1], [-0.01, 0.01], atol=1e-9)
  (legend,) = fig.legends
  assert legend.get_title().get_text() == "error bars: ± 1 paired standard error"
  assert "target band ±0.01 nats" in _legend_texts(legend)
  # Explicit choice, and one panel when nothing is set apart.
  plotting.plot_mi_errors(tmp_path / "one.png", d, series, errors=errors, separate=[])
  assert len(captured[-1].axes) == 1
  with pytest.raises(ValueError, match="separate"):
    plotting.plot_mi_errors(tmp_path / "x.png", d, series, separate=["nope"])
  with pytest.raises(ValueError, match="target"):
    plotting.plot_mi_errors(tmp_path / "x.png", d, series, target=-1.0)
  with pytest.raises(ValueError, match="errors"):
    plotting.plot_mi_errors(tmp_path / "x.png", d, series, errors={"balanced: PC": [1.0]})
  assert not (tmp_path / "x.png").exists()
