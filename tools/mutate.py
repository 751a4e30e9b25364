"""Planted-mutation testing: does the test suite notice when the paper is wired wrong?

Each entry of ``MUTANTS`` is one deliberate bug: a module, an exact source snippet
that must occur exactly once in it, its replacement, and the test selection that
should fail ("kill" the mutant). Mutants are applied one at a time to a temporary
copy of the repository (never to the working tree), and only the listed tests run,
with ``-x`` and a timeout. A mutant is

* ``killed``   the tests failed (or errored, or timed out: reported as such);
* ``survived`` the tests passed: a bug of this kind would go unnoticed;
* ``stale``    the file or the snippet is not there (the code moved): re-point it.

Why not mutmut / cosmic-ray: they generate hundreds of operator-level mutants per
module and run a test suite per mutant (hours on 2 cores for these JAX tests), and
mutmut 3.8.1 (tried 2026-11-29) fails before its first mutant on this package
(collecting the tests in its ``mutants/`` copy: "module 'infocam_jax' has no
attribute 'pc_log_softmax'", the lazy exports; it also forks workers from a
process that has imported JAX). Hand-written mutants are the bugs that would make a reported
number wrong (a prior dropped, a convention flipped, an epsilon changed), each
aimed at the tests that own that behaviour.

Usage (from the repository root; one mutant at a time, CPU only)::

    python tools/mutate.py                       # every mutant; table + runs/mutation.json
    python tools/mutate.py --module estimators   # entries whose path contains "estimators"
    python tools/mutate.py --module cam.py,boxes # several
    python tools/mutate.py --only "uniform prior" --keep-output
    python tools/mutate.py --kind "data rule,config value,wiring"   # issue 27's kinds
    python tools/mutate.py --check               # only validate the snippets (no tests)
    python tools/mutate.py --list

Adding a mutant is one line in ``MUTANTS``: ``M(path, snippet, replacement, tests,
name, kind)``; ``tests`` are pytest arguments (files, node ids, ``-k`` / ``-m`` expressions);
``kind`` is one of ``KINDS``: "behaviour" (a formula or convention of the library), "data
rule", "config value" (a value the paper or the official code fixes) or "wiring" (correct
parts connected wrongly). The data-rule, config-value and wiring mutants are aimed at tests
that state the rule in the fast suite (``-m "not slow"``), never at a comparison with a pinned
run output.
Exit status: 0 if every mutant was killed, 1 if any survived or is stale, 2 if a
baseline (unmutated) test selection fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Paths in one place, so that a moved module is re-pointed by one line.
ESTIMATORS = "infocam_jax/estimators.py"
CAM = "infocam_jax/cam.py"
BOXES = "infocam_jax/wsol/boxes.py"
CCL_NUMBA = "infocam_jax/wsol/_numba_kernel.py"
CCL_JAX = "infocam_jax/wsol/_jax_kernel.py"
LOCALIZATION = "infocam_jax/wsol/box_accuracy.py"
STEPS = "infocam_jax/train/steps.py"
LOOP = "infocam_jax/train/loop.py"
TRANSFORMS = "infocam_jax/data/transforms.py"
LAYERS = "infocam_jax/models/layers.py"
RESNET = "infocam_jax/models/resnet.py"
WSOL_EVAL = "infocam_jax/evaluators/wsol.py"
CAM_METHODS = "infocam_jax/evaluators/cam_methods.py"
WSOL_RECORDS = "experiments/_wsol_results.py"
CLASSIFICATION = "infocam_jax/evaluators/classification.py"
BUILD = "infocam_jax/train/build.py"
PIPELINE = "infocam_jax/data/pipeline.py"
CLUTTERED = "infocam_jax/data/cluttered.py"
IDX = "infocam_jax/data/idx.py"
TINY = "infocam_jax/data/tiny_imagenet.py"
SOURCES = "infocam_jax/data/sources.py"
CFG_PAPER = "experiments/configs/paper.py"
CFG_WSOL_BASE = "experiments/configs/wsol_base.py"
CFG_DEFAULT = "experiments/configs/default.py"
CFG_FASHION = "experiments/configs/fashion_wsol.py"
CFG_PC = "experiments/configs/pc_softmax.py"
PXAP = "infocam_jax/wsol/pxap.py"
CLI = "infocam_jax/wsol/cli.py"
GROUND_TRUTH = "infocam_jax/wsol/ground_truth.py"
CCL = "infocam_jax/wsol/conventions.py"  # the IoU leaf and thresholds (was _ccl.py)

T_EST = ("tests/test_estimators.py",)
T_CAM = ("tests/test_cam.py",)
T_BOXES = ("tests/test_boxes.py",)
T_LOC = ("tests/test_localization.py",)
T_CLI = ("tests/test_wsol_cli.py",)
T_BOXES_LOC = ("tests/test_boxes.py", "tests/test_localization.py")
T_RINGS = ("tests/test_wsol_parity.py::test_random_rings_where_hole_boxes_decide",
           "tests/test_wsol_parity.py::test_hole_reaching_only_the_next_iou_threshold_is_found",
           "tests/test_wsol_parity.py::test_hole_size_bound_is_met_exactly_by_a_thin_l_shaped_hole")
T_TRAIN = ("tests/test_train.py",)
T_TRANSFORMS = ("tests/test_data_transforms.py",)
T_BN = ("tests/test_models.py", "tests/test_models_convert.py", "tests/test_torch_equivalence.py",
        "-k", "batchnorm or functional_reference or train_mode or eval_outputs")
T_WSOL = ("tests/test_wsol_experiment.py",)
T_PARITY = ("tests/test_wsol_parity.py",)
T_SMI = ("tests/test_synthetic_mi.py",)
T_PC = ("tests/test_pc_softmax_experiment.py",)
T_BUILD = ("tests/test_build.py",)
# Issue 27: tests that state a rule, fast suite only (never a pinned whole-run output).
T_DATA_RULES = ("tests/test_data_rules.py", "-m", "not slow")
T_CONFIG_SPEC = ("tests/test_config_spec.py", "-m", "not slow")
T_WIRING = ("tests/test_wiring_rules.py", "-m", "not slow")
T_SPLITS = ("tests/test_data_splits.py", "-m", "not slow")

#: Kinds of planted bug: a formula or convention of the library ("behaviour"), a data rule
#: (augmentation, ground truth, normalisation, readers, split rules), a configuration value
#: the paper or the official code fixes, a wire between correct parts (which map, which prior).
KINDS = ("behaviour", "data rule", "config value", "wiring")


@dataclasses.dataclass(frozen=True)
class M:
  """One planted bug."""
  path: str  # module, relative to the repository root
  find: str  # exact snippet, must occur exactly once in the module
  replace: str
  tests: tuple[str, ...]  # pytest arguments that should fail
  name: str  # what the bug is, in words
  kind: str = "behaviour"  # one of KINDS

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"mutant {self.name!r}: kind {self.kind!r} is not one of {KINDS}")


MUTANTS: list[M] = [
    # -- estimators: the paper's PMI / PC-softmax formulas ------------------------------
    M(ESTIMATORS, "logits - jax.nn.logsumexp(logits + jnp.log(prior)",
      "logits - jax.nn.logsumexp(logits - jnp.log(prior)", T_EST,
      "sign flip of log p in pc_log_softmax"),
    M(ESTIMATORS, "return _pick(jax.nn.log_softmax(logits, axis=-1) - jnp.log(prior), labels)",
      "return _pick(jax.nn.log_softmax(logits, axis=-1), labels)", T_EST,
      "prior dropped from pmi (objective='softmax')"),
    M(ESTIMATORS, "return _pick(jax.nn.log_softmax(logits, axis=-1), labels) + log_k",
      "return _pick(jax.nn.log_softmax(logits, axis=-1), labels)", T_EST,
      "log K dropped from the balanced PMI"),
    M(ESTIMATORS, "return _pick(_log_pc_softmax_impl(logits, prior), labels)",
      "return _pick(jax.nn.log_softmax(logits + jnp.log(prior), axis=-1), labels)", T_EST,
      "PC-softmax PMI read as log softmax(z + log p) (log p_y missing)"),
    M(ESTIMATORS, "return jnp.where(valid, picked, jnp.nan)", "return picked", T_EST,
      "out-of-range labels clamped instead of NaN"),
    M(ESTIMATORS, "jnp.square(values - mean)", "jnp.square(values)", T_EST,
      "standard error from raw second moment"),
    M(ESTIMATORS, "return jnp.asarray(c / c.sum(), dtype=dtype)",
      "return jnp.asarray(c / c.max(), dtype=dtype)", T_EST,
      "prior_from_counts normalised by the max"),
    # -- cam: infoCAM, CAM, Grad-CAM, resizing ----------------------------------------------
    M(CAM, "return _region_sum_core(maps, region_size=region_size, padding=padding)",
      "return _region_sum_core(maps, region_size=1, padding=padding)", T_CAM,
      "infoCAM region sum dropped"),
    M(CAM, "w_eff = w_y - (jnp.sum(w_t, axis=0)[None, :] - w_y) / (num_classes - 1)",
      "w_eff = w_y - jnp.mean(w_t, axis=0)[None, :]", T_CAM,
      "infoCAM mean over all K classes (not k != y)"),
    M(CAM, "w_eff = w_y - w_t[jnp.argmin(logits, axis=-1)]",
      "w_eff = w_y - w_t[jnp.argmax(logits, axis=-1)]", T_CAM,
      "infoCAM-min subtracts the argmax class"),
    M(CAM, "pad = ((k - 1) // 2, k // 2)", "pad = (k // 2, (k - 1) // 2)", T_CAM,
      "'same' region-sum padding mirrored"),
    M(CAM, "maps = maps / features.shape[-1]", "maps = maps", T_CAM,
      "CAM reduce='mean' not divided by C"),
    M(CAM, "return jax.nn.relu(maps) if relu else maps", "return maps", T_CAM,
      "Grad-CAM ReLU dropped"),
    M(CAM, "inner = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0",
      "inner = ((a + 2.0) * t - (a + 2.0)) * t * t + 1.0", T_CAM,
      "bicubic kernel wrong (not cv2.INTER_CUBIC)"),
    M(CAM, "finite = jnp.all(jnp.isfinite(x), axis=axes, keepdims=True)",
      "finite = jnp.any(jnp.isfinite(x), axis=axes, keepdims=True)", T_CAM,
      "a map with some NaN/inf treated as finite (not zeroed)"),
    # -- boxes and the component engine ----------------------------------------------------
    M(CCL, "f = np.where(f.astype(np.float64) > d, np.nextafter(f, np.float32(-np.inf)), f)",
      "f = f", T_BOXES_LOC + T_PARITY, "IoU threshold round-down removed (exact ties miss)"),
    M(CCL, "iw = jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]) + one",
      "iw = jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0])", T_BOXES,
      "IoU +1 dropped (JAX)"),
    M(BOXES, "return (b[..., 2] - b[..., 0] + 1.0) * (b[..., 3] - b[..., 1] + 1.0)",
      "return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])", T_BOXES,
      "box area without the inclusive +1"),
    M(BOXES, "    x1 = jnp.minimum(x1, w - 1)\n", "    x1 = jnp.minimum(x1, w)\n", T_BOXES_LOC,
      "wsolevaluation contour clip to W instead of W - 1"),
    M(CCL_NUMBA, "iw = min(ax1, gt[g, 2]) - max(ax0, gt[g, 0]) + one",
      "iw = min(ax1, gt[g, 2]) - max(ax0, gt[g, 0])", T_BOXES, "IoU +1 dropped (numba)"),
    M(CCL_NUMBA, "m = (np.uint64(act[p - u1]) | (np.uint64(act[p - us - u1]) << u1)\n"
      "             | (np.uint64(act[p - us]) << u2) | (np.uint64(act[p - us + u1]) << u3)\n"
      "             | (np.uint64(act[p + u1]) << u4) | (np.uint64(act[p + us + u1]) << u5)\n"
      "             | (np.uint64(act[p + us]) << u6) | (np.uint64(act[p + us - u1]) << u7))",
      "m = (np.uint64(act[p - u1])\n"
      "             | (np.uint64(act[p - us]) << u2)\n"
      "             | (np.uint64(act[p + u1]) << u4)\n"
      "             | (np.uint64(act[p + us]) << u6))", T_BOXES,
      "4-connectivity (numba)"),
    M(CCL_NUMBA, "    x1 = min(x1 + 1, width - 1)\n    y1 = min(y1 + 1, height - 1)\n"
      "  elif box_mode == BOX_CONTOUR:\n    x1 = x1 + 1\n    y1 = y1 + 1\n  one = np.float32(1.0)\n",
      "    x1 = min(x1 + 1, width)\n    y1 = min(y1 + 1, height - 1)\n"
      "  elif box_mode == BOX_CONTOUR:\n    x1 = x1 + 1\n    y1 = y1 + 1\n  one = np.float32(1.0)\n",
      T_BOXES_LOC, "contour clip to W instead of W - 1 (numba)"),
    M(CCL_NUMBA, "            win[0] = min(win[0], attr[c, 2])",
      "            win[0] = min(win[0], attr[c, 2] + 1)", T_RINGS,
      "hole-pass window one column short (numba)"),
    M(CCL_NUMBA, "thr = np.float64(iou_thr[out_v2[t]])",
      "thr = np.float64(iou_thr[min(out_v2[t] + 1, num_j - 1)])", T_RINGS,
      "hole pass skipped unless a hole could pass the threshold after next (numba)"),
    M(CCL_NUMBA, "iw * ih >= need and ((k + 7.0) / 2.0) ** 2 >= need",
      "iw * ih >= need and ((k + 5.0) / 2.0) ** 2 >= need", T_RINGS,
      "hole-size bound too tight: a hole that hits is skipped (numba)"),
    M(CCL_JAX, "if dy == 1 and dx == 1:", "if (dy == 1) == (dx == 1):", T_BOXES,
      "4-connectivity (JAX)"),
    M(LOCALIZATION, '"paper": Protocol("paper", "bicubic", "cubehelix", "contour",',
      '"paper": Protocol("paper", "bicubic", "cubehelix", "inclusive",', T_LOC,
      "paper protocol with the inclusive box convention"),
    M(LOCALIZATION, '"paper": Protocol("paper", "bicubic", "cubehelix", "contour", False,',
      '"paper": Protocol("paper", "bicubic", "cubehelix", "contour", True,', T_LOC,
      "paper protocol with a clamped IoU"),
    M(LOCALIZATION, "best_t = int(np.argmax(v1[j0]))", "best_t = int(np.argmin(v1[j0]))", T_LOC,
      "MaxBoxAcc picks the worst threshold"),
    M(LOCALIZATION, "hit = hit & ~empty[:, None, :]", "hit = hit", T_LOC,
      "empty foreground counted as a box"),
    # -- the training engine ----------------------------------------------------------------
    M(STEPS,
      "return estimators.pc_softmax_cross_entropy_with_integer_labels(logits, labels, prior)",
      "return optax.softmax_cross_entropy_with_integer_labels(logits, labels)", T_TRAIN,
      "PC-softmax loss replaced by plain cross-entropy"),
    M(STEPS, 'return {"mi": estimators.pmi(logits, labels, prior, objective="pc_softmax")}',
      'return {"mi": estimators.pmi(logits, labels)}', T_TRAIN,
      "PC-softmax MI metric read with the uniform prior"),
    M(STEPS, 'batch_stats=new_vars.get("batch_stats", state.batch_stats))',
      "batch_stats=state.batch_stats)", T_TRAIN, "BatchNorm statistics not updated"),
    M(STEPS, '"count": jnp.sum(valid.astype(jnp.float32)),',
      '"count": jnp.float32(valid.shape[0]),', T_TRAIN, "eval counts padding rows"),
    M(STEPS, "float(np.mean(cc[present] / cn[present]))", "float(np.sum(cc) / np.sum(cn))",
      T_TRAIN, "mean per-class accuracy is the pooled accuracy"),
    M(LOOP, "prior = np.asarray(estimators.prior_from_counts(class_counts))",
      "prior = np.full(len(class_counts), 1.0 / len(class_counts))",
      T_TRAIN, "uniform prior in the training loop (PC-softmax = softmax)"),
    M(BUILD, "return self.class_counts / self.class_counts.sum()",
      "return np.full(self.class_counts.size, 1.0 / self.class_counts.size)", T_WIRING,
      "the run's PC prior (computed once in build) is uniform"),
    M(LOOP, "batches = iter(train_data.iterate(start))", "batches = iter(train_data.iterate(0))",
      T_TRAIN, "resume restarts the data stream"),
    M(LOOP, "out[name] = jax.tree.map(lambda a, b: np.asarray(b, a.dtype), current, new)",
      "out[name] = current", T_TRAIN, "initial (pretrained) variables ignored"),
    # -- models: PyTorch BatchNorm semantics --------------------------------------------------
    M(RESNET, "momentum=0.1, epsilon=1e-5,", "momentum=0.1, epsilon=1e-6,", T_BN,
      "BatchNorm eps 1e-5 -> 1e-6 (ResNet)"),
    M(LAYERS, "epsilon: float = 1e-5", "epsilon: float = 1e-6", T_BN,
      "BatchNorm default eps 1e-5 -> 1e-6"),
    M(LAYERS, "if not self.is_initializing():", "if False:", T_BN,
      "BatchNorm running statistics not updated"),
    M(LAYERS, "running_var.value = (1.0 - m) * running_var.value + m * unbiased",
      "running_var.value = (1.0 - m) * running_var.value + m * var", T_BN,
      "biased variance in the running estimate"),
    # -- data transforms ----------------------------------------------------------------------
    M(TRANSFORMS, "u0, u1 = cw - u1, cw - u0", "u0, u1 = cw - u0, cw - u1", T_TRANSFORMS,
      "flipped boxes not mirrored correctly"),
    M(TRANSFORMS, "boxes = np.stack([u0, v0, u1 - 1.0, v1 - 1.0], axis=-1)",
      "boxes = np.stack([u0, v0, u1, v1], axis=-1)", T_TRANSFORMS,
      "boxes not converted to inclusive corners"),
    M(TRANSFORMS, "return int(round((size - crop) / 2.0))", "return (size - crop) // 2",
      T_TRANSFORMS, "centre crop offset floored (torchvision rounds)"),
    M(TRANSFORMS, "sx = left + width - 1 - x if flip else left + x",
      "sx = left + width - 1 - x if flip else left + x + 1", T_TRANSFORMS,
      "crop shifted by one pixel"),
    M(TRANSFORMS, "return images.astype(np.float32) * scale - shift",
      "return images.astype(np.float32) * scale + shift", T_TRANSFORMS,
      "normalisation adds the mean"),
    M(TRANSFORMS, "return int(rng.integers(0, size - crop + 1))",
      "return int(rng.integers(0, max(1, size - crop)))", T_TRANSFORMS,
      "random crop never reaches the last offset"),
    # -- experiment wiring (the lead adds entries for the moved experiment modules) -----------
    M(CAM_METHODS, '"infocam": MethodSpec("infocam", "infoCAM", "mean", "full",',
      '"infocam": MethodSpec("infocam", "infoCAM", "none", "full",', T_WSOL,
      'WSOL "infoCAM" method wired to variant "none"'),
    M(WSOL_RECORDS, "t_val = int(np.argmax(rv.box_acc_curve[j0]))",
      "t_val = int(np.argmax(rt.box_acc_curve[j0]))", T_WSOL,
      "WSOL threshold chosen on the test split"),
    M(CAM_METHODS, '    "infocam_min": MethodSpec("infocam", "infoCAM-min", "min", "full",',
      '    "infocam_min": MethodSpec("infocam", "infoCAM-min", "mean", "full",', T_WSOL,
      'WSOL "infoCAM-min" (the official --max-cam) wired to variant "mean"'),
    M("infocam_jax/gaussian_study.py", 'train_prior = (data.prior if objective == "pc_softmax"',
      'train_prior = (data.prior if objective == "none"', T_SMI,
      "synthetic MI: PC-softmax trained with a uniform prior"),
    M(CLASSIFICATION, "est, se = weighted_mean(v, labels, prior)",
      "est, se = weighted_mean(v, labels, np.ones_like(prior))", T_PC,
      "MI estimate weighted by the test split's classes, not the training prior"),
    M(CLASSIFICATION, "pred = np.argmax(logits, axis=-1)  # both objectives",
      "pred = np.argmax(logits + np.log(prior), axis=-1)  # both objectives", T_PC,
      "prediction with the prior added (PC-softmax must change training only)"),
    M(BUILD, "  if m.adl_positions:\n    opts[\"adl_positions\"] = m.adl_positions",
      "  if False:\n    opts[\"adl_positions\"] = m.adl_positions", T_BUILD,
      "config.model.adl_* dropped from the model options (the old pc_softmax bug)"),
    M(BUILD, "  if for_training and _last_layer_only(config):",
      "  if False:", T_BUILD, "model.last_layer_only ignored (the backbone trains)"),
    M(LOCALIZATION, 'hole_boxes=True, resize_float64=True),',
      'hole_boxes=False, resize_float64=True),', T_PARITY,
      "wsolevaluation V2 without the boxes of hole contours"),
    M(LOCALIZATION, '(0, 0, 0, 0), False, (0.0, 1.0, 0.01), largest="contour_area",',
      '(0, 0, 0, 0), False, (0.0, 1.0, 0.01), largest="pixels",', T_PARITY,
      "wsolevaluation largest component by pixel count instead of contour area"),
    # -- issue 27: data rules, each killed by a test that states it ---------------------------
    M(PIPELINE, "rng = np.random.default_rng([self.seed, 1, epoch, index])",
      "rng = np.random.default_rng([self.seed, 1, 0, index])", T_DATA_RULES,
      "augmentation draws do not depend on the epoch (same crop and flip every epoch)",
      "data rule"),
    M(PIPELINE, "rng = np.random.default_rng([self.seed, 1, epoch, index])",
      "rng = np.random.default_rng([1, epoch, index])", T_DATA_RULES,
      "augmentation draws ignore the seed", "data rule"),
    M(CLUTTERED, "ink = alpha >= 0.5", "ink = alpha >= 0.2", T_DATA_RULES,
      "cluttered-digits GT box at ink opacity >= 0.2 instead of 0.5", "data rule"),
    M(CLUTTERED, "ink = alpha >= 0.5", "ink = alpha > 0.55", T_DATA_RULES,
      "cluttered-digits GT box at ink opacity > 0.55 (a tighter box)", "data rule"),
    M(CLUTTERED, "bbox = (y0 / size, x0 / size, (y1 + 1) / size, (x1 + 1) / size)",
      "bbox = (y0 / size, x0 / size, y1 / size, x1 / size)", T_DATA_RULES,
      "cluttered-digits tfds box without the inclusive +1", "data rule"),
    M(TRANSFORMS, "IMAGENET_MEAN = (0.485, 0.456, 0.406)\nIMAGENET_STD = (0.229, 0.224, 0.225)",
      "IMAGENET_MEAN = (0.229, 0.224, 0.225)\nIMAGENET_STD = (0.485, 0.456, 0.406)",
      T_DATA_RULES, "ImageNet mean and std swapped", "data rule"),
    M(TRANSFORMS, "IMAGENET_MEAN = (0.485, 0.456, 0.406)", "IMAGENET_MEAN = (0.406, 0.456, 0.485)",
      T_DATA_RULES, "ImageNet mean in BGR order", "data rule"),
    M(CFG_PC, "c.data.std = IMAGENET_STD", "c.data.std = IMAGENET_STD[::-1]",
      T_DATA_RULES, "pc_softmax config's ImageNet std in BGR order", "data rule"),
    M(IDX, 'yield i, {"image": _png(images[i]), "label": int(labels[i])}',
      'yield i, {"image": _png(images[i]), "label": int(labels[(i + 1) % len(labels)])}',
      T_DATA_RULES, "IDX reader: labels one row off", "data rule"),
    M(TINY, 'wnids = sorted(line.strip() for line in read("wnids.txt").splitlines() if line.strip())',
      'wnids = [line.strip() for line in read("wnids.txt").splitlines() if line.strip()]',
      T_DATA_RULES, "Tiny-ImageNet labels in wnids.txt order, not the sorted wnids",
      "data rule"),
    M(SOURCES, "caps = lambda c: even_label_cap if c % 2 == 0 else odd_label_cap",
      "caps = lambda c: even_label_cap if c % 2 == 1 else odd_label_cap", T_DATA_RULES,
      "CUB imbalanced split: the caps on the wrong class parity", "data rule"),
    M(SOURCES, '"train", ("label", "original_index"), _mnist_range(0, 40_000, 300, 3000),',
      '"train", ("label", "original_index"), _mnist_range(0, 40_000, 3000, 300),', T_SPLITS,
      "MNIST imbalanced split: 3,000 per even / 300 per odd digit", "data rule"),
    # -- issue 27: configuration values the paper / official code fixes ----------------------
    M(CFG_PAPER, '"cub": ("caltech_birds2011", 224, 256, 5994, 4, 55.83),',
      '"cub": ("caltech_birds2011", 224, 256, 5994, 3, 55.83),', T_CONFIG_SPEC,
      "paper config: CUB infoCAM region size 4 -> 3", "config value"),
    M(CFG_PAPER, '"tiny": ("tiny_imagenet", 64, 64, 100_000, 3, 43.34),',
      '"tiny": ("tiny_imagenet", 64, 64, 100_000, 4, 43.34),', T_CONFIG_SPEC,
      "paper config: Tiny-ImageNet region size 3 -> 4", "config value"),
    M(CFG_PAPER, '"cub": ("caltech_birds2011", 224, 256, 5994, 4, 55.83),',
      '"cub": ("caltech_birds2011", 224, 224, 5994, 4, 55.83),', T_CONFIG_SPEC,
      "paper config: CUB resized to 224 (no 256 -> 224 crop)", "config value"),
    M(CFG_WSOL_BASE, "loc_threshold=0.2,", "loc_threshold=0.5,", T_CONFIG_SPEC,
      "WSOL CAM threshold 0.2 -> 0.5", "config value"),
    M(CFG_PAPER, '"resnet50": ("resnet50", 0.01, "30 40 42", 0.90, "resnet50-19c8e357.pth"),',
      '"resnet50": ("resnet50", 0.1, "30 40 42", 0.90, "resnet50-19c8e357.pth"),',
      T_CONFIG_SPEC, "paper config: ResNet-50 base LR 0.01 -> 0.1", "config value"),
    M(CFG_PAPER, '"resnet50": ("resnet50", 0.01, "30 40 42", 0.90, "resnet50-19c8e357.pth"),',
      '"resnet50": ("resnet50", 0.01, "30 40 42", 0.80, "resnet50-19c8e357.pth"),',
      T_CONFIG_SPEC, "paper config: ResNet-50 ADL threshold 0.90 -> 0.80", "config value"),
    M(CFG_PAPER, "c.model.adl_drop_rate = 0.75 if adl else 0.0",
      "c.model.adl_drop_rate = 0.5 if adl else 0.0", T_CONFIG_SPEC,
      "paper config: ADL drop rate 0.75 -> 0.5", "config value"),
    M(CFG_PAPER, "c.optimizer.head_lr_multiplier = 10.0", "c.optimizer.head_lr_multiplier = 1.0",
      T_CONFIG_SPEC, "paper config: no 10x head learning rate", "config value"),
    M(CFG_PAPER, "c.optimizer.decay_every_epochs = 60.0", "c.optimizer.decay_every_epochs = 30.0",
      T_CONFIG_SPEC, "paper config: LR decay every 30 epochs", "config value"),
    M(CFG_PAPER, "c.optimizer.warmup_steps = 0", "c.optimizer.warmup_steps = 500", T_CONFIG_SPEC,
      "paper config: a warm-up the official code does not have", "config value"),
    M(CFG_PAPER, "c.num_epochs = 200.0", "c.num_epochs = 100.0", T_CONFIG_SPEC,
      "paper config: 100 epochs instead of 200", "config value"),
    M(CFG_PAPER, '_BATCH = {("cub", "resnet50"): 128,', '_BATCH = {("cub", "resnet50"): 256,',
      T_CONFIG_SPEC, "paper config: CUB ResNet-50 batch 128 -> 256", "config value"),
    M(CFG_PAPER, "c.optimizer.nesterov = True", "c.optimizer.nesterov = False", T_CONFIG_SPEC,
      "paper config: SGD without Nesterov", "config value"),
    M(CFG_PAPER, 'c.model.layer4_stride = 1 if arch == "resnet50" else 2',
      "c.model.layer4_stride = 2", T_CONFIG_SPEC,
      "paper config: ResNet-50 layer4 stride 2 (torchvision's)", "config value"),
    M(CFG_PAPER, '("cub", "resnet50", True): "cam_region",  # --conv-cam',
      '("cub", "resnet50", True): "infocam_min",  # --conv-cam', T_CONFIG_SPEC,
      "paper config: CUB ResNet-50 ADL script's flags read as --max-cam", "config value"),
    M(CFG_DEFAULT, "c.optimizer.warmup_steps = 150", "c.optimizer.warmup_steps = 0",
      T_CONFIG_SPEC, "offline WSOL default: warm-up removed", "config value"),
    M(CFG_DEFAULT, "c.optimizer.head_lr_multiplier = 1.0", "c.optimizer.head_lr_multiplier = 10.0",
      T_CONFIG_SPEC, "offline WSOL default: 10x head LR (collapses the small net)",
      "config value"),
    M(CFG_FASHION, "c.data.flip = True", "c.data.flip = False", T_CONFIG_SPEC,
      "fashion_wsol config: flips off", "config value"),
    M(CFG_PC, "c.optimizer.momentum = 0.5", "c.optimizer.momentum = 0.9", T_CONFIG_SPEC,
      "pc_softmax MNIST: momentum 0.5 -> 0.9", "config value"),
    M(CFG_PC, "c.num_epochs = 8.0", "c.num_epochs = 10.0", T_CONFIG_SPEC,
      "pc_softmax MNIST: 10 epochs instead of 8", "config value"),
    M(CFG_PC, "c.optimizer.decay_every_steps = 936", "c.optimizer.decay_every_steps = 1000",
      T_CONFIG_SPEC, "pc_softmax CUB: decay every 1,000 steps instead of 936", "config value"),
    M(CFG_PC, "c.num_train_steps = 2810", "c.num_train_steps = 2800", T_CONFIG_SPEC,
      "pc_softmax CUB: 2,800 steps instead of MAX_STEPS 2,810", "config value"),
    # -- issue 27: wiring --------------------------------------------------------------------
    M(CAM_METHODS, "    logits, features = model.apply(variables, images, train=False)\n",
      "    logits, features = model.apply(variables, images, train=False)\n"
      "    labels = jnp.argmax(logits, -1)\n", T_WIRING,
      "GT-known Loc fed the predicted class's map instead of the label's", "wiring"),
    M(WSOL_EVAL, "correct = (jnp.argmax(logits, -1) == labels) & valid", "correct = valid",
      T_WIRING, "Top-1 Loc ignores the prediction's correctness", "wiring"),
    M(WSOL_EVAL, "prior = None if class_prior is None else tuple(float(p) for p in class_prior)",
      "prior = None if class_prior is None else tuple(1.0 / len(class_prior) for p in "
      "class_prior)", T_WIRING, "WSOL evaluator metrics read with a uniform prior", "wiring"),
    M(BUILD, "  train = sources[splits[0]]\n", "  train = sources[splits[-1]]\n", T_WIRING,
      "prior (and class counts) taken from the last opened split, not the training split",
      "wiring"),
    # The wsolevaluation drop-in (issue 22).
    M(GROUND_TRUTH, "    out = np.trunc(np.stack([b[..., 0] * float(rw) / w,",
      "    out = np.round(np.stack([b[..., 0] * float(rw) / w,", T_CLI,
      "GT boxes rounded instead of int()-truncated (resize_bbox)"),
    M(CCL_NUMBA, "      while i < nb - 1 and edges[i + 1] <= v:",
      "      while i < nb - 1 and edges[i + 1] < v:", T_CLI,
      "PxAP: a score on a bin edge counted in the lower bin"),
    M(LOCALIZATION, "    maps = _exact_gray_input(self, maps)\n", "", T_CLI,
      "float64 maps quantised through float32 (uint8 levels of the float32 value)"),
    M(LOCALIZATION, "        hi_x = hi_y = np.inf", "        pass", T_CLI,
      "maps as saved: GT boxes must lie inside the (smaller) map frame"),
    M(CLI, "    if maps.dtype != np.float64:\n      maps = np.ascontiguousarray(maps, np.float32)",
      "    if True:\n      maps = np.ascontiguousarray(maps, np.float32)", T_CLI,
      "command line: float64 maps quantised through float32"),
]


def group_of(m: M) -> str:
  return os.path.splitext(os.path.basename(m.path))[0]


def check(m: M, root: str) -> str | None:
  """None if the mutant applies, else why not (stale)."""
  path = os.path.join(root, m.path)
  if not os.path.exists(path):
    return f"{m.path} does not exist"
  n = open(path, encoding="utf-8").read().count(m.find)
  if n != 1:
    return f"snippet occurs {n} times in {m.path} (must be 1)"
  if m.find == m.replace:
    return "replacement equals the snippet"
  return None


def copy_repo(dst: str) -> None:
  """The working tree's tracked and untracked-but-not-ignored files (uncommitted edits too)."""
  files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                         check=True, capture_output=True).stdout.decode().split("\0")
  for f in filter(None, files):
    src = os.path.join(REPO, f)
    if not os.path.isfile(src):  # deleted in the working tree
      continue
    os.makedirs(os.path.dirname(os.path.join(dst, f)) or dst, exist_ok=True)
    shutil.copy2(src, os.path.join(dst, f))


def run_tests(root: str, tests: Sequence[str], timeout: float, python: str
              ) -> tuple[str, float, str]:
  """(outcome, seconds, output tail); outcome in passed/failed/error/timeout."""
  env = dict(os.environ)
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant may keep the file's size and mtime second
  env["HYPOTHESIS_PROFILE"] = env.get("HYPOTHESIS_PROFILE", "deterministic")
  with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
    env["NUMBA_CACHE_DIR"] = cache  # never reuse a kernel compiled from other source
    cmd = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header", *tests]
    t0 = time.time()
    try:
      proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                            timeout=timeout)
    except subprocess.TimeoutExpired as e:
      out = (e.stdout or b"")
      out = out.decode(errors="replace") if isinstance(out, bytes) else out
      return "timeout", time.time() - t0, out[-2000:]
  dt = time.time() - t0
  out = proc.stdout + proc.stderr
  outcome = {0: "passed", 1: "failed"}.get(proc.returncode, "error")
  return outcome, dt, out[-2000:]


def main(argv: Sequence[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--module", help="only entries whose path contains this (comma-separated: any)")
  ap.add_argument("--only", help="only entries whose name contains this")
  ap.add_argument("--kind", help=f"only entries of these kinds (comma-separated): {', '.join(KINDS)}")
  ap.add_argument("--timeout", type=float, default=600.0, help="seconds per test run")
  ap.add_argument("--json", default=os.path.join(REPO, "runs", "mutation.json"))
  ap.add_argument("--no-baseline", action="store_true",
                  help="skip running each test selection once without a mutant")
  ap.add_argument("--check", action="store_true", help="only validate the snippets")
  ap.add_argument("--list", action="store_true")
  ap.add_argument("--keep-output", action="store_true", help="print the test output tails")
  ap.add_argument("--python", default=sys.executable)
  args = ap.parse_args(argv)

  modules = [x for x in (args.module or "").split(",") if x]
  kinds = [x.strip() for x in (args.kind or "").split(",") if x.strip()]
  unknown = [k for k in kinds if k not in KINDS]
  if unknown:
    ap.error(f"--kind: unknown {unknown}; known: {list(KINDS)}")
  todo = [m for m in MUTANTS if (not modules or any(x in m.path for x in modules))
          and (not args.only or args.only in m.name) and (not kinds or m.kind in kinds)]
  if args.list:
    for m in todo:
      print(f"{group_of(m):14s} {m.kind:12s} {m.name}  [{' '.join(m.tests)}]")
    return 0
  stale = {i: why for i, m in enumerate(todo) if (why := check(m, REPO))}
  for i, why in stale.items():
    print(f"STALE  {group_of(todo[i])}: {todo[i].name}: {why}")
  if args.check:
    print(f"{len(todo) - len(stale)}/{len(todo)} mutants apply.")
    return 1 if stale else 0

  results = []
  with tempfile.TemporaryDirectory(prefix="mutate-") as root:
    copy_repo(root)
    probe = subprocess.run([args.python, "-c", "import infocam_jax; print(infocam_jax.__file__)"],
                           cwd=root, env={**os.environ, "PYTHONPATH": root},
                           capture_output=True, text=True)
    if not probe.stdout.strip().startswith(root):
      print(f"the copy does not shadow the installed package: {probe.stdout}{probe.stderr}")
      return 2
    if not args.no_baseline:
      for tests in dict.fromkeys(m.tests for i, m in enumerate(todo) if i not in stale):
        outcome, dt, out = run_tests(root, tests, args.timeout, args.python)
        print(f"baseline {outcome:7s} {dt:6.1f}s  {' '.join(tests)}", flush=True)
        if outcome != "passed":
          print(out)
          return 2
    for i, m in enumerate(todo):
      rec = {"module": m.path, "group": group_of(m), "kind": m.kind, "name": m.name,
             "tests": list(m.tests)}
      if i in stale:
        results.append({**rec, "status": "stale", "detail": stale[i]})
        continue
      path = os.path.join(root, m.path)
      original = open(path, encoding="utf-8").read()
      try:
        with open(path, "w", encoding="utf-8") as f:
          f.write(original.replace(m.find, m.replace))
        outcome, dt, out = run_tests(root, m.tests, args.timeout, args.python)
      finally:
        with open(path, "w", encoding="utf-8") as f:
          f.write(original)
      status = "survived" if outcome == "passed" else "killed"
      results.append({**rec, "status": status, "outcome": outcome, "seconds": round(dt, 1)})
      print(f"{status:8s} ({outcome:7s} {dt:6.1f}s) {group_of(m)}: {m.name}", flush=True)
      if args.keep_output:
        print(out)

  table: dict[str, list[int]] = {}
  for r in results:
    t = table.setdefault(r["group"], [0, 0, 0])
    t[0] += r["status"] == "killed"
    t[1] += r["status"] != "stale"
    t[2] += r["status"] == "stale"
  today = datetime.date.today().isoformat()
  print(f"\nKill rate per module ({today}, {platform.node()}):")
  print(f"{'module':16s} killed/run  rate  stale")
  for g, (k, n, s) in table.items():
    rate = f"{100.0 * k / n:5.0f}%" if n else "    -"
    print(f"{g:16s} {k:4d}/{n:<4d} {rate}  {s}")
  k_all = sum(t[0] for t in table.values())
  n_all = sum(t[1] for t in table.values())
  print(f"{'total':16s} {k_all:4d}/{n_all:<4d}")
  by_kind: dict[str, list[int]] = {}
  for r in results:
    if r["status"] != "stale":
      t = by_kind.setdefault(r["kind"], [0, 0])
      t[0] += r["status"] == "killed"
      t[1] += 1
  print("Per kind: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in by_kind.items()))
  for r in results:
    if r["status"] == "survived":
      print(f"SURVIVED: {r['group']}: {r['name']}  [{' '.join(r['tests'])}]")
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump({"date": today, "machine": platform.node(), "python": args.python,
                 "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO,
                                          capture_output=True, text=True).stdout.strip(),
                 "results": results,
                 "per_module": {g: {"killed": k, "run": n, "stale": s}
                                for g, (k, n, s) in table.items()},
                 "per_kind": {k: {"killed": v[0], "run": v[1]} for k, v in by_kind.items()}},
                f, indent=1)
  return 0 if all(r["status"] == "killed" for r in results) else 1


if __name__ == "__main__":
  sys.exit(main())
