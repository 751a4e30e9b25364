"""``experiments.wsol``: train + CAM/infoCAM evaluation end to end, evaluation-only, errors.

One smoke run (subprocess, the smoke config with validation every 10 steps so
that keep-best has a choice) is shared by the module; an evaluation-only run
from its export must reproduce its numbers exactly. The checks of the numbers
are independent of the evaluator where possible: the full-image baseline is
recomputed from the dataset's boxes with a plain IoU, and the threshold
selection is re-derived from ``curves.json``. The subprocesses share a
persistent compilation cache (the evaluation-only run reuses the programs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

try:
  import multidevice  # tests/ on sys.path
except ImportError:  # pragma: no cover
  from tests import multidevice

SMOKE = os.path.join(multidevice.REPO, "experiments", "configs", "smoke.py")
PAPER = os.path.join(multidevice.REPO, "experiments", "configs", "paper.py")
RUN = ["--config.progress_bar=False", "--config.eval_every_steps=10"]
FIVE = ("top1_cls", "top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2")


def _run(args, env, timeout=600, check=True):
  proc = subprocess.run(args, cwd=multidevice.REPO, env=env, capture_output=True, text=True,
                        timeout=timeout)
  if check and proc.returncode:
    raise AssertionError(f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                         f"stderr:\n{proc.stderr[-5000:]}")
  return proc


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  return multidevice.subprocess_env(1, cache_dir=str(tmp_path_factory.mktemp("xla_cache")))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, env):
  workdir = tmp_path_factory.mktemp("wsol") / "run"
  proc = _run(multidevice.wsol_command(SMOKE, str(workdir), RUN), env)
  with open(workdir / "results.json") as f:
    results = json.load(f)
  with open(workdir / "curves.json") as f:
    curves = json.load(f)
  return workdir, proc, results, curves


@pytest.mark.slow
def test_results_schema_tables_and_figures(smoke_run):
  workdir, proc, res, _ = smoke_run
  for name in ("cam", "infocam", "infocam_min", "infocam_same", "grad_cam", "centre_box",
               "full_image_box"):
    for key in FIVE:
      v = res["methods"][name][key]
      assert isinstance(v, float) and 0.0 <= v <= 100.0, (name, key, v)
    row = res["methods"][name]
    # Consistency: Top-1 Loc counts only correctly classified hits (<= GT-known Loc, <= Top-1
    # Cls); MaxBoxAcc maximises the GT-known curve, so it bounds the fixed-threshold GT-known.
    assert row["top1_loc"] <= min(row["gt_known_loc"], row["top1_cls"]) + 1e-9, name
    assert row["gt_known_loc"] <= row["max_box_acc"] + 1e-9, name
  # The test split has 80 images: every percentage is a multiple of 100/80.
  for name in ("cam", "infocam", "full_image_box"):
    for key in ("max_box_acc", "gt_known_loc"):
      assert (res["methods"][name][key] * 80 / 100) == pytest.approx(
          round(res["methods"][name][key] * 80 / 100), abs=1e-3), (name, key)
  assert set(res["baselines"]) == {"centre_box", "full_image_box"}
  assert res["baselines"]["centre_box"] == res["methods"]["centre_box"]
  assert res["primary_protocol"] == "clean" and set(res["protocols"]) == {"clean", "paper"}
  assert res["methods"] == res["protocols"]["clean"]
  # One classifier: every method reports its accuracy, also in the classification block.
  accs = {res["protocols"][p][m]["top1_cls"] for p in res["protocols"] for m in res["methods"]}
  assert accs == {round(res["classification"]["test"]["accuracy"], 4)}
  assert res["dataset"]["num_test"] == 80 and res["dataset"]["num_val"] == 80
  assert res["seed"] == 0 and res["mode"] == "train_and_evaluate"
  assert res["config"]["wsol"]["region_size"] == 4
  for k in ("jax", "flax", "optax", "orbax-checkpoint", "numpy", "python"):
    assert res["versions"][k]
  assert res["device"]["device_count"] == 1 and res["device"]["platform"] == "cpu"
  for k in ("data_s", "train_s", "eval_val_s", "eval_test_s", "figures_s", "total_s"):
    assert res["wall_time_s"][k] >= 0.0, k
  assert res["cpu_time_s"]["total_s"] > 0.0
  assert res["protocol_notes"]["paper"]["gt_transform"] == "exact"
  pngs = [p for p in res["figures"] if p.endswith(".png")]
  assert "localization_grid.png" in pngs and "curves_clean_validation.png" in pngs
  for p in pngs:
    with open(workdir / p, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n", p
  out = proc.stdout
  assert "[clean protocol]" in out and "[paper protocol]" in out and "MaxBoxAccV2*" in out
  assert "never on test" in out and "Figures: " in out and "localization_grid.png" in out
  # metrics.jsonl gets the headline test numbers.
  recs = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  assert recs[-1]["test/cam/max_box_acc"] == res["methods"]["cam"]["max_box_acc"]


@pytest.mark.slow
def test_full_image_baseline_matches_an_independent_computation(smoke_run):
  """Full-image box (0, 0, 31, 31) against the test GT boxes with a plain IoU."""
  _, _, res, _ = smoke_run
  from infocam_jax import data
  src = data.load_source("cluttered_digits/small", "test")
  pipe = data.make_pipeline(src, batch_size=len(src), train=False, image_size=32, max_boxes=4)
  batch = pipe.get_batch(0)
  hits = []
  for boxes, mask in zip(batch["bbox"], batch["bbox_mask"]):
    best = 0.0
    for x0, y0, x1, y1 in boxes[mask]:
      inter = (x1 - x0 + 1) * (y1 - y0 + 1)  # the GT box lies inside the image
      best = max(best, inter / (32 * 32))
    hits.append(best >= 0.5)
  expected = 100.0 * np.mean(hits)
  got = res["methods"]["full_image_box"]
  assert got["max_box_acc"] == pytest.approx(expected, abs=1e-3)
  assert got["gt_known_loc"] == pytest.approx(expected, abs=1e-3)
  # The centred box: every threshold's box recomputed with plain numpy from its map.
  from infocam_jax.evaluators import wsol as ev
  m = ev.baseline_maps(32)["centre_box"].astype(np.float32)
  norm = (m - m.min()) / (m.max() - m.min())
  best = 0.0
  for t in np.arange(0.0, 1.0, 0.05):  # the smoke config's threshold grid
    ys, xs = np.nonzero(norm > np.float32(t))
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
    hits = []
    for boxes, mask in zip(batch["bbox"], batch["bbox_mask"]):
      ious = []
      for g in boxes[mask]:
        iw = min(x1, g[2]) - max(x0, g[0]) + 1
        ih = min(y1, g[3]) - max(y0, g[1]) + 1
        inter = max(iw, 0) * max(ih, 0)
        union = (x1 - x0 + 1) * (y1 - y0 + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
        ious.append(inter / union)
      hits.append(max(ious) >= 0.5)
    best = max(best, 100.0 * np.mean(hits))
  assert res["methods"]["centre_box"]["max_box_acc"] == pytest.approx(best, abs=1e-3)


@pytest.mark.slow
def test_thresholds_are_selected_on_validation_not_test(smoke_run):
  _, _, res, curves = smoke_run
  sel = res["selection"]
  assert sel["threshold_selected_on"] == "validation" and sel["test_split"] == "test"
  assert sel["checkpoint"] == "last" and sel["step"] == 30 and sel["selected_on"] is None
  for p, block in res["protocols"].items():
    th = np.asarray(curves[p]["cam_thresholds"])
    j0 = curves[p]["iou_thresholds"].index(0.5)
    for name, row in block.items():
      val = np.asarray(curves[p]["methods"][name]["validation"]["box_acc"])
      test = np.asarray(curves[p]["methods"][name]["test"]["box_acc"])
      t = int(np.argmax(val[j0]))
      assert row["val_threshold"] == pytest.approx(th[t]), (p, name)
      assert row["max_box_acc_val_selected"] == pytest.approx(test[j0, t], abs=1e-3)
      assert row["max_box_acc"] == pytest.approx(test[j0].max(), abs=1e-3)  # definitional
      assert row["max_box_acc_val_selected"] <= row["max_box_acc"] + 1e-9
      val2 = np.asarray(curves[p]["methods"][name]["validation"]["box_acc_v2"])
      test2 = np.asarray(curves[p]["methods"][name]["test"]["box_acc_v2"])
      v2 = np.mean([test2[j, int(np.argmax(val2[j]))] for j in range(len(val2))])
      assert row["max_box_acc_v2_val_selected"] == pytest.approx(v2, abs=1e-3)
      assert row["val"]["max_box_acc"] == pytest.approx(val[j0].max(), abs=1e-3)


@pytest.mark.slow
def test_evaluation_only_from_export_reproduces_the_numbers(smoke_run, tmp_path, env):
  workdir, _, res, curves = smoke_run
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("*.png", "results.json",
                                                               "curves.json"))
  _run(multidevice.wsol_command(SMOKE, str(copy), [*RUN, "--mode=evaluate"]), env)
  with open(copy / "results.json") as f:
    again = json.load(f)
  assert again["mode"] == "evaluate" and again["wall_time_s"]["train_s"] is None
  assert again["protocols"] == res["protocols"]
  assert again["classification"] == res["classification"]
  with open(copy / "curves.json") as f:
    assert json.load(f) == curves
  assert (copy / "localization_grid.png").is_file()


@pytest.mark.slow
def test_best_checkpoint_is_chosen_by_validation_accuracy(smoke_run):
  workdir, _, _, _ = smoke_run
  import orbax.checkpoint as ocp
  from infocam_jax.train import build
  _, variables, sel = build.load_for_evaluation(str(workdir), "best", best_metric="val/accuracy",
                                                eval_split="validation")
  recs = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  val = {r["step"]: r["val/accuracy"] for r in recs if "val/accuracy" in r}
  assert sorted(val) == [10, 20, 30]
  kept = {int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()}
  assert sel["step"] in kept and sel["selected_on"] == "validation"
  assert sel["metric_value"] == max(val[s] for s in kept)
  tree = ocp.StandardCheckpointer().restore(str(workdir / "checkpoints" / str(sel["step"]) /
                                                "state"))
  np.testing.assert_array_equal(variables["params"]["fc"]["kernel"],
                                np.asarray(tree["params"]["fc"]["kernel"]))


@pytest.mark.slow
def test_paper_config_without_dataset_or_weights_is_a_clear_error(tmp_path, env):
  empty = tmp_path / "tfds"
  empty.mkdir()
  weights = tmp_path / "nowhere" / "resnet50-19c8e357.pth"
  proc = _run(multidevice.wsol_command(f"{PAPER}:cub_resnet50", str(tmp_path / "run"), [
      f"--config.data.data_dir={empty}", f"--config.model.pretrained={weights}"]), env,
      check=False, timeout=300)
  assert proc.returncode == 2, proc.stderr[-3000:]
  err = proc.stderr
  assert "input missing" in err
  # The dataset: what, where it was looked for, how to obtain it.
  assert "caltech_birds2011" in err and f"Looked in: {empty}" in err and "tfds build" in err
  # The weights: what, where, where to get them.
  assert str(weights) in err and "download.pytorch.org/models/resnet50-19c8e357.pth" in err
  assert not (tmp_path / "run" / "checkpoints").exists()


# ---------------------------------------------------------------------------
# In-process unit checks of the helpers (no training).


def test_paper_gt_transforms_match_the_official_ones():
  from infocam_jax.evaluators import wsol as ev
  from infocam_jax.wsol import boxes
  # CUB: a 500x375 (W x H) image with the box x=100, y=50, w=200, h=150 (bounding_boxes.txt).
  w, h = 500.0, 375.0
  xywh = np.array([100.0, 50.0, 200.0, 150.0])
  norm = np.array([50 / h, 100 / w, 200 / h, 300 / w], np.float32)  # tfds (ymin, xmin, ...)
  batch = {"bbox_normalized": norm[None, None], "orig_size": np.array([[375, 500]], np.int32),
           "bbox_mask": np.array([[True]]), "bbox": np.zeros((1, 1, 4), np.float32)}
  got = ev.gt_boxes(batch, "cub_legacy", resize_size=256, image_size=224)
  want = np.asarray(boxes.legacy_resize_crop_boxes(xywh, (375, 500), 256, 224))
  np.testing.assert_allclose(got[0, 0], want, atol=1e-3)
  np.testing.assert_allclose(want, [100 / w * 255 - 15, 50 / h * 255 - 15, 300 / w * 255 - 15,
                                    200 / h * 255 - 15], atol=1e-4)
  # Tiny-ImageNet: corners (10, 20, 40, 50) stored by the builder as (20/64, 10/64, 51/64, 41/64).
  norm = np.array([20 / 64, 10 / 64, 51 / 64, 41 / 64], np.float32)
  batch = {"bbox_normalized": norm[None, None], "orig_size": np.array([[64, 64]], np.int32),
           "bbox_mask": np.array([[True]]), "bbox": np.zeros((1, 1, 4), np.float32)}
  got = ev.gt_boxes(batch, "tiny_legacy", resize_size=64, image_size=64)
  r = 63 / 64
  np.testing.assert_allclose(got[0, 0], [10 * r + 1, 20 * r + 1, 50 * r + 1, 70 * r + 1],
                             atol=1e-4)  # right edge x0 + x1, bottom y0 + y1 (the mis-parse)
  assert ev.resolve_paper_gt("auto", "caltech_birds2011") == "cub_legacy"
  assert ev.resolve_paper_gt("auto", "tiny_imagenet") == "tiny_legacy"
  assert ev.resolve_paper_gt("auto", "cluttered_digits") == "exact"


def test_baseline_maps_give_centred_and_full_image_boxes():
  from infocam_jax.evaluators import wsol as ev
  from infocam_jax import cam
  from infocam_jax.wsol import boxes
  size = (24, 32)
  maps = ev.baseline_maps(size)
  ts = np.arange(0.0, 1.0, 0.05).astype(np.float32)
  centre = np.asarray(boxes.boxes_from_maps(cam.normalize_maps(maps["centre_box"][None]),
                                            ts).boxes)[0]
  full = np.asarray(boxes.boxes_from_maps(cam.normalize_maps(maps["full_image_box"][None]),
                                          ts).boxes)[0]
  assert (full == [0, 0, 31, 23]).all()
  widths = centre[:, 2] - centre[:, 0] + 1
  heights = centre[:, 3] - centre[:, 1] + 1
  np.testing.assert_array_equal(centre[:, 0] + centre[:, 2], 31)  # centred in x
  np.testing.assert_array_equal(centre[:, 1] + centre[:, 3], 23)  # centred in y
  assert (np.diff(widths) <= 0).all() and (np.diff(heights) <= 0).all()
  assert widths[0] >= 30 and widths[-1] <= 4
  # The image's aspect ratio, up to the pixel rounding of a centred box (parity of the side).
  assert (np.abs(heights - widths * 24 / 32) <= 2.0).all()


def test_configs_validate_and_name_the_official_method():
  from experiments import wsol
  from experiments.configs import default, paper, smoke
  from infocam_jax.train import config as config_lib
  for cfg in (default.get_config(), smoke.get_config()):
    config_lib.validate_config(cfg, wsol.SCHEMA)
  for variant in paper.VARIANTS:
    cfg = paper.get_config(variant)
    config_lib.validate_config(cfg, wsol.SCHEMA)
    assert cfg.wsol.official_method in cfg.wsol.methods.split(",")
    assert cfg.wsol.checkpoint == "best" and cfg.data.test_split == "wsol_test"
    assert cfg.model.layer4_stride == (1 if "resnet50" in variant else 2)
  assert paper.get_config("tiny_resnet50_adl").wsol.region_size == 3
  assert paper.get_config("cub_vgg16_gap").optimizer.learning_rate == 0.001
  # The official VGG16 CUB batch of 30 does not divide over 8 devices: rejected up front.
  with pytest.raises(ValueError, match=r"batch_size \(30\) must be divisible .* \(8\)"):
    config_lib.validate_runtime(paper.get_config("cub_vgg16_gap"), num_devices=8,
                                process_count=1)
  bad = smoke.get_config()
  bad.wsol.methods = "cam,infocam_max"
  with pytest.raises(ValueError, match="config.wsol.methods"):
    config_lib.validate_config(bad, wsol.SCHEMA)


# ---------------------------------------------------------------------------
# The wiring: each reported method is the map the paper defines (issue 17).

# name -> the documented arguments of ``cam.infocam`` (None: plain CAM / Grad-CAM), written
# here independently of the evaluator's registry.
DOCUMENTED = {"cam": None, "infocam": ("mean", "full"), "infocam_min": ("min", "full"),
              "infocam_same": ("mean", "same"), "infocam_min_same": ("min", "same"),
              "cam_region": ("none", "full"), "cam_region_same": ("none", "same"),
              "grad_cam": None}


@pytest.mark.slow
def test_every_method_is_the_documented_map(smoke_run):
  """The evaluator's per-method maps equal ``cam.*`` called directly on the same batch."""
  import jax
  from infocam_jax import cam, data, models
  from infocam_jax.evaluators import cam_methods as ev
  from infocam_jax.train import build
  workdir, _, res, _ = smoke_run
  assert set(ev.METHODS) == set(DOCUMENTED)
  model, variables, _ = build.load_for_evaluation(str(workdir))
  src = data.load_source("cluttered_digits/small", "test")
  batch = data.make_pipeline(src, batch_size=16, train=False, image_size=32).get_batch(0)
  images, labels = batch["image"], batch["label"].astype(np.int32)
  region = res["config"]["wsol"]["region_size"]
  logits, maps = ev.make_predict_fn(model, tuple(DOCUMENTED), region)(variables, images, labels)
  z, feats = model.apply(variables, images, train=False)
  w, _ = models.head_weights(variables)
  np.testing.assert_allclose(logits, z, atol=1e-6)  # jit vs eager: measured 9e-8
  for name, args in DOCUMENTED.items():
    if name == "cam":
      want = cam.class_activation_map(feats, w, labels)
    elif name == "grad_cam":  # through the whole network (jax.grad), not the head shortcut
      want = cam.grad_cam(model.apply, variables, images, labels, train=False)
    else:
      want = cam.infocam(feats, w, labels, logits=z, variant=args[0], region_size=region,
                         padding=args[1])
    got = np.asarray(maps[name])
    assert got.shape == np.shape(want), name
    # jit vs eager float order: measured <= 1e-6 of the map's range
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-4, atol=1e-5 * np.abs(want).max(),
                               err_msg=name)
  # The ablation pairs really differ (a method wired to another variant would be caught).
  for a, b in (("infocam", "cam_region"), ("infocam_min", "infocam"),
               ("infocam_same", "cam_region_same"), ("infocam_min_same", "infocam_same")):
    assert not np.allclose(maps[a], maps[b]), (a, b)
  del jax


# ---------------------------------------------------------------------------
# What a newcomer hits (issue 16): evaluation settings, results kept, help, exit statuses.


@pytest.mark.slow
def test_evaluation_settings_never_retrain_nor_overwrite(smoke_run, tmp_path, env):
  workdir, _, res, _ = smoke_run
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  before = (copy / "results.json").read_text()
  steps = sorted(os.listdir(copy / "checkpoints"))
  # train_and_evaluate with another region size: no refusal, no training, its own folder.
  proc = _run(multidevice.wsol_command(SMOKE, str(copy), [*RUN, "--config.wsol.region_size=2"]),
              env)
  assert (copy / "results.json").read_text() == before
  assert sorted(os.listdir(copy / "checkpoints")) == steps
  out = copy / "eval" / "region_size=2"
  other = json.loads((out / "results.json").read_text())
  assert other["config"]["wsol"]["region_size"] == 2 and (out / "curves.json").is_file()
  assert (out / "localization_grid.png").is_file() and str(out) in proc.stdout
  assert other["classification"] == res["classification"]  # the same trained model
  assert other["methods"]["cam"] == res["methods"]["cam"]  # CAM has no region sum
  assert other["methods"]["infocam"] != res["methods"]["infocam"]
  # --overwrite puts it into DIR itself.
  _run(multidevice.wsol_command(SMOKE, str(copy), [*RUN, "--mode=evaluate", "--overwrite",
                                                   "--config.wsol.region_size=2"]), env)
  again = json.loads((copy / "results.json").read_text())
  assert again["config"]["wsol"]["region_size"] == 2
  assert again["protocols"] == other["protocols"]
  # A training field is refused: one message, status 2, nothing trained.
  proc = _run(multidevice.wsol_command(SMOKE, str(copy), [*RUN,
                                                          "--config.optimizer.learning_rate=0.5"]),
              env, check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert "different config" in proc.stderr and "optimizer.learning_rate" in proc.stderr
  assert sorted(os.listdir(copy / "checkpoints")) == steps
  # --mode=evaluate with a field that changes what was trained or what data is evaluated
  # (issue 24: these once overwrote DIR/results.json): status 2, the field named, nothing written.
  kept = (copy / "results.json").read_text()
  for extra, field in ((["--config.data.image_size=64", "--config.data.resize_size=64"],
                        "data.image_size"), (["--config.seed=1"], "seed")):
    proc = _run(multidevice.wsol_command(SMOKE, str(copy), [*RUN, "--mode=evaluate", *extra]),
                env, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"  {field}: " in proc.stderr and "refusing to evaluate" in proc.stderr
  assert (copy / "results.json").read_text() == kept


@pytest.mark.parametrize("module", ["wsol", "pc_softmax"])
def test_help_exits_0_and_lists_fields_variants_and_workdir(module):
  proc = subprocess.run([sys.executable, "-m", f"experiments.{module}", "--help"],
                        cwd=multidevice.REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = proc.stdout
  assert "--workdir (required)" in out and "--config.optimizer.learning_rate=" in out
  own = {"wsol": "paper.py  variants: cub_resnet50", "pc_softmax": "pc_softmax.py  variants: default"}
  assert own[module] in out and "Exit status: 0 done, 2 bad input" in out
  assert "chex" not in out  # only the experiment's own flags


@pytest.mark.parametrize("module", ["wsol", "pc_softmax"])
@pytest.mark.parametrize("args, words", [
    (["--config.optimizer.learnin_rate=0.1"], ["learning_rate"]),
    (["--config.trian.epochs=1"], ["unknown config group 'trian'", "config has no 'trian'"]),
    (["--config.train.epoch=1"], ["unknown config group 'train'", "--config.num_epochs"]),
    (["--config.optimizer.learning_rate.x=1"], ["config.optimizer.learning_rate is a field"]),
    (["--config.num_epochs=abc"], ["num_epochs", "abc"]),
    # wsol: the variant typo, with the variants; pc_softmax: paper.py is not its config.
    (["--config=experiments/configs/paper.py:cub_resnet5"], ["paper.py"]),
    (["--config=no/such/config.py"], ["no/such/config.py"]),
])
def test_bad_input_is_one_message_and_status_2(tmp_path, module, args, words):
  proc = subprocess.run([sys.executable, "-m", f"experiments.{module}",
                         f"--workdir={tmp_path / 'run'}", *args], cwd=multidevice.REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
  for w in words:
    assert w in proc.stderr, (w, proc.stderr)
  if module == "wsol" and "cub_resnet5" in args[0]:
    assert "cub_resnet50" in proc.stderr, proc.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_library_path_reproduces_the_experiment(smoke_run):
  """The README's library snippet (build + evaluators) gives the experiment's test accuracy."""
  from experiments.configs import smoke
  from infocam_jax.evaluators import classification
  from infocam_jax.train import build
  workdir, _, res, _ = smoke_run
  config = smoke.get_config()
  data = build.open_data(config, ["train", "validation", "test"])
  model, variables, selection = build.load_for_evaluation(str(workdir), "last")
  assert selection["step"] == res["selection"]["step"] == 30
  test = build.make_pipeline(config, data.sources["test"], train=False)
  logits, labels = classification.predict(model, variables, test)
  m = classification.classification_metrics(logits, labels, objective="softmax",
                                            prior=data.prior, class_counts_train=data.class_counts)
  assert m["count"] == 80
  assert m["accuracy"] == pytest.approx(res["classification"]["test"]["accuracy"], abs=1e-9)
  assert m["mean_per_class_accuracy"] == pytest.approx(
      res["classification"]["test"]["mean_per_class_accuracy"], abs=1e-9)


@pytest.mark.slow
def test_documented_smoke_table_is_what_the_code_prints(smoke_run):
  """BUILD_NOTES' smoke table against this run: exactly on the machine that recorded it, by shape
  (rows, columns, captions) elsewhere, where a training run's rounding legitimately differs."""
  from tools import doc_tables
  _, _, res, _ = smoke_run
  assert doc_tables.compare_fresh("wsol_run", ["runs/smoke_wsol"], [res]) in ("exact", "shape")


@pytest.mark.parametrize("module, foreign", [("wsol", "pc_softmax.py"), ("wsol", "synthetic_mi.py"),
                                             ("pc_softmax", "default.py")])
def test_a_config_of_another_experiment_is_one_short_message(tmp_path, module, foreign):
  proc = subprocess.run([sys.executable, "-m", f"experiments.{module}", f"--workdir={tmp_path / 'r'}",
                         f"--config=experiments/configs/{foreign}"], cwd=multidevice.REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
  assert "is a config of experiments." in proc.stderr and len(proc.stderr.splitlines()) <= 8
  assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("module, own, foreign", [
    ("wsol", ["default.py", "smoke.py", "paper.py", "fashion_wsol.py"],
     ["pc_softmax.py", "synthetic_mi.py"]),
    ("pc_softmax", ["pc_softmax.py"], ["default.py", "smoke.py", "paper.py", "synthetic_mi.py"])])
def test_help_lists_only_the_experiments_own_configs(module, own, foreign):
  proc = subprocess.run([sys.executable, "-m", f"experiments.{module}", "--help"],
                        cwd=multidevice.REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  listed = proc.stdout.split("Config files:")[1].split("Config fields")[0]
  for name in own:
    assert f"configs/{name}" in listed, (name, listed)
  for name in foreign:
    assert f"configs/{name}" not in listed, (name, listed)


def test_evaluate_without_a_trained_run_stops_before_touching_data(tmp_path):
  """--mode=evaluate in an empty directory: status 2 at once, no dataset built or written."""
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"))
  proc = subprocess.run([sys.executable, "-m", "experiments.wsol", f"--workdir={tmp_path / 'r'}",
                         "--mode=evaluate"], cwd=multidevice.REPO, env=env,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.startswith("error: No exported model in "), proc.stderr
  assert "train it first" in proc.stderr, proc.stderr
  assert not (tmp_path / "tfds").exists(), "the dataset was opened before the export was checked"
