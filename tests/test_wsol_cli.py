"""The wsolevaluation drop-in (``infocam-wsol-eval``): readers, numbers, streaming, errors.

The reference below is the loop of clovaai/wsolevaluation's ``evaluation.py`` written here
from its documented procedure, with OpenCV doing the contour work as the peer does:

* boxes: ``image_ids.txt`` order; GT ``int(c * 224 / W)`` (``resize_bbox``, sizes (W, H));
  each saved map as its float64 values, ``gray = uint8(255 m)``, ``cv2.threshold`` at
  ``int(t * max(gray))`` (``THRESH_BINARY``), ``cv2.findContours(RETR_TREE,
  CHAIN_APPROX_SIMPLE)``; no contour -> box ``(0, 0, 0, 0)``; V1 = ``max(contours,
  key=cv2.contourArea)``, V2 = every contour; box ``(x, y, min(x + w, W - 1), min(y + h, H -
  1))``; IoU with "+1" and the clamp, float64; hit when ``IoU >= iou / 100``; accuracy =
  ``hits * 100 / count``; MaxBoxAcc = max over thresholds at IoU 50, ``--multi_iou_eval`` the
  average over the list;
* masks: instance masks and the ignore mask read gray, ``INTER_NEAREST`` to 224, ``> 0.5``;
  ignore = ignore minus foreground; ``np.histogram`` of the foreground / background scores on
  the edges ``thresholds + [1, 2, 3]``; AUC of the precision-recall curve as ``compute``.

The test data are generated here in the peer's file formats (metadata lines as in its
``metadata/`` folder, ``<image_id>.npy`` maps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest

from infocam_jax.wsol import box_accuracy, cli, ground_truth, metadata, pxap, scoremaps

cv2 = pytest.importorskip("cv2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------
# Reference: the peer's evaluation loop.
# ----------------------------------------------------------------------------


def _ref_resize_bbox(box, size_wh):
  x0, y0, x1, y1 = map(float, box)
  w, h = map(float, size_wh)
  return int(x0 * 224.0 / w), int(y0 * 224.0 / h), int(x1 * 224.0 / w), int(y1 * 224.0 / h)


def _ref_iou(a, b):
  a = np.asarray(a)[:, None, :]
  b = np.asarray(b)[None, :, :]
  iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
  ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
  inter = iw * ih
  area = lambda x: (x[..., 2] - x[..., 0] + 1) * (x[..., 3] - x[..., 1] + 1)
  den = area(a) + area(b) - inter
  bad = den <= 0
  den = np.where(bad, 1, den)
  return np.where(bad, 0.0, inter / den)


def _ref_boxes(m, thresholds, multi):
  h, w = m.shape
  gray = np.expand_dims((m * 255).astype(np.uint8), 2)
  out = []
  for t in thresholds:
    _, fg = cv2.threshold(gray, int(t * np.max(gray)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(fg, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) == 0:
      out.append([[0, 0, 0, 0]])
      continue
    if not multi:
      contours = [max(contours, key=cv2.contourArea)]
    bs = []
    for c in contours:
      x, y, bw, bh = cv2.boundingRect(c)
      bs.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
    out.append(bs)
  return out


def reference_boxes(metadata_root, dataset, split, scoremap_root, *, interval=0.01, multi=False,
                    multi_iou=False, ious=(30, 50, 70)):
  """The peer's evaluate_wsol for a box dataset: (performance, {iou: accuracy curve})."""
  root = os.path.join(metadata_root, dataset, split)
  ids = [l.strip("\n") for l in open(os.path.join(root, "image_ids.txt"))]
  sizes = {}
  for l in open(os.path.join(root, "image_sizes.txt")):
    i, w, h = l.strip("\n").split(",")
    sizes[i] = (int(w), int(h))
  gts = {}
  for l in open(os.path.join(root, "localization.txt")):
    i, *c = l.strip("\n").split(",")
    gts.setdefault(i, []).append(_ref_resize_bbox([int(v) for v in c], sizes[i]))
  thresholds = list(np.arange(0, 1, interval))
  correct = {d: np.zeros(len(thresholds)) for d in ious}
  cnt = 0
  for i in ids:
    m = np.load(os.path.join(scoremap_root, i + ".npy")).astype(np.float64)
    assert not np.isnan(m).any() and m.min() >= 0 and m.max() <= 1
    per_t = _ref_boxes(m, thresholds, multi)
    best = [float(_ref_iou(np.asarray(b), np.asarray(gts[i])).max(1).max()) for b in per_t]
    for d in ious:
      correct[d][np.where(np.asarray(best) >= d / 100)[0]] += 1
    cnt += 1
  curves = {d: correct[d] * 100. / float(cnt) for d in ious}
  accs = [curves[d].max() for d in ious]
  perf = np.average(accs) if multi_iou else accs[list(ious).index(50)]
  return perf, curves


def reference_pxap(metadata_root, mask_root, split, scoremap_root, interval=0.01):
  root = os.path.join(metadata_root, "OpenImages", split)
  ids = [l.strip("\n") for l in open(os.path.join(root, "image_ids.txt"))]
  masks, ignore = {}, {}
  for l in open(os.path.join(root, "localization.txt")):
    i, mp, ip = l.strip("\n").split(",")
    if i in masks:
      masks[i].append(mp)
    else:
      masks[i], ignore[i] = [mp], ip
  th = list(np.arange(0, 1, interval))
  edges = np.append(th, [1.0, 2.0, 3.0])
  t_hist = np.zeros(len(th) + 2)
  f_hist = np.zeros(len(th) + 2)
  base = os.path.join(mask_root, "OpenImages")

  def load(p):
    x = np.float32(cv2.imread(os.path.join(base, p), cv2.IMREAD_GRAYSCALE))
    return cv2.resize(x, (224, 224), interpolation=cv2.INTER_NEAREST)

  for i in ids:
    m = np.load(os.path.join(scoremap_root, i + ".npy")).astype(np.float64)
    fg = np.stack([load(p) > 0.5 for p in masks[i]]).any(0)
    ign = np.logical_and(load(ignore[i]) > 0.5, ~fg)
    gt = fg.astype(np.uint8) + 255 * ign.astype(np.uint8)
    t_hist += np.histogram(m[gt == 1], bins=edges)[0]
    f_hist += np.histogram(m[gt == 0], bins=edges)[0]
  tp = t_hist[::-1].cumsum()
  fn = t_hist.sum() - tp
  fp = f_hist[::-1].cumsum()
  nz = (tp + fp) != 0
  with np.errstate(invalid="ignore", divide="ignore"):
    prec = tp / (tp + fp)
    rec = tp / (tp + fn)
  return (prec[1:] * np.diff(rec))[nz[1:]].sum() * 100


# ----------------------------------------------------------------------------
# Generated data in the peer's formats.
# ----------------------------------------------------------------------------


def _edge_case_maps(rng, n, size=224):
  """Score maps in [0, 1] (as saved by the peer's inference: attaining 0 and 1 or not)."""
  maps = []
  yy, xx = np.mgrid[0:size, 0:size]
  for k in range(n):
    kind = k % 10
    if kind == 0:  # smooth blobs
      m = np.zeros((size, size))
      for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, size, 2)
        s = rng.uniform(10, 60)
        m += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
      m /= m.max()
    elif kind == 1:  # a ring (a hole: V2 hole boxes, contour area of a holed component)
      r = np.hypot(yy - rng.uniform(60, 160), xx - rng.uniform(60, 160))
      m = np.exp(-((r - rng.uniform(25, 50)) ** 2) / 200.0)
    elif kind == 2:  # two equal blobs (ties of the largest contour)
      m = np.zeros((size, size))
      m[40:80, 30:70] = 0.9
      m[120:160, 130:170] = 0.9
    elif kind == 3:  # constant maps: zeros, ones, a middle value
      m = np.full((size, size), [0.0, 1.0, 0.5][(k // 10) % 3])
    elif kind == 4:  # box at the right / bottom border (clipped to W - 1)
      m = np.zeros((size, size))
      m[150:, 170:] = rng.uniform(0.5, 1, (size - 150, size - 170))
    elif kind == 5:  # just below gray boundaries g / 255: float64 and float32 levels differ
      m = np.clip(np.kron(rng.integers(0, 256, (size // 8, size // 8)), np.ones((8, 8))) / 255.0
                  - 1e-13, 0.0, 1.0)
    elif kind == 6:  # blocky noise: many small components, touching diagonally
      m = np.kron(rng.random((size // 4, size // 4)) ** 3, np.ones((4, 4)))
    elif kind == 7:  # float32 map with a blob touching the top-left corner
      m = np.zeros((size, size))
      m[:50, :90] = np.linspace(0.2, 1, 90)[None, :]
    elif kind == 8:  # nested: a blob inside a hole inside a blob
      m = np.zeros((size, size))
      m[30:190, 30:190] = 0.6
      m[60:160, 60:160] = 0.0
      m[90:130, 90:130] = 1.0
    else:  # a map not attaining 0 or 1
      m = 0.2 + 0.6 * rng.random((size, size)) * (xx > 100)
    maps.append(m.astype(np.float32) if kind in (6, 7) or k % 3 == 0 else m)
  return maps


def write_box_dataset(tmp, n=30, seed=0, dataset="CUB", split="test"):
  rng = np.random.default_rng(seed)
  meta_dir = tmp / "metadata" / dataset / split
  meta_dir.mkdir(parents=True)
  sm_root = tmp / "scoremaps"
  ids, sizes, locs, labels = [], [], [], []
  for k in range(n):
    image_id = f"{k % 4:03d}.class_{k % 4}/img_{k:04d}.jpg"
    w, h = int(rng.integers(120, 600)), int(rng.integers(120, 600))
    ids.append(image_id)
    sizes.append(f"{image_id},{w},{h}")
    labels.append(f"{image_id},{k % 4}")
    for _ in range(1 if k % 5 else 3):  # several GT boxes for every fifth image
      x0, x1 = sorted(rng.integers(0, w + 1, 2))
      y0, y1 = sorted(rng.integers(0, h + 1, 2))
      if k % 7 == 0:
        x1, y1 = w, h  # reaching the image edge: int(W * 224 / W) = 224
      locs.append(f"{image_id},{x0},{y0},{x1},{y1}")
  for name, rows in (("image_ids", ids), ("image_sizes", sizes), ("localization", locs),
                     ("class_labels", labels)):
    (meta_dir / f"{name}.txt").write_text("".join(r + "\n" for r in rows))
  for image_id, m in zip(ids, _edge_case_maps(rng, n)):
    p = sm_root / (image_id + ".npy")
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, m)
  return tmp / "metadata", sm_root, ids


def write_mask_dataset(tmp, n=12, seed=1, split="test"):
  rng = np.random.default_rng(seed)
  meta_dir = tmp / "metadata" / "OpenImages" / split
  meta_dir.mkdir(parents=True)
  mask_dir = tmp / "dataset" / "OpenImages"
  sm_root = tmp / "scoremaps"
  ids, locs = [], []
  for k in range(n):
    image_id = f"{split}/cls{k % 3}/{k:05d}.jpg"
    ids.append(image_id)
    w, h = int(rng.integers(100, 400)), int(rng.integers(100, 400))
    n_inst = 1 + k % 3
    for j in range(n_inst):
      mp = f"{split}/cls{k % 3}/{k:05d}_m{j}.png"
      mk = np.zeros((h, w), np.uint8)
      y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
      mk[y0:y0 + rng.integers(5, h // 2), x0:x0 + rng.integers(5, w // 2)] = 255
      (mask_dir / os.path.dirname(mp)).mkdir(parents=True, exist_ok=True)
      cv2.imwrite(str(mask_dir / mp), mk)
      ip = ""
      if j == 0:
        ip = f"{split}/cls{k % 3}/{k:05d}_ignore.png"
        ig = np.zeros((h, w), np.uint8)
        ig[rng.integers(0, h // 2):, rng.integers(0, w // 2):] = 255  # overlaps the masks
        cv2.imwrite(str(mask_dir / ip), ig)
      locs.append(f"{image_id},{mp},{ip}")
    m = rng.random((224, 224))
    if k % 4 == 0:
      m[:5] = 1.0  # exactly 1: the [1, 2) bin
    if k % 4 == 1:
      m = np.round(m * 100) / 100  # scores on the bin edges
    p = sm_root / (image_id + ".npy")
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, m.astype(np.float32) if k % 2 else m)
  (meta_dir / "image_ids.txt").write_text("".join(i + "\n" for i in ids))
  (meta_dir / "localization.txt").write_text("".join(r + "\n" for r in locs))
  return tmp / "metadata", tmp / "dataset", sm_root, ids


def _run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  cap = capsys.readouterr()
  return code, cap.out, cap.err


def _localization(out):
  last = out.strip().splitlines()[-1]
  assert last.startswith("localization: "), out
  return float(last[len("localization: "):])


# ----------------------------------------------------------------------------
# Readers.
# ----------------------------------------------------------------------------


def test_readers_on_the_peers_format(tmp_path):
  meta_root, _, ids = write_box_dataset(tmp_path, n=12)
  meta = metadata.read_metadata(str(meta_root), "CUB", "test")
  assert meta.image_ids == ids
  root = meta_root / "CUB" / "test"
  for line in (root / "image_sizes.txt").read_text().splitlines():
    i, w, h = line.split(",")
    assert meta.image_sizes[i] == (int(w), int(h))  # (W, H), the peer's order
  expect = {}
  for line in (root / "localization.txt").read_text().splitlines():
    i, *c = line.split(",")
    expect.setdefault(i, []).append(tuple(int(v) for v in c))
  assert meta.boxes == expect
  assert sum(len(v) > 1 for v in meta.boxes.values()) >= 2
  labels = metadata.read_class_labels(str(root / "class_labels.txt"))
  assert labels[ids[5]] == 1
  assert metadata.scoremap_path("r", ids[0]) == os.path.join("r", ids[0] + ".npy")


def test_mask_reader_keeps_the_ignore_path_of_the_first_line(tmp_path):
  meta_root, _, _, ids = write_mask_dataset(tmp_path, n=6)
  masks, ignore = metadata.read_mask_paths(
      str(meta_root / "OpenImages" / "test" / "localization.txt"))
  assert [len(masks[i]) for i in ids] == [1, 2, 3, 1, 2, 3]
  assert all(ignore[i].endswith("_ignore.png") for i in ids)


@pytest.mark.parametrize("line, match", [
    ("a.jpg,1,2,3", "localization.txt:2: expected"),
    ("a.jpg,1,2,x,4", "localization.txt:2: a box coordinate must be an integer"),
    ("a.jpg,5,2,3,4", "localization.txt:2: the box must be"),
    ("a.jpg,-1,2,3,4", "localization.txt:2: box coordinates must be non-negative"),
])
def test_malformed_box_lines_name_file_and_line(tmp_path, line, match):
  p = tmp_path / "localization.txt"
  p.write_text("a.jpg,1,2,3,4\n" + line + "\n")
  with pytest.raises(metadata.MetadataError, match=match):
    metadata.read_boxes(str(p))


# ----------------------------------------------------------------------------
# GT rule.
# ----------------------------------------------------------------------------


def test_protocol_gt_boxes_truncates_as_resize_bbox():
  rng = np.random.default_rng(0)
  for _ in range(200):
    w, h = rng.integers(1, 2000, 2)
    b = np.sort(rng.integers(0, [w + 1, h + 1, w + 1, h + 1]).reshape(2, 2), axis=0).T.reshape(-1)
    b = [b[0], b[2], b[1], b[3]]  # x0, y0, x1, y1 with x0 <= x1, y0 <= y1
    got = ground_truth.protocol_gt_boxes([b], (w, h), "wsolevaluation")[0].tolist()
    assert got == list(_ref_resize_bbox(b, (w, h)))
  # An edge at W maps to 224; sizes are (W, H): a non-square image tells the order.
  assert ground_truth.protocol_gt_boxes([[0, 0, 500, 100]], (500, 100), "wsolevaluation"
                                     ).tolist() == [[0, 0, 224, 224]]
  assert ground_truth.protocol_gt_boxes([[250, 50, 250, 50]], (500, 100), "wsolevaluation"
                                     ).tolist() == [[112, 112, 112, 112]]
  with pytest.raises(ValueError, match="protocol"):
    ground_truth.protocol_gt_boxes([[0, 0, 1, 1]], (10, 10), "nope")


# ----------------------------------------------------------------------------
# Numbers equal the peer's loop.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("multi, multi_iou", [(False, False), (True, True), (False, True),
                                              (True, False)])
def test_cli_equals_the_peer_loop_on_edge_cases(tmp_path, capsys, multi, multi_iou):
  meta_root, sm_root, ids = write_box_dataset(tmp_path, n=20)
  argv = ["--scoremap_root", sm_root, "--metadata_root", meta_root, "--dataset_name", "CUB",
          "--split", "test", "--no_progress", "--chunk_size", "7"]
  if multi:
    argv.append("--multi_contour_eval")
  if multi_iou:
    argv += ["--multi_iou_eval", "true"]
  out_json = tmp_path / "r.json"
  code, out, err = _run(capsys, *argv, "--output", out_json)
  assert code == 0, err
  perf, curves = reference_boxes(str(meta_root), "CUB", "test", str(sm_root), multi=multi,
                                 multi_iou=multi_iou)
  assert out.splitlines()[0] == "Loading and evaluating cams."
  assert out.strip().splitlines()[-1] == "localization: {}".format(perf)
  rec = json.loads(out_json.read_text())
  for d, c in curves.items():  # every cell of every curve
    np.testing.assert_array_equal(np.asarray(rec["box_acc_curves"][str(d)]), c)
  assert curves[30].max() >= 10 and len(np.unique(curves[30])) > 3  # not a trivial curve
  assert rec["num_images"] == 20 and rec["protocol"]["name"] == "wsolevaluation"
  assert "numba" in rec["versions"] and rec["localization"] == float(perf)


def test_cli_equals_the_peer_loop_with_other_grids(tmp_path, capsys):
  meta_root, sm_root, _ = write_box_dataset(tmp_path, n=10, seed=5, dataset="ILSVRC", split="val")
  code, out, err = _run(capsys, "--scoremap_root", sm_root, "--metadata_root", meta_root,
                        "--dataset_name", "ILSVRC", "--split", "val", "--cam_curve_interval",
                        "0.003", "--iou_threshold_list", "70", "50", "35",
                        "--multi_contour_eval", "--multi_iou_eval", "--no_progress")
  assert code == 0, err
  perf, _ = reference_boxes(str(meta_root), "ILSVRC", "val", str(sm_root), interval=0.003,
                            multi=True, multi_iou=True, ious=(70, 50, 35))
  assert _localization(out) == perf


@pytest.mark.parametrize("multi", [False, True])
def test_multi_threaded_equals_single_threaded(tmp_path, capsys, multi):
  """Worker threads (each reads and scans its own chunks) give every curve cell of one thread,
  and of the peer's loop, whatever the chunking; float32, float64 and integer maps mixed in
  one chunk (the per-thread batch, the stacked group and the cast group)."""
  meta_root, sm_root, ids = write_box_dataset(tmp_path, n=24, seed=4)
  for k in (2, 5, 11):
    p = sm_root / (ids[k] + ".npy")
    np.save(p, np.load(p).astype(np.float32))
  p = sm_root / (ids[7] + ".npy")
  np.save(p, (np.load(p) > 0.5).astype(np.int64))  # an integer map: cast to float64 as t2n
  argv = ["--scoremap_root", sm_root, "--metadata_root", meta_root, "--dataset_name", "CUB",
          "--split", "test", "--no_progress", "--multi_iou_eval"] + (
              ["--multi_contour_eval"] if multi else [])
  recs = []
  for threads, chunk in (("1", "24"), ("2", "3"), ("3", "1"), ("2", "64")):
    out_json = tmp_path / f"r{threads}_{chunk}.json"
    code, out, err = _run(capsys, *argv, "--num_threads", threads, "--chunk_size", chunk,
                          "--output", out_json)
    assert code == 0, err
    recs.append(json.loads(out_json.read_text()))
  perf, curves = reference_boxes(str(meta_root), "CUB", "test", str(sm_root), multi=multi,
                                 multi_iou=True)
  for rec in recs:
    assert rec["localization"] == perf and rec["num_images"] == 24
    for d, c in curves.items():
      np.testing.assert_array_equal(np.asarray(rec["box_acc_curves"][str(d)]), c)


def test_map_chunks_keeps_id_order_and_raises_at_the_missing_map(tmp_path):
  ids = [f"m{k}" for k in range(23)]
  paths = []
  for k, i in enumerate(ids):
    paths.append(str(tmp_path / (i + ".npy")))
    np.save(paths[-1], np.full((5, 6), k / 100.0))
  seen = []
  for chunk, res in scoremaps.map_chunks(
      ids, paths, lambda ch: [float(m[0, 0]) for m in ch.maps], chunk_size=4, num_workers=3):
    assert chunk.maps == [] and len(res) == len(chunk.indices)
    seen += chunk.indices
    assert res == [k / 100.0 for k in chunk.indices]  # the rows of the reused buffers
  assert seen == list(range(23))
  os.remove(paths[13])
  with pytest.raises(scoremaps.MissingScoreMap, match="'m13'"):
    for _ in scoremaps.map_chunks(ids, paths, lambda ch: None, chunk_size=4, num_workers=2):
      pass
  got = [c.missing for c, _ in scoremaps.map_chunks(ids, paths, lambda ch: None, chunk_size=4,
                                                    num_workers=2, allow_missing=True)]
  assert sum(got, []) == [13]


def test_fast_npy_reader_equals_np_load(tmp_path):
  """The cached-header reader gives np.load's array (dtype, shape, bytes) for the layouts it
  takes, falls back to np.load for the others, and reports truncated files."""
  rng = np.random.default_rng(0)
  arrays = [rng.random((7, 9)), rng.random((7, 9)).astype(np.float32),
            rng.random((7, 9)).astype(">f8"), np.asfortranarray(rng.random((7, 9))),
            rng.integers(0, 5, (3, 4)), np.zeros((0, 4))]
  for k, a in enumerate(arrays * 2):  # the second time the header is cached
    p = tmp_path / f"a{k}.npy"
    np.save(p, a)
    m = scoremaps.load_scoremap(f"a{k}", str(p))
    ref = np.load(p)
    assert m.dtype == ref.dtype and m.shape == ref.shape
    np.testing.assert_array_equal(m, ref)
  p = tmp_path / "t.npy"
  np.save(p, rng.random((7, 9)))
  p.write_bytes(p.read_bytes()[:-8])
  with pytest.raises(scoremaps.BadScoreMap, match="not a readable"):
    scoremaps.load_scoremap("t", str(p))


def test_module_entry_point_exit_status_and_last_line(tmp_path):
  meta_root, sm_root, _ = write_box_dataset(tmp_path, n=6)
  env = dict(os.environ, PYTHONPATH=REPO)
  args = [sys.executable, "-m", "infocam_jax.wsol", "--scoremap_root", str(sm_root),
          "--metadata_root", str(meta_root), "--dataset_name", "CUB", "--split", "test"]
  proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr
  perf, _ = reference_boxes(str(meta_root), "CUB", "test", str(sm_root))
  assert proc.stdout.strip().splitlines()[-1] == "localization: {}".format(perf)
  os.remove(sm_root / "000.class_0" / "img_0000.jpg.npy")
  proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  assert "'000.class_0/img_0000.jpg'" in proc.stderr and "img_0000.jpg.npy" in proc.stderr


def test_pxap_equals_the_peers_mask_evaluator(tmp_path, capsys):
  meta_root, mask_root, sm_root, _ = write_mask_dataset(tmp_path, n=12)
  for interval in ("0.01", "0.05"):
    code, out, err = _run(capsys, "--scoremap_root", sm_root, "--metadata_root", meta_root,
                          "--mask_root", mask_root, "--dataset_name", "OpenImages", "--split",
                          "test", "--cam_curve_interval", interval, "--no_progress",
                          "--chunk_size", "5")
    assert code == 0, err
    ref = reference_pxap(str(meta_root), str(mask_root), "test", str(sm_root),
                         float(interval))
    assert out.strip().splitlines()[-1] == "localization: {}".format(ref)
    assert "Mask AUC on split test: {}".format(ref) in out


def test_mask_reader_equals_the_peers_float32_resize(tmp_path):
  """``_read_mask`` (uint8 INTER_NEAREST, > 0) = the peer's ``cv2.resize(float32(img),
  INTER_NEAREST) > 0.5`` on random sizes (down and up) and gray values 0..255."""
  rng = np.random.default_rng(3)
  for k in range(40):
    h, w = int(rng.integers(1, 900)), int(rng.integers(1, 900))
    img = rng.choice(np.array([0, 1, 127, 128, 255], np.uint8), (h, w))
    p = tmp_path / f"m{k}.png"
    cv2.imwrite(str(p), img)
    ref = cv2.resize(np.float32(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)), (224, 224),
                     interpolation=cv2.INTER_NEAREST) > 0.5
    np.testing.assert_array_equal(pxap._read_mask(str(p), 224), ref)


def test_pxap_bins_match_np_histogram_on_edges_and_ones():
  th = np.arange(0, 1, 0.01)
  ev = pxap.PxAP(th)
  edges = np.append(th, [1.0, 2.0, 3.0])
  rng = np.random.default_rng(0)
  m = np.concatenate([th, [1.0, 0.0, 0.999999, 0.07, 0.35, 0.58]] + [rng.random(500)])
  m = m.reshape(1, -1)
  mask = np.ones_like(m, np.uint8)
  t, f = ev.histograms(m, mask)
  np.testing.assert_array_equal(t, np.histogram(m, bins=edges)[0])
  assert f.sum() == 0
  with pytest.raises(pxap.PxAPError, match="No positive ground truth"):
    ev.compute(ev.update(ev.init(), m, np.zeros_like(mask)))


# ----------------------------------------------------------------------------
# Streaming and memory.
# ----------------------------------------------------------------------------


def test_streaming_state_equals_one_batch(tmp_path):
  _, sm_root, ids = write_box_dataset(tmp_path, n=25, seed=3)
  maps = [np.load(sm_root / (i + ".npy")).astype(np.float64) for i in ids]
  rng = np.random.default_rng(0)
  gt = rng.integers(0, 200, (25, 2, 4)).astype(np.float32)
  gt[..., 2:] = gt[..., :2] + rng.integers(1, 24, (25, 2, 2))
  mask = np.ones((25, 2), bool)
  mask[::3, 1] = False
  for v2 in (False, True):
    ev = box_accuracy.max_box_accuracy("wsolevaluation", v1=not v2, v2=v2, normalize=False)
    one = ev.update(ev.init(), np.stack(maps), gt, mask)
    state = ev.init()
    for lo, hi in ((0, 1), (1, 8), (8, 9), (9, 25)):
      state = ev.update(state, np.stack(maps[lo:hi]), gt[lo:hi], mask[lo:hi])
    for f in ("num_images", "hits", "hits_v2", "num_invalid_maps"):
      np.testing.assert_array_equal(np.asarray(getattr(state, f)), np.asarray(getattr(one, f)))
  pe = pxap.PxAP(np.arange(0, 1, 0.01))
  masks = [rng.choice(np.array([0, 1, 255], np.uint8), (224, 224)) for _ in range(5)]
  s1 = pe.init()
  for m, k in zip(maps[:5], masks):
    s1 = pe.update(s1, m, k)
  halves = pe.merge(pe.update(pe.update(pe.init(), maps[0], masks[0]), maps[1], masks[1]),
                    pe.update(pe.update(pe.update(pe.init(), maps[2], masks[2]), maps[3],
                                        masks[3]), maps[4], masks[4]))
  np.testing.assert_array_equal(s1.gt_true_hist, halves.gt_true_hist)
  np.testing.assert_array_equal(s1.gt_false_hist, halves.gt_false_hist)


def test_chunk_size_does_not_change_the_numbers(tmp_path, capsys):
  meta_root, sm_root, _ = write_box_dataset(tmp_path, n=17, seed=9)
  outs = []
  for chunk in ("1", "4", "1000"):
    code, out, err = _run(capsys, "--scoremap_root", sm_root, "--metadata_root", meta_root,
                          "--dataset_name", "CUB", "--split", "test", "--chunk_size", chunk,
                          "--multi_contour_eval", "--no_progress")
    assert code == 0, err
    outs.append(out.strip().splitlines()[-1])
  assert outs[0] == outs[1] == outs[2]


def test_memory_is_bounded_by_the_chunks_on_many_small_maps(tmp_path, monkeypatch, capsys):
  """400 maps, chunks of 8, 2 worker threads: never more than 4 * 8 maps alive at once (each
  worker holds one chunk; the maps are rows of its reused buffer)."""
  n, chunk = 400, 8
  meta_dir = tmp_path / "metadata" / "CUB" / "test"
  meta_dir.mkdir(parents=True)
  sm_root = tmp_path / "sm"
  sm_root.mkdir()
  ids = [f"i{k}.jpg" for k in range(n)]
  rng = np.random.default_rng(0)
  for i in ids:
    m = rng.random((16, 16))
    m[4:9, 4:9] = 1.0
    np.save(sm_root / (i + ".npy"), m)
  (meta_dir / "image_ids.txt").write_text("".join(i + "\n" for i in ids))
  (meta_dir / "image_sizes.txt").write_text("".join(f"{i},224,224\n" for i in ids))
  (meta_dir / "localization.txt").write_text("".join(f"{i},4,4,9,9\n" for i in ids))
  live = [0, 0]  # alive now, most alive at once
  loaded = [0]
  real = scoremaps.load_scoremap

  def counting(image_id, path, **kw):
    m = real(image_id, path, **kw)
    live[0] += 1
    live[1] = max(live[1], live[0])
    loaded[0] += 1
    weakref.finalize(m, lambda: live.__setitem__(0, live[0] - 1))
    return m

  monkeypatch.setattr(scoremaps, "load_scoremap", counting)
  code, out, err = _run(capsys, "--scoremap_root", sm_root, "--metadata_root",
                        tmp_path / "metadata", "--dataset_name", "CUB", "--split", "test",
                        "--chunk_size", chunk, "--no_progress", "--num_threads", 2)
  assert code == 0, err
  assert loaded[0] == n
  assert live[1] <= 4 * chunk, live
  # Maps smaller than the 224 frame are evaluated as saved (as the peer does): the blob's box
  # (4, 4, 9, 9) equals the GT box of the 224 x 224 image.
  assert _localization(out) == 100.0


# ----------------------------------------------------------------------------
# Errors: one line, exit status 2.
# ----------------------------------------------------------------------------


def _err_case(tmp_path, capsys, *extra):
  meta_root, sm_root, ids = write_box_dataset(tmp_path, n=8, seed=2)
  argv = ["--scoremap_root", sm_root, "--metadata_root", meta_root, "--dataset_name", "CUB",
          "--split", "test", "--no_progress", *extra]
  return meta_root, sm_root, ids, argv


def _one_line_error(code, err):
  assert code == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("infocam-wsol-eval: error: "), err
  return lines[0]


def test_missing_map_error_and_allow_missing(tmp_path, capsys):
  meta_root, sm_root, ids, argv = _err_case(tmp_path, capsys)
  path = sm_root / (ids[3] + ".npy")
  os.remove(path)
  msg = _one_line_error(*_run(capsys, *argv)[::2])
  assert repr(ids[3]) in msg and str(path) in msg
  code, out, err = _run(capsys, *argv, "--allow_missing", "--output", tmp_path / "r.json")
  assert code == 0, err
  rec = json.loads((tmp_path / "r.json").read_text())
  assert rec["num_missing"] == 1 and rec["missing_image_ids"] == [ids[3]]
  assert rec["num_images"] == 7 and "1 missing" in out


def test_bad_maps_are_counted_and_rejected(tmp_path, capsys):
  meta_root, sm_root, ids, argv = _err_case(tmp_path, capsys)
  for k in (1, 5):
    m = np.load(sm_root / (ids[k] + ".npy"))
    m[3, 3] = np.nan
    np.save(sm_root / (ids[k] + ".npy"), m)
  np.save(sm_root / (ids[6] + ".npy"), np.full((224, 224), 1.5))
  msg = _one_line_error(*_run(capsys, *argv)[::2])
  assert "3 of 8" in msg and "2 contain NaN" in msg and "1 have values outside [0, 1]" in msg
  assert repr(ids[1]) in msg
  # The clean protocol normalises: NaN maps count as all-zero maps, out-of-range maps are fine.
  code, out, err = _run(capsys, *argv, "--protocol", "clean", "--output", tmp_path / "c.json")
  assert code == 0, err
  assert json.loads((tmp_path / "c.json").read_text())["num_invalid_maps"] == 2
  np.save(sm_root / (ids[2] + ".npy"), np.zeros((2, 224, 224)))
  msg = _one_line_error(*_run(capsys, *argv)[::2])
  assert "2-D" in msg and repr(ids[2]) in msg


def test_malformed_metadata_and_bad_flags(tmp_path, capsys):
  meta_root, sm_root, ids, argv = _err_case(tmp_path, capsys)
  loc = meta_root / "CUB" / "test" / "localization.txt"
  lines = loc.read_text().splitlines()
  lines[2] = lines[2] + ",7"
  loc.write_text("\n".join(lines) + "\n")
  msg = _one_line_error(*_run(capsys, *argv)[::2])
  assert f"{loc}:3:" in msg
  loc.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
  msg = _one_line_error(*_run(capsys, *argv, "--iou_threshold_list", "30", "70")[::2])
  assert "50" in msg
  msg = _one_line_error(*_run(capsys, *argv, "--iou_threshold_list", "50", "50")[::2])
  assert "duplicates" in msg


def test_auto_and_protocol_records(tmp_path, capsys):
  meta_root, sm_root, ids, argv = _err_case(tmp_path, capsys)
  for proto in ("paper", "clean"):
    code, out, err = _run(capsys, *argv, "--protocol", proto, "--output", tmp_path / "p.json")
    assert code == 0, err
    rec = json.loads((tmp_path / "p.json").read_text())
    assert rec["protocol"]["name"] == proto and rec["protocol"]["normalize"] is True


def test_pipeline_feeds_the_peers_integer_gt_to_the_wsolevaluation_protocol():
  """The project's own evaluation uses the same GT rule as the command line."""
  from infocam_jax.evaluators import wsol as ev
  rng = np.random.default_rng(4)
  n = 50
  w = rng.integers(100, 700, n).astype(np.float64)
  h = rng.integers(100, 700, n).astype(np.float64)
  x0 = np.floor(rng.uniform(0, 0.5, n) * w)
  y0 = np.floor(rng.uniform(0, 0.5, n) * h)
  x1 = np.minimum(w, x0 + np.floor(rng.uniform(0.1, 0.6, n) * w))
  y1 = np.minimum(h, y0 + np.floor(rng.uniform(0.1, 0.6, n) * h))
  norm = np.stack([y0 / h, x0 / w, y1 / h, x1 / w], -1).astype(np.float32)[:, None]
  batch = {"bbox_normalized": norm, "orig_size": np.stack([h, w], -1).astype(np.int32),
           "bbox_mask": np.ones((n, 1), bool), "bbox": np.zeros((n, 1, 4), np.float32)}
  got = ev.gt_boxes(batch, "wsolevaluation", resize_size=224, image_size=224)[:, 0]
  want = [_ref_resize_bbox((a, b, c, d), (ww, hh))
          for a, b, c, d, ww, hh in zip(x0, y0, x1, y1, w, h)]
  np.testing.assert_array_equal(got, np.asarray(want, np.float32))
  from experiments import _wsol_results  # pylint: disable=g-import-not-at-top
  settings = _wsol_results.Settings(
      methods=("cam",), protocols=("clean", "wsolevaluation", "paper"), region_size=3,
      image_size=224, resize_size=224, threshold_step=0.01, loc_threshold=0.2, paper_gt="exact",
      loss="softmax")
  assert settings.gt_transforms == {"clean": "exact", "wsolevaluation": "wsolevaluation",
                                    "paper": "exact"}
  # With a centre crop (256 -> 224) the truncated resize is shifted by the crop offset 16.
  crop = ev.gt_boxes(batch, "wsolevaluation", resize_size=256, image_size=224)[:, 0]
  full = ground_truth.protocol_gt_boxes(np.stack([x0, y0, x1, y1], -1), np.stack([w, h], -1),
                                     "wsolevaluation", frame=256)
  np.testing.assert_array_equal(crop, np.clip(full - 16, 0, 224))


def test_jax_free_counts_equal_the_library_metric(tmp_path):
  """The command line's JAX-free counter and ``max_box_accuracy("wsolevaluation",
  normalize=False)`` give the same curves (V1 and V2, float32 and float64 maps)."""
  _, sm_root, ids = write_box_dataset(tmp_path, n=20, seed=11)
  maps = [np.load(sm_root / (i + ".npy")) for i in ids]
  rng = np.random.default_rng(2)
  gt = rng.integers(0, 180, (20, 3, 4)).astype(np.float32)
  gt[..., 2:] = gt[..., :2] + rng.integers(0, 60, (20, 3, 2))
  mask = rng.random((20, 3)) < 0.7
  mask[:, 0] = True
  th = np.arange(0, 1, 0.02)
  for v2 in (False, True):
    for dtype in (np.float32, np.float64):
      m = np.stack([x.astype(dtype) for x in maps])
      counts = cli.PeerBoxCounts(th, (0.3, 0.5, 0.7), v2)
      counts.update(m[:7], gt[:7], mask[:7])
      counts.update(m[7:], gt[7:], mask[7:])
      ev = box_accuracy.max_box_accuracy("wsolevaluation", cam_thresholds=th, v1=not v2, v2=v2,
                                         normalize=False)
      res = ev.compute(ev.update(ev.init(), m, gt, mask))
      want = res.box_acc_v2_curve if v2 else res.box_acc_curve
      np.testing.assert_array_equal(counts.curves(), want)
      assert counts.curves().max() > 0


def test_library_accepts_maps_smaller_than_the_gt_frame_when_used_as_saved():
  """``normalize=False`` without ``image_size``: 224-frame GT boxes against 16x16 maps (as
  evaluation.py compares them); with normalisation the frame check stays."""
  m = np.zeros((1, 16, 16), np.float32)
  m[0, 4:9, 4:9] = 1.0
  ev = box_accuracy.max_box_accuracy("wsolevaluation", cam_thresholds=[0.5], normalize=False)
  res = ev.compute(ev.update(ev.init(), m, np.array([[[4, 4, 9, 9]], ], np.float32)))
  assert res.box_acc_curve[1, 0] == 100.0
  far = np.array([[[100, 100, 200, 200]]], np.float32)
  assert ev.compute(ev.update(ev.init(), m, far)).box_acc_curve.max() == 0.0
  with pytest.raises(ValueError, match="outside"):
    box_accuracy.max_box_accuracy("wsolevaluation", cam_thresholds=[0.5]).update(
        ev.init(), m, far)


def test_float64_maps_just_below_a_gray_boundary_keep_their_level():
  """128/255 - 1e-13 is gray 127 in float64 (the peer) but 128 through float32: at t = 0.5
  (``int(0.5 * 255) = 127``) the block is background, so only the corner pixel is a box."""
  m = np.zeros((1, 224, 224))
  m[0, 50:100, 50:100] = 128 / 255 - 1e-13
  m[0, 0, 0] = 1.0
  gt = np.array([[[50, 50, 100, 100]]], np.float32)
  th = np.array([0.5])
  ref = _ref_boxes(m[0], th, False)[0][0]
  assert ref == [0, 0, 1, 1]  # the peer's box: the single pixel at the corner
  ev = box_accuracy.max_box_accuracy("wsolevaluation", cam_thresholds=th, normalize=False)
  assert ev.compute(ev.update(ev.init(), m, gt)).box_acc_curve.max() == 0.0
  counts = cli.PeerBoxCounts(th, (0.3, 0.5, 0.7), False)
  counts.update(m, gt, np.ones((1, 1), bool))
  assert counts.curves().max() == 0.0
  m32 = m.astype(np.float32)  # the float32 map is another map: its block is foreground
  assert ev.compute(ev.update(ev.init(), m32, gt)).box_acc_curve.max() == 100.0
