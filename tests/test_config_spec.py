"""The paper's configuration pinned to the specification (issue 27).

Every value the paper or the official code fixes (``/work/shared/reference/paper-spec.md``,
"§" below) is asserted for every config variant that reproduces it
(``experiments/configs/paper.py``, ``pc_softmax.py``), and so is the offline default's recipe
(``default.py``, ``fashion_wsol.py``: their docstrings and BUILD_NOTES §7 are the source).
Each pin is one row of ``PINS``: the config field, the expected value (or a function of the
variant), the rule in words and its source; a failure names all three. The schedule, the
head's learning-rate groups and the evaluation grid are also checked through the code that
consumes them (the learning rate at the epoch boundaries, the head mask, the threshold grid).

The table in BUILD_NOTES ("Configuration pinned to the specification") is printed by::

  PYTHONPATH=$PWD python tests/test_config_spec.py
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np
import pytest

from experiments.configs import default as default_cfg
from experiments.configs import fashion_wsol as fashion_cfg
from experiments.configs import paper
from experiments.configs import pc_softmax

T_PAPER = "test_paper_wsol_config_follows_the_specification"
T_PC = "test_pc_softmax_config_follows_the_specification"
T_OFFLINE = "test_offline_wsol_recipe_is_pinned"


@dataclasses.dataclass(frozen=True)
class Pin:
  """One pinned value: ``field`` of the configs ``applies`` to must equal ``expected``."""
  field: str  # dotted path in the ConfigDict
  expected: Any  # a value, or a function of the variant name
  rule: str
  source: str
  test: str
  applies: Callable[[str], bool] = lambda v: True

  def value_for(self, variant: str) -> Any:
    return self.expected(variant) if callable(self.expected) else self.expected


def _get(config, field: str) -> Any:
  value = config
  for part in field.split("."):
    value = value[part]
  return value


def _ds(v: str) -> str:
  return v.split("_")[0]  # cub | tiny


def _arch(v: str) -> str:
  return "resnet50" if "resnet50" in v else "vgg16_gap"


def _adl(v: str) -> bool:
  return v.endswith("_adl")


def _by(table: dict, key: Callable[[str], Any]) -> Callable[[str], Any]:
  return lambda v: table[key(v)]


# -- the official infoCAM WSOL runs (paper.py) ---------------------------------------------------

_BATCH = {("cub", "resnet50"): 128, ("cub", "vgg16_gap"): 30, ("tiny", "resnet50"): 640,
          ("tiny", "vgg16_gap"): 1280}
_OFFICIAL_FLAGS = {  # the CAM flags of each official script -> the method that evaluates them
    ("cub", "resnet50", False): "infocam_min",  # --max-cam --conv-cam
    ("cub", "resnet50", True): "cam_region",  # --conv-cam
    ("cub", "vgg16_gap", False): "cam_region", ("cub", "vgg16_gap", True): "cam_region",
    ("tiny", "resnet50", False): "infocam_min", ("tiny", "resnet50", True): "infocam_min",
    ("tiny", "vgg16_gap", False): "infocam_min", ("tiny", "vgg16_gap", True): "infocam_min"}
_TRAIN_IMAGES = {"cub": 5994, "tiny": 100_000}  # §2.5: CUB train.txt, Tiny train.txt

S34 = "paper-spec §3.4 (official info_cam/*/scripts, train.py, util_args.py)"
PAPER_PINS = [
    Pin("data.name", _by({"cub": "caltech_birds2011", "tiny": "tiny_imagenet"}, _ds),
        "dataset: CUB-200-2011 / Tiny-ImageNet-200", "paper-spec §2.5", T_PAPER),
    Pin("data.image_size", _by({"cub": 224, "tiny": 64}, _ds),
        "crop size: CUB 224, Tiny-ImageNet 64 (--crop-size 64)", "paper-spec §2.4, §3.4 (input)",
        T_PAPER),
    Pin("data.resize_size", _by({"cub": 256, "tiny": 64}, _ds),
        "square resize before the crop: CUB 256, Tiny-ImageNet 64 (--resize-size 64)",
        "paper-spec §2.4 (util_loader.py)", T_PAPER),
    Pin("data.random_crop", True, "train transform: RandomCrop", "paper-spec §2.4", T_PAPER),
    Pin("data.flip", True, "train transform: RandomHorizontalFlip", "paper-spec §2.4", T_PAPER),
    Pin("data.max_boxes", 1, "one GT box per image (bounding_boxes.txt)", "paper-spec §2.3, §2.5",
        T_PAPER),
    Pin("data.train_split", "train", "training list: the official train.txt (all training images)",
        "paper-spec §2.5", T_PAPER),
    Pin("data.test_split", "wsol_test",
        "reported numbers on the official test.txt half (CUB 2,878 / Tiny 5,000)",
        "paper-spec §2.5, §5.9", T_PAPER),
    Pin("data.eval_split", "wsol_val",
        "checkpoint and threshold selection on the other half (val.txt), never on test",
        "paper-spec §5.7, §5.8 (recommendation; the official code selected on test.txt)",
        T_PAPER),
    Pin("model.arch", _by({"resnet50": "resnet50", "vgg16_gap": "vgg16_gap"}, _arch),
        "backbone: ResNet-50 / VGG16-GAP", "paper-spec §3.4, §4", T_PAPER),
    Pin("model.layer4_stride", 1, "ResNet-50 layer4 built with stride 1 (14x14 maps at 224)",
        "paper-spec §4 (network/resnet.py)", T_PAPER, lambda v: _arch(v) == "resnet50"),
    Pin("model.pretrained",
        _by({"resnet50": os.path.join(paper.TORCH_CACHE, "resnet50-19c8e357.pth"),
             "vgg16_gap": os.path.join(paper.TORCH_CACHE, "vgg16-397923af.pth")}, _arch),
        "init: torchvision ImageNet weights (resnet50-19c8e357.pth / vgg16-397923af.pth)",
        "paper-spec §3.4 (init), §4", T_PAPER),
    Pin("model.adl_positions",
        lambda v: {"resnet50": "30 40 42", "vgg16_gap": "3M 4M 53"}[_arch(v)] if _adl(v) else "",
        "ADL positions: ResNet '30 40 42', VGG '3M 4M 53'; none without ADL", S34, T_PAPER),
    Pin("model.adl_threshold",
        lambda v: {"resnet50": 0.90, "vgg16_gap": 0.80}[_arch(v)] if _adl(v) else 0.0,
        "ADL drop threshold: ResNet 0.90, VGG 0.80", S34, T_PAPER),
    Pin("model.adl_drop_rate", lambda v: 0.75 if _adl(v) else 0.0, "ADL drop rate 0.75", S34,
        T_PAPER),
    Pin("loss", "softmax", "plain nn.CrossEntropyLoss (no PC-softmax in WSOL)", S34, T_PAPER),
    Pin("optimizer.name", "sgd", "optimizer: SGD", S34, T_PAPER),
    Pin("optimizer.momentum", 0.9, "SGD momentum 0.9", S34, T_PAPER),
    Pin("optimizer.nesterov", True, "Nesterov momentum", S34, T_PAPER),
    Pin("optimizer.learning_rate", _by({"resnet50": 0.01, "vgg16_gap": 0.001}, _arch),
        "base learning rate: ResNet-50 0.01, VGG16-GAP 0.001", S34, T_PAPER),
    Pin("optimizer.head_lr_multiplier", 10.0,
        "--lr-ratio 10: ResNet layer4 + fc, VGG conv6 + fc at 10x", "paper-spec §3.4, §4 "
        "(param groups)", T_PAPER),
    Pin("optimizer.weight_decay", 1e-4, "weight decay 1e-4", S34, T_PAPER),
    Pin("num_epochs", 200.0, "200 epochs", S34, T_PAPER),
    Pin("num_train_steps", -1, "length given in epochs (not steps)", S34, T_PAPER),
    Pin("optimizer.schedule", "step", "step schedule (LR x0.1 every 60 epochs)", S34, T_PAPER),
    Pin("optimizer.decay_every_epochs", 60.0, "LR x0.1 every 60 epochs (at 60, 120, 180)", S34,
        T_PAPER),
    Pin("optimizer.decay_factor", 0.1, "LR decay factor 0.1", S34, T_PAPER),
    Pin("optimizer.warmup_steps", 0, "no warm-up (train.py's schedule starts at the base LR)",
        S34, T_PAPER),
    Pin("batch_size", lambda v: _BATCH[(_ds(v), _arch(v))],
        "global batch: CUB R50 128, CUB VGG 30, Tiny R50 640, Tiny VGG 1280", S34, T_PAPER),
    Pin("eval_batch_size", lambda v: _BATCH[(_ds(v), _arch(v))],
        "evaluation batch = training batch (the official running Loc meters depend on it)",
        "paper-spec §2.3, §5.4; paper.py docstring (assumed loader batch)", T_PAPER),
    Pin("eval_every_steps", lambda v: _TRAIN_IMAGES[_ds(v)] // _BATCH[(_ds(v), _arch(v))],
        "validation accuracy after every epoch (keep-best checkpoint)", "paper-spec §2.5 "
        "(train.py: is_best after each epoch)", T_PAPER),
    Pin("wsol.checkpoint", "best", "the keep-best (model_best) checkpoint is evaluated",
        "paper-spec §2.5", T_PAPER),
    Pin("best_metric", "val/accuracy", "model_best chosen by top-1 classification accuracy",
        "paper-spec §2.5", T_PAPER),
    Pin("best_mode", "max", "is_best = acc1 > best_acc1", "paper-spec §2.5", T_PAPER),
    Pin("wsol.region_size", _by({"cub": 4, "tiny": 3}, _ds),
        "infoCAM region size: CUB 4x4 ones, pad 3 (14 -> 17); Tiny 3x3, pad 2 (4 -> 6)",
        "paper-spec §2.1 step 5, §3.4 (util_cam.py get_cam)", T_PAPER),
    Pin("wsol.loc_threshold", 0.2, "CAM threshold --cam-thr 0.2 for Top-1 / GT-known Loc",
        "paper-spec §2.2 (util_args.py default, no script overrides it)", T_PAPER),
    Pin("wsol.official_method", lambda v: _OFFICIAL_FLAGS[(_ds(v), _arch(v), _adl(v))],
        "the method the official script's CAM flags evaluate (--max-cam --conv-cam -> "
        "infocam_min; --conv-cam alone -> cam_region)", "paper-spec §3.4 (CAM flags), §2.1",
        T_PAPER),
    Pin("wsol.paper_top1_loc", _by({"cub": 55.83, "tiny": 43.34}, _ds),
        "the paper's Top-1 Loc: CUB 55.83, Tiny-ImageNet 43.34", "paper-spec §3.0 (PwC)",
        T_PAPER),
    Pin("wsol.paper_gt", "auto",
        "the official GT transforms (CUB 255/-15, Tiny corners read as x, y, w, h) in the paper "
        "protocol", "paper-spec §2.3, §5.1, §5.2", T_PAPER),
]

# -- PC-softmax on imbalanced data (pc_softmax.py) -----------------------------------------------

_MNIST = ("mnist", "mnist_idx", "fashion_mnist")
_CUB = ("cub", "cub_last_layer")
S32 = "paper-spec §3.2 (pc_softmax_higher_accuracy/mnist_experiments)"
S33 = "paper-spec §3.3 (pc_softmax_higher_accuracy/cub_experiments train.sh)"
is_mnist = lambda v: v in _MNIST
is_cub = lambda v: v in _CUB
PC_PINS = [
    Pin("experiment.objectives", "softmax,pc_softmax",
        "both objectives on the same data (softmax_type pc_softmax / trad_softmax)",
        "paper-spec §3.2, §3.3", T_PC),
    Pin("data.name", {"mnist": "mnist", "mnist_idx": "mnist_idx/mnist",
                      "fashion_mnist": "mnist_idx/fashion_mnist"}.get,
        "MNIST (tfds or its IDX files), Fashion-MNIST (same protocol)", S32, T_PC, is_mnist),
    Pin("data.train_split", "imbalanced_train",
        "training: MNIST training indices 0-39,999, 300 per even / 3,000 per odd digit (1:10)",
        S32 + " (dataset_tool.py)", T_PC, is_mnist),
    Pin("data.test_split", "imbalanced_test",
        "the paper's 'test': training indices 40,000-49,999, same caps", S32, T_PC, is_mnist),
    Pin("experiment.extra_test_splits", "test", "also the official balanced 10k test set",
        "paper-spec §5.14 (recommendation)", T_PC, is_mnist),
    Pin("model.arch", "lenet", "the PyTorch MNIST example net (conv20-conv50-fc500-fc10)", S32,
        T_PC, is_mnist),
    Pin("optimizer.name", "sgd", "SGD", S32, T_PC, is_mnist),
    Pin("optimizer.learning_rate", 0.01, "lr 0.01", S32, T_PC, is_mnist),
    Pin("optimizer.momentum", 0.5, "momentum 0.5", S32, T_PC, is_mnist),
    Pin("optimizer.nesterov", False, "plain (not Nesterov) momentum: torch SGD default", S32, T_PC,
        is_mnist),
    Pin("optimizer.weight_decay", 0.0, "no weight decay", S32, T_PC, is_mnist),
    Pin("optimizer.schedule", "constant", "constant learning rate", S32, T_PC, is_mnist),
    Pin("optimizer.warmup_steps", 0, "no warm-up", S32, T_PC, is_mnist),
    Pin("batch_size", 64, "batch 64", S32, T_PC, is_mnist),
    Pin("num_epochs", 8.0, "8 epochs", S32, T_PC, is_mnist),
    Pin("num_train_steps", -1, "length given in epochs", S32, T_PC, is_mnist),
    Pin("data.mean", {"mnist": (0.1307,), "mnist_idx": (0.1307,), "fashion_mnist": (0.2860,)}.get,
        "MNIST Normalize((0.1307,), (0.3081,)) of the PyTorch example; Fashion-MNIST: its "
        "training set's mean", S32 + "; pc_softmax.py docstring (Fashion, measured)", T_PC,
        is_mnist),
    Pin("data.std", {"mnist": (0.3081,), "mnist_idx": (0.3081,), "fashion_mnist": (0.3530,)}.get,
        "MNIST std 0.3081; Fashion-MNIST 0.3530", S32 + "; pc_softmax.py docstring", T_PC,
        is_mnist),
    Pin("data.name", "caltech_birds2011", "CUB-200-2011", S33, T_PC, is_cub),
    Pin("data.train_split", "imbalanced_train",
        "training: 10 images per odd-numbered class, 30 per even-numbered (3,997)",
        "paper-spec §3.3 (data/cub_200/train.txt)", T_PC, is_cub),
    Pin("data.test_split", "imbalanced_test", "test: the official val.txt, 5 / 15 (1,996)",
        "paper-spec §3.3 (data/cub_200/val.txt)", T_PC, is_cub),
    Pin("batch_size", 64, "batch 64", S33, T_PC, is_cub),
    Pin("eval_batch_size", 100, "evaluation batch 100 (eval.sh)", "paper-spec §3.3 (eval.py)", T_PC,
        is_cub),
    Pin("num_train_steps", 2810, "MAX_STEPS=2810", S33, T_PC, is_cub),
    Pin("optimizer.schedule", "step", "exponential staircase decay", S33, T_PC, is_cub),
    Pin("optimizer.decay_every_steps", 936, "decay every int(5994 * 10 / 64) = 936 steps", S33,
        T_PC, is_cub),
    Pin("optimizer.decay_factor", 0.1, "decay x0.1", S33, T_PC, is_cub),
    Pin("optimizer.warmup_steps", 0, "no warm-up", S33, T_PC, is_cub),
    Pin("optimizer.momentum", 0.9, "momentum optimizer 0.9", S33, T_PC, is_cub),
    Pin("experiment.select", "last", "the final parameters (fixed 2,810 steps; no validation "
        "split)", S33 + "; pc_softmax.py docstring", T_PC, is_cub),
    Pin("model.last_layer_only", {"cub": False, "cub_last_layer": True}.get,
        "cub_last_layer: only the classifier trains (CHECKPOINT_EXCLUDE_SCOPES=Logits, only "
        "Logits trainable); cub: fine-tuned end to end (ours)", S33 + "; pc_softmax.py docstring",
        T_PC, is_cub),
    Pin("optimizer.learning_rate", {"cub": 0.001, "cub_last_layer": 0.01}.get,
        "cub_last_layer: LR 0.01 (the paper's); cub: 0.001 with the head at 10x (the WSOL "
        "fine-tuning recipe)", S33 + "; pc_softmax.py docstring", T_PC, is_cub),
    Pin("optimizer.head_lr_multiplier", {"cub": 10.0, "cub_last_layer": 1.0}.get,
        "cub: layer4 + fc at 10x; cub_last_layer: one group", "pc_softmax.py docstring", T_PC,
        is_cub),
    Pin("optimizer.nesterov", {"cub": True, "cub_last_layer": False}.get,
        "cub_last_layer: TF MomentumOptimizer (not Nesterov); cub: Nesterov (WSOL recipe)",
        S33 + "; pc_softmax.py docstring", T_PC, is_cub),
    Pin("optimizer.weight_decay", {"cub": 1e-4, "cub_last_layer": 0.0}.get,
        "cub_last_layer: none (the paper's 4e-5 would decay the frozen backbone in this engine); "
        "cub: 1e-4", "pc_softmax.py docstring (deviation from §3.3)", T_PC, is_cub),
]

# -- the offline WSOL default (default.py) and fashion_wsol.py -----------------------------------

SD = "default.py docstring; BUILD_NOTES §7 (offline WSOL default)"
OFFLINE_PINS = [
    Pin("data.name", {"default": "cluttered_digits", "fashion_wsol": "fashion_wsol"}.get,
        "offline data: cluttered digits / Fashion-MNIST articles on photographs",
        SD + "; fashion_wsol.py docstring", T_OFFLINE),
    Pin("data.image_size", 32, "network input 32x32", SD, T_OFFLINE),
    Pin("data.resize_size", 32, "resized to 32, no crop", SD, T_OFFLINE),
    Pin("data.random_crop", False, "no random crop", SD, T_OFFLINE),
    Pin("data.flip", {"default": False, "fashion_wsol": True}.get,
        "no flip for digits (a mirrored digit is another shape); flips for garments",
        SD + "; fashion_wsol.py docstring", T_OFFLINE),
    Pin("model.arch", "resnet_tiny", "resnet_tiny (one BasicBlock per stage, 8/16/32/64)", SD,
        T_OFFLINE),
    Pin("model.layer4_stride", 1, "layer4 stride 1 (8x8 maps at 32x32)", SD, T_OFFLINE),
    Pin("loss", "softmax", "plain cross-entropy", SD, T_OFFLINE),
    Pin("optimizer.name", "sgd", "SGD", SD, T_OFFLINE),
    Pin("optimizer.momentum", 0.9, "momentum 0.9", SD, T_OFFLINE),
    Pin("optimizer.nesterov", True, "Nesterov", SD, T_OFFLINE),
    Pin("optimizer.learning_rate", 0.1, "lr 0.1", SD, T_OFFLINE),
    Pin("optimizer.weight_decay", 1e-4, "weight decay 1e-4 on all parameters", SD, T_OFFLINE),
    Pin("optimizer.head_lr_multiplier", 1.0,
        "no 10x head LR (from scratch it collapsed this net to chance in some runs)", SD,
        T_OFFLINE),
    Pin("optimizer.schedule", "cosine", "cosine decay", SD, T_OFFLINE),
    Pin("optimizer.warmup_steps", 150, "after a linear warm-up of 150 steps", SD, T_OFFLINE),
    Pin("batch_size", 64, "batch 64", SD, T_OFFLINE),
    Pin("num_epochs", 12.0, "12 epochs (936 steps)", SD, T_OFFLINE),
    Pin("num_train_steps", -1, "length given in epochs", SD, T_OFFLINE),
    Pin("wsol.region_size", 2, "region size 2 on the 8x8 maps", SD, T_OFFLINE),
    Pin("wsol.checkpoint", "last", "the last checkpoint", SD, T_OFFLINE),
    Pin("wsol.loc_threshold", 0.2, "Top-1 / GT-known Loc at the official 0.2",
        "paper-spec §2.2; BUILD_NOTES §7", T_OFFLINE),
]


def _configs(pins_name: str) -> dict[str, Any]:
  if pins_name == "paper":
    return {v: paper.get_config(v) for v in paper.VARIANTS}
  if pins_name == "pc":
    return {v: pc_softmax.get_config(v) for v in _MNIST + _CUB}
  return {"default": default_cfg.get_config(), "fashion_wsol": fashion_cfg.get_config()}


def _same(got: Any, want: Any) -> bool:
  if isinstance(want, tuple):
    return tuple(got) == want
  if isinstance(want, bool):
    return isinstance(got, bool) and got == want
  return got == want


def _check(pins, configs, where: str) -> list[str]:
  failures = []
  for pin in pins:
    for variant, config in configs.items():
      if not pin.applies(variant):
        continue
      want, got = pin.value_for(variant), _get(config, pin.field)
      if not _same(got, want):
        failures.append(f"{where}:{variant} {pin.field} = {got!r}, the rule says {want!r}: "
                        f"{pin.rule} [{pin.source}]")
  return failures


def test_paper_wsol_config_follows_the_specification():
  configs = _configs("paper")
  assert len(configs) == 8 and set(paper.VARIANTS) == {
      f"{d}_{a}{s}" for d in ("cub", "tiny") for a in ("resnet50", "vgg16_gap")
      for s in ("", "_adl")}, "the paper's 8 WSOL runs (paper-spec §3.4 table)"
  failures = _check(PAPER_PINS, configs, "paper.py")
  assert not failures, "\n".join(failures)


def test_pc_softmax_config_follows_the_specification():
  failures = _check(PC_PINS, _configs("pc"), "pc_softmax.py")
  assert not failures, "\n".join(failures)


def test_offline_wsol_recipe_is_pinned():
  configs = _configs("offline")
  failures = _check(OFFLINE_PINS, configs, "default.py/fashion_wsol.py")
  assert not failures, "\n".join(failures)
  # fashion_wsol.py is default.py's recipe on other data: every other field is the same.
  d, f = configs["default"].to_dict(), configs["fashion_wsol"].to_dict()
  f["data"]["name"], f["data"]["flip"] = d["data"]["name"], d["data"]["flip"]
  assert f == d, "fashion_wsol.py: 'model and recipe: those of default.py' (its docstring)"


# -- the values as the code consumes them -------------------------------------------------------


def _lr_at(config, steps_per_epoch: int, steps) -> np.ndarray:
  from infocam_jax.train import loop, optim  # pylint: disable=g-import-not-at-top
  total = loop.num_train_steps(config, steps_per_epoch)
  _, schedule = optim.optimizer_from_config(config.optimizer, total_steps=total,
                                            steps_per_epoch=steps_per_epoch)
  return np.array([float(schedule(s)) for s in steps]), total


@pytest.mark.parametrize("variant", ["cub_resnet50", "cub_vgg16_gap_adl", "tiny_resnet50_adl",
                                     "tiny_vgg16_gap"])
def test_paper_schedule_steps_down_at_epochs_60_120_180_without_warmup(variant):
  """Rule (paper-spec §3.4): base LR from the first update, x0.1 at epochs 60, 120, 180, 200
  epochs in all."""
  c = paper.get_config(variant)
  spe = _TRAIN_IMAGES[_ds(variant)] // c.batch_size
  lr = c.optimizer.learning_rate
  epochs = [0, 59, 60, 119, 120, 179, 180, 199]
  got, total = _lr_at(c, spe, [e * spe for e in epochs])
  want = lr * np.array([1, 1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
  np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=(
      f"paper.py:{variant}: LR schedule rule (paper-spec §3.4: base {lr}, no warm-up, x0.1 every "
      f"60 epochs) at epochs {epochs}"))
  assert total == 200 * spe, f"paper.py:{variant}: 200 epochs (paper-spec §3.4)"
  got_end, _ = _lr_at(c, spe, [60 * spe - 1])
  assert got_end[0] == pytest.approx(lr), "the decay happens at the epoch boundary, not before"


@pytest.mark.parametrize("variant", ["cub", "cub_last_layer"])
def test_pc_softmax_cub_schedule_is_the_papers_staircase(variant):
  """Rule (paper-spec §3.3): TF exponential_decay(staircase) = lr * 0.1 ** floor(step / 936)
  over MAX_STEPS = 2,810 (the last two updates, 2,808 and 2,809, are at lr / 1000)."""
  c = pc_softmax.get_config(variant)
  lr = c.optimizer.learning_rate
  steps = np.array([0, 935, 936, 1871, 1872, 2807, 2808, 2809])
  got, total = _lr_at(c, 3997 // 64, steps.tolist())
  np.testing.assert_allclose(got, lr * 0.1 ** (steps // 936), rtol=1e-5,
                             err_msg=f"pc_softmax.py:{variant}: staircase rule (paper-spec §3.3)")
  assert total == 2810


def test_offline_default_warms_up_then_decays_by_cosine():
  """Rule (default.py docstring, BUILD_NOTES §7): linear warm-up from 0 over 150 updates to
  0.1, then cosine decay to 0 at the last update."""
  for config in (default_cfg.get_config(), fashion_cfg.get_config()):
    spe = 5000 // config.batch_size  # cluttered_digits / fashion_wsol: 5,000 training images
    got, total = _lr_at(config, spe, [0, 75, 150, 150 + (12 * spe - 150) // 2])
    assert total == 12 * spe == 936
    np.testing.assert_allclose(got, [0.0, 0.05, 0.1, 0.05], rtol=1e-3, atol=1e-6, err_msg=(
        "offline default rule: warm-up 0 -> 0.1 over 150 updates, then cosine (default.py)"))


@pytest.mark.parametrize("arch,head", [("resnet50", {"layer4", "fc"}),
                                       ("vgg16_gap", {"conv6", "fc"})])
def test_paper_head_groups_are_the_official_param_groups(arch, head):
  """Rule (paper-spec §4, train.py): the 10x learning rate applies to ResNet layer4.* and
  fc.*, to VGG16-GAP's conv6 and fc (everything outside features.*), to nothing else."""
  import jax  # pylint: disable=g-import-not-at-top
  from infocam_jax.train import build  # pylint: disable=g-import-not-at-top
  c = paper.get_config(f"tiny_{arch}")
  model = build.build_model(c, 200)
  params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, 64, 64, 3),
                                                                            np.float32),
                                             train=False))["params"]
  mask = build.head_mask_fn(c)(params)
  marked = {k for k, v in mask.items() if all(jax.tree.leaves(v))}
  unmarked = {k for k, v in mask.items() if not any(jax.tree.leaves(v))}
  assert marked == head and marked | unmarked == set(params), (
      f"paper.py {arch}: 10x LR groups {sorted(marked)}, the rule says {sorted(head)} "
      f"(paper-spec §4 param groups)")


def test_paper_protocol_threshold_grid_is_the_official_cam_curve():
  """Rule (paper-spec §2.2: cam_curve sweeps 0.00, 0.05, ..., 0.95) and 0.2 is on it."""
  from infocam_jax.evaluators import wsol  # pylint: disable=g-import-not-at-top
  grid = wsol.threshold_grid("paper", paper.get_config("cub_resnet50").wsol.threshold_step)
  np.testing.assert_allclose(grid, np.arange(20) * 0.05, atol=1e-12,
                             err_msg="paper protocol threshold grid (paper-spec §2.2 cam_curve)")
  assert wsol.resolve_paper_gt("auto", "caltech_birds2011") == "cub_legacy"
  assert wsol.resolve_paper_gt("auto", "tiny_imagenet") == "tiny_legacy"


def test_derived_split_sizes_are_the_papers():
  """Rule (paper-spec §2.5, §3.2, §3.3): the documented sizes of the paper's splits."""
  from infocam_jax.data import sources  # pylint: disable=g-import-not-at-top
  sizes = {(d, s): r.size for d, rules in sources.SPLITS.items() for s, r in rules.items()}
  want = {("caltech_birds2011", "wsol_val"): 2916, ("caltech_birds2011", "wsol_test"): 2878,
          ("caltech_birds2011", "imbalanced_train"): 3997,
          ("caltech_birds2011", "imbalanced_test"): 1996,
          ("tiny_imagenet", "wsol_val"): 5000, ("tiny_imagenet", "wsol_test"): 5000,
          ("mnist", "imbalanced_train"): 16500}
  for key, size in want.items():
    assert sizes[key] == size, f"split size rule {key}: {sizes[key]} != {size} (paper-spec)"


_GROUPS = (  # how the table names a set of paper.py variants
    lambda v: {"cub": "CUB", "tiny": "Tiny"}[_ds(v)],
    lambda v: {"resnet50": "R50", "vgg16_gap": "VGG"}[_arch(v)],
    lambda v: "ADL" if _adl(v) else "no ADL",
    lambda v: ("R50" if _arch(v) == "resnet50" else "VGG") + (" ADL" if _adl(v) else ""),
    lambda v: ("CUB " if _ds(v) == "cub" else "Tiny ") + ("R50" if _arch(v) == "resnet50"
                                                          else "VGG"),
    lambda v: v,
)


def _shown(pin: Pin, variants: list[str]) -> str:
  """The pinned value(s), grouped by the coarsest variant key that determines them."""
  values = {v: repr(pin.value_for(v)) for v in variants}
  if len(set(values.values())) == 1:
    return next(iter(values.values()))
  for key in (_GROUPS if all(v in paper.VARIANTS for v in variants) else (lambda v: v,)):
    groups: dict[str, set[str]] = {}
    for v, val in values.items():
      groups.setdefault(key(v), set()).add(val)
    if all(len(g) == 1 for g in groups.values()):
      return "; ".join(f"{k}: {next(iter(g))}" for k, g in groups.items())
  raise AssertionError("unreachable")


def table() -> str:
  """The BUILD_NOTES table: one row per pinned field (variants collapsed)."""
  rows = ["| config | field | value | source | test |", "|---|---|---|---|---|"]
  for name, pins in (("paper.py", PAPER_PINS), ("pc_softmax.py", PC_PINS),
                     ("default.py / fashion_wsol.py", OFFLINE_PINS)):
    configs = _configs({"paper.py": "paper", "pc_softmax.py": "pc"}.get(name, "offline"))
    for pin in pins:
      shown = _shown(pin, [v for v in configs if pin.applies(v)])
      rows.append(f"| {name} | `{pin.field}` | {shown.replace('|', '/')} | {pin.source} | "
                  f"`{pin.test}` |")
  return "\n".join(rows)


if __name__ == "__main__":
  print(table())
