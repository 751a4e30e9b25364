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
  assert with_boxes.shape == bare.shape
  assert np.any(with_boxes != bare)
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
