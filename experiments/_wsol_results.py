r"""The WSOL experiment's evaluation record: thresholds chosen on validation, summaries,
curves, figures, the ``results.json`` record and the printed report.

``evaluate`` runs the library's evaluator (``infocam_jax.evaluators.wsol``)
over the validation and the test split; ``summarize`` chooses each method's
threshold on validation (never on test): the first maximiser of its
*validation* curve (V1 box accuracy at IoU 0.5; for V2 one threshold per IoU),
and reads the test metrics at that threshold (``*_val_selected``).
``max_box_acc`` / ``max_box_acc_v2`` are the definitional MaxBoxAcc(V2) of the
test split, which maximise over thresholds *on test* by definition (Choe et
al. 2020); ``top1_loc`` / ``gt_known_loc`` are read at the fixed threshold
``loc_threshold`` (0.2, the official ``--cam-thr``).

Example::

  settings = Settings.from_config(config, dataset="cluttered_digits")
  ev = evaluate(model, variables, val_pipe, test_pipe, settings, class_prior=prior,
                num_classes=10, splits=("validation", "test"))
  results = results_record(ev, settings, selection=..., dataset=...)
  print(report(results, workdir))
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from infocam_jax import cam as cam_lib
from infocam_jax.evaluators import cam_methods
from infocam_jax.evaluators import wsol as wsol_eval
from infocam_jax.evaluators.cam_methods import BASELINES, METHODS
from infocam_jax.wsol import box_accuracy as localization
from infocam_jax.wsol import boxes as boxes_lib

SplitEvaluation = wsol_eval.SplitEvaluation
PROTOCOLS, PAPER_GT = wsol_eval.PROTOCOLS, wsol_eval.PAPER_GT


PROTOCOL_NOTES = {
    "clean": "bicubic resize, min-max, map > t on the float map, inclusive boxes, clamped IoU, "
             "empty foreground = miss, hits / images over the whole split",
    "wsolevaluation": "Choe et al.: 8-bit quantised map, gray > int(t * max), OpenCV box "
                      "convention, empty foreground = box (0, 0, 0, 0)",
    "paper": "official infoCAM evaluation: bicubic, min-max, cubehelix gray > int(t * max), "
             "boxes (x, y, x + w, y + h), IoU without the clamp at zero overlap, empty "
             "foreground = box (0, 0, 1, 1), Top-1/GT-known Loc as the official batch-weighted "
             "running meters (they depend on the batch size and order), 0.05 threshold grid",
}

PAPER_GT_NOTES = {
    "exact": "the exact GT boxes of the network input (the official GT quirks concern CUB and "
             "Tiny-ImageNet annotation files only; not applicable to this dataset beyond the "
             "protocol's IoU, meters and fallback box)",
    "cub_legacy": "the official CUB transform (x/W*255 - 15, read as x, y, w, h; not clipped): "
                  "boxes.legacy_resize_crop_boxes",
    "tiny_legacy": "the official Tiny-ImageNet mis-parse (corner boxes read as x, y, w, h): "
                   "boxes.tiny_imagenet_legacy_boxes",
    "wsolevaluation": "wsolevaluation's resize_bbox: int(c * resize / W) of the annotation's "
                      "pixels, sizes (W, H), minus the centre-crop offset: "
                      "infocam_jax.wsol.ground_truth.protocol_gt_boxes",
}


def parse_names(text: str, known: Sequence[str], field: str) -> tuple[str, ...]:
  """A comma/space separated list of names, each in ``known``; ValueError otherwise."""
  names = tuple(t for t in str(text).replace(",", " ").split() if t)
  bad = [n for n in names if n not in known]
  if bad or not names:
    raise ValueError(f"{field}: expected a comma-separated list of {list(known)}, got {text!r}"
                     + (f" (unknown: {bad})" if bad else ""))
  if len(set(names)) != len(names):
    raise ValueError(f"{field}: duplicate entries in {text!r}")
  return names


@dataclasses.dataclass(frozen=True)
class Settings:
  """What a WSOL evaluation depends on besides the model (``config.wsol`` + image sizes)."""
  methods: tuple[str, ...]
  protocols: tuple[str, ...]  # the first is the primary protocol
  region_size: int
  image_size: int
  resize_size: int
  threshold_step: float
  loc_threshold: float
  paper_gt: str  # resolved GT transform of the paper protocol
  loss: str
  num_figure_images: int = 0

  @classmethod
  def from_config(cls, config: Any, dataset: str) -> "Settings":
    w = config.wsol
    size = int(config.data.image_size)
    return cls(methods=parse_names(w.methods, tuple(METHODS), "config.wsol.methods"),
               protocols=parse_names(w.protocols, PROTOCOLS, "config.wsol.protocols"),
               region_size=int(w.region_size), image_size=size,
               resize_size=int(config.data.resize_size or size),
               threshold_step=float(w.threshold_step), loc_threshold=float(w.loc_threshold),
               paper_gt=wsol_eval.resolve_paper_gt(w.paper_gt, dataset), loss=config.loss,
               num_figure_images=int(w.num_figure_images))

  @property
  def gt_transforms(self) -> dict[str, str]:
    """GT rule per protocol: the paper's legacy transform, wsolevaluation's ``int()``
    truncation (:func:`infocam_jax.wsol.ground_truth.protocol_gt_boxes`), else the exact boxes."""
    rule = {"paper": self.paper_gt, "wsolevaluation": "wsolevaluation"}
    return {p: rule.get(p, "exact") for p in self.protocols}

  def evaluators(self) -> dict[str, localization.BoxAccuracy]:
    return wsol_eval.box_metrics(self.protocols, image_size=self.image_size,
                                 threshold_step=self.threshold_step,
                                 loc_threshold=self.loc_threshold)


@dataclasses.dataclass
class Evaluation:
  """Both passes of one evaluation and the selected-threshold summary."""
  val: SplitEvaluation
  test: SplitEvaluation
  summary: dict[str, dict[str, Any]]  # protocol -> name -> metrics (percent)
  evaluators: dict[str, localization.BoxAccuracy]


def figure_indices(num_test: int, count: int) -> list[int]:
  """A fixed sample of test positions for the figure (seed 0, independent of the run seed)."""
  if count <= 0 or num_test <= 0:
    return []
  return sorted(np.random.default_rng(0).permutation(num_test)[:count].tolist())


def evaluate(model: Any, variables: Any, val_pipeline: Any, test_pipeline: Any,
             settings: Settings, *, class_prior: np.ndarray, num_classes: int,
             splits: tuple[str, str] = ("validation", "test"),
             progress: bool = True) -> Evaluation:
  """One ordered pass over each split; thresholds chosen on the first (validation).

  ``variables`` are placed on the first local device; every method's map
  comes from one forward pass per batch (``cam_methods.make_predict_fn``).
  """
  evaluators = settings.evaluators()
  # Raw maps: each protocol resizes them its own way (wsolevaluation: cv2's float64 resize).
  predict = cam_methods.make_predict_fn(model, settings.methods, settings.region_size)
  variables = jax.device_put(variables, jax.local_devices()[0])
  common: dict[str, Any] = dict(
      methods=settings.methods, evaluators=evaluators, gt_transforms=settings.gt_transforms,
      resize_size=settings.resize_size, image_size=settings.image_size, loss=settings.loss,
      class_prior=np.asarray(class_prior, np.float64), num_classes=num_classes,
      progress=progress)
  val = wsol_eval.evaluate_split(predict, variables, val_pipeline, split=splits[0], **common)
  test = wsol_eval.evaluate_split(
      predict, variables, test_pipeline, split=splits[1],
      keep_indices=figure_indices(test_pipeline.num_examples, settings.num_figure_images),
      **common)
  return Evaluation(val=val, test=test, summary=summarize(val, test, evaluators),
                    evaluators=evaluators)


SELECTION_NOTES = {
    "threshold_rule": ("per method and protocol, the first maximiser of the validation curve "
                       "of V1 box accuracy at IoU 0.5 (V2: one threshold per IoU); test metrics "
                       "at that threshold are the *_val_selected keys"),
    "definitional_max_over_test": ("max_box_acc and max_box_acc_v2 maximise over thresholds "
                                   "on the test split by definition (Choe et al. 2020)"),
}



def _f(x: Any) -> float | None:
  x = float(x)
  return None if math.isnan(x) else round(x, 4)


def _headline_curves(result: localization.BoxAccuracyResult, meters: tuple[np.ndarray, np.ndarray],
                     running: bool, j0: int) -> tuple[np.ndarray, np.ndarray]:
  """(GT-known, Top-1) Loc curves over thresholds in the protocol's headline convention."""
  if running:
    return meters[0][j0], meters[1][j0]
  return result.box_acc_curve[j0], result.top1_loc_curve[j0]


def summarize(val: SplitEvaluation, test: SplitEvaluation,
              evaluators: Mapping[str, localization.BoxAccuracy]) -> dict[str, dict[str, Any]]:
  """protocol -> name -> metrics (percent) with thresholds selected on ``val``."""
  out: dict[str, dict[str, Any]] = {}
  for p, ev in evaluators.items():
    running = ev.protocol.running_meters
    out[p] = {}
    for name, rt in test.results[p].items():
      rv = val.results[p][name]
      th = np.asarray(rt.cam_thresholds)
      j0 = int(np.argmin(np.abs(np.asarray(rt.iou_thresholds) - rt.loc_iou)))
      t_val = int(np.argmax(rv.box_acc_curve[j0]))  # first maximiser (as MaxBoxAcc)
      t_val_v2 = np.argmax(rv.box_acc_v2_curve, axis=1)
      known, top1 = _headline_curves(rt, test.meters[p][name], running, j0)
      v2_sel = np.mean([rt.box_acc_v2_curve[j, t] for j, t in enumerate(t_val_v2)])
      out[p][name] = {
          # The contract's five metrics (test split).
          "top1_cls": _f(rt.top1_cls),
          "top1_loc": _f(rt.top1_loc),
          "gt_known_loc": _f(rt.gt_known_loc),
          "max_box_acc": _f(rt.max_box_acc),
          "max_box_acc_v2": _f(rt.max_box_acc_v2),
          # Test metrics at the threshold chosen on the validation split.
          "val_threshold": _f(th[t_val]),
          "top1_loc_val_selected": _f(top1[t_val]),
          "gt_known_loc_val_selected": _f(known[t_val]),
          "max_box_acc_val_selected": _f(rt.box_acc_curve[j0, t_val]),
          "val_thresholds_v2": [_f(th[t]) for t in t_val_v2],
          "max_box_acc_v2_val_selected": _f(v2_sel),
          # Details.
          "loc_threshold": _f(rt.loc_threshold),
          "loc_iou": _f(rt.loc_iou),
          "max_box_acc_threshold_test": _f(rt.max_box_acc_threshold),
          "max_box_acc_v2_per_iou": [_f(v) for v in rt.max_box_acc_v2_per_iou],
          "top1_loc_pooled": _f(rt.top1_loc_pooled),
          "gt_known_loc_pooled": _f(rt.gt_known_loc_pooled),
          "top1_loc_meter": _f(rt.top1_loc_meter),
          "gt_known_loc_meter": _f(rt.gt_known_loc_meter),
          "num_test_images": int(rt.num_images),
          "val": {"top1_cls": _f(rv.top1_cls), "top1_loc": _f(rv.top1_loc),
                  "gt_known_loc": _f(rv.gt_known_loc), "max_box_acc": _f(rv.max_box_acc),
                  "max_box_acc_v2": _f(rv.max_box_acc_v2), "num_images": int(rv.num_images)},
      }
  return out


def curves(val: SplitEvaluation, test: SplitEvaluation,
           evaluators: Mapping[str, localization.BoxAccuracy]) -> dict[str, Any]:
  """Threshold curves (percent) of every protocol, method and split, for ``curves.json``."""
  out: dict[str, Any] = {}
  for p, ev in evaluators.items():
    out[p] = {"cam_thresholds": [float(t) for t in ev.cam_thresholds],
              "iou_thresholds": [float(t) for t in ev.iou_thresholds], "methods": {}}
    for name in test.results[p]:
      entry = {}
      for split_eval in (val, test):
        r = split_eval.results[p][name]
        meters = split_eval.meters[p][name]
        entry[split_eval.split] = {
            "box_acc": np.round(r.box_acc_curve, 4).tolist(),
            "top1_loc": np.round(np.nan_to_num(r.top1_loc_curve, nan=-1.0), 4).tolist(),
            "box_acc_v2": np.round(r.box_acc_v2_curve, 4).tolist(),
            "gt_known_loc_meter": np.round(meters[0], 4).tolist(),
            "top1_loc_meter": np.round(meters[1], 4).tolist()}
      out[p]["methods"][name] = entry
  return out


# ----------------------------------------------------------------------------
# Figures and tables.
# ----------------------------------------------------------------------------


def predicted_boxes(maps: np.ndarray, image_size: int, thresholds: Sequence[float]
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Clean-protocol boxes of raw maps ``[N, h, w]`` at per-image ``thresholds`` [N].

  Returns (display maps [N, S, S] in [0, 1], boxes [N, 4] float with NaN where
  the foreground is empty).
  """
  if tuple(np.shape(maps)[-2:]) != (image_size, image_size):
    up = np.asarray(cam_lib.normalize_maps(cam_lib.upsample_maps(maps, image_size, "bicubic")))
  else:
    up = np.asarray(cam_lib.normalize_maps(maps))
  out = np.full((len(up), 4), np.nan)
  for i, (m, t) in enumerate(zip(up, thresholds)):
    r = boxes_lib.boxes_from_maps(m[None], np.asarray([t], np.float32))
    if bool(r.valid[0, 0]):
      out[i] = np.asarray(r.boxes)[0, 0]
  return up, out


def write_figures(workdir: str, val: SplitEvaluation, test: SplitEvaluation,
                  summary: Mapping[str, Mapping[str, Any]],
                  evaluators: Mapping[str, localization.BoxAccuracy], methods: Sequence[str],
                  image_size: int) -> list[str]:
  """The localisation grid (test images) and the threshold curves; returns the paths."""
  from infocam_jax import plotting  # pylint: disable=g-import-not-at-top
  paths = []
  fig = test.figure
  grid_protocol = "clean" if "clean" in summary else next(iter(summary))
  if fig is not None and len(fig.index):
    shown = [m for m in methods]
    maps, preds, ious = {}, {}, {}
    for m in shown:
      t = summary[grid_protocol][m]["val_threshold"]
      disp, box = predicted_boxes(fig.maps[m], image_size, [t] * len(fig.index))
      title = f"{METHODS[m].title} (t={t:.2f})"
      maps[title] = disp
      preds[title] = np.where(np.isnan(box), -10.0, box)
      iou = np.zeros(len(box))
      for i in range(len(box)):
        if not np.isnan(box[i, 0]):
          gts = fig.bbox[i][fig.bbox_mask[i]]
          if len(gts):
            iou[i] = float(np.max(np.asarray(boxes_lib.box_iou(box[i][None], gts))))
      ious[title] = iou
    path = os.path.join(workdir, "localization_grid.png")
    paths.append(str(plotting.plot_localization_grid(
        path, fig.image, maps, gt_boxes=fig.bbox, gt_mask=fig.bbox_mask, pred_boxes=preds,
        ious=ious, labels=fig.label, predictions=fig.prediction, colorbar=True,
        caption=(f"Maps of the ground-truth class ({grid_protocol} protocol). t: each method's map "
                 "threshold, chosen on the validation split; the predicted box is the largest "
                 "connected region of the map > t."))))
  for p, ev in evaluators.items():
    j0 = int(np.argmin(np.abs(np.asarray(ev.iou_thresholds) - ev.loc_iou)))
    for split_eval, role in ((val, "threshold selection"), (test, "reported")):
      cs, flat = {}, {}
      for name, r in split_eval.results[p].items():
        if name in METHODS:
          cs[METHODS[name].title] = r.box_acc_curve[j0]
        elif name == "full_image_box":  # one box whatever the threshold: a level
          flat["full-image box"] = float(r.box_acc_curve[j0].max())
        else:  # the centred box's parameter is a box size: its best size, as a level
          flat["best centred box"] = float(r.box_acc_curve[j0].max())
      path = os.path.join(workdir, f"curves_{p}_{split_eval.split}.png")
      paths.append(str(plotting.plot_threshold_curves(
          path, ev.cam_thresholds, cs, reference_threshold=ev.loc_threshold, baselines=flat,
          ylabel=f"GT-known box accuracy, IoU >= {ev.loc_iou:g} (%)",
          title=f"{p} protocol, {split_eval.split} split ({role})",
          caption=("Dotted vertical line: the official fixed threshold. Baselines (horizontal): "
                   "boxes that do not depend on a map threshold."))))
  return paths


def format_table(summary: Mapping[str, Mapping[str, Any]], protocol: str,
                 names: Sequence[str]) -> str:
  """A fixed-width table of one protocol's summary."""
  cols = [("top1_cls", "Top-1 Cls"), ("top1_loc", "Top-1 Loc@.2"), ("gt_known_loc", "GT-k Loc@.2"),
          ("val_threshold", "thr(val)"), ("top1_loc_val_selected", "Top-1 Loc@val"),
          ("gt_known_loc_val_selected", "GT-k Loc@val"),
          ("max_box_acc_v2_val_selected", "BoxAccV2@val"), ("max_box_acc", "MaxBoxAcc*"),
          ("max_box_acc_v2", "MaxBoxAccV2*")]
  width = max(len(n) for n in names) + 2
  head = "method".ljust(width) + "".join(c[1].rjust(14) for c in cols)
  lines = [head, "-" * len(head)]
  for n in names:
    row = summary[protocol][n]
    cells = []
    for key, _ in cols:
      v = row.get(key)
      cells.append(("-" if v is None else (f"{v:.2f}" if key == "val_threshold" else f"{v:.1f}"))
                   .rjust(14))
    lines.append(n.ljust(width) + "".join(cells))
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# One evaluation of a trained model: settings, the two passes, the record.
# ----------------------------------------------------------------------------


def results_record(ev: Evaluation, settings: Settings, *, selection: dict[str, Any],
                   dataset: dict[str, Any], official_method: str = "",
                   paper_top1_loc: float = 0.0) -> dict[str, Any]:
  """The evaluation part of ``results.json`` (methods, protocols, notes, selection, dataset)."""
  primary = settings.protocols[0]
  summary = ev.summary
  selection = dict(selection, threshold_selected_on=ev.val.split, **SELECTION_NOTES,
                   fixed_threshold=("top1_loc and gt_known_loc are read at loc_threshold="
                                    f"{settings.loc_threshold:g} (the official --cam-thr)"),
                   test_split=ev.test.split)
  comparison = None
  if official_method and "paper" in summary and official_method in summary["paper"]:
    r = summary["paper"][official_method]
    comparison = {
        "method": official_method, "protocol": "paper", "top1_loc": r["top1_loc"],
        "gt_known_loc": r["gt_known_loc"], "top1_cls": r["top1_cls"],
        "top1_loc_val_selected": r["top1_loc_val_selected"],
        "paper_top1_loc": float(paper_top1_loc) or None,
        "note": ("the official script's CAM flags evaluate this method; the paper's number "
                 "(paperswithcode) does not state which backbone/ADL configuration produced it")}
  gt = settings.gt_transforms
  return {
      "primary_protocol": primary,
      "methods": summary[primary],
      "baselines": {b: summary[primary][b] for b in BASELINES},
      "protocols": summary,
      "protocol_notes": {p: {"protocol": PROTOCOL_NOTES[p], "gt_boxes": PAPER_GT_NOTES[gt[p]],
                             "gt_transform": gt[p],
                             "cam_thresholds": f"{len(ev.evaluators[p].cam_thresholds)} values "
                             f"in [0, 1), step {ev.evaluators[p].cam_thresholds[1]:g}"}
                         for p in settings.protocols},
      "method_notes": {**{m: METHODS[m].description for m in settings.methods},
                       **BASELINES, "region_size": settings.region_size},
      "classification": {"val": ev.val.classification, "test": ev.test.classification},
      "paper_comparison": comparison,
      "selection": selection,
      "dataset": dict(dataset, num_val=ev.val.num_images, num_test=ev.test.num_images,
                      image_size=settings.image_size, resize_size=settings.resize_size),
  }


def headline_metrics(results: Mapping[str, Any]) -> dict[str, float]:
  """Flat ``test/...`` scalars of a results record (for ``metrics.jsonl``)."""
  primary = results["protocols"][results["primary_protocol"]]
  flat = {f"test/{k}": v for k, v in results["classification"]["test"].items() if k != "count"}
  for m in ("cam", "infocam", "centre_box"):
    if m in primary:
      for k in ("top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2",
                "max_box_acc_val_selected"):
        if primary[m][k] is not None:
          flat[f"test/{m}/{k}"] = primary[m][k]
  return flat


def report(results: Mapping[str, Any], outdir: str) -> str:
  """The printed summary: tables per protocol, selection, figures."""
  ds, sel = results["dataset"], results["selection"]
  cls = results["classification"]["test"]
  names = list(results["methods"])
  lines = ["", f"WSOL results: {ds['name']} '{ds['test_split']}' split ({ds['num_test']:,} "
           f"images), top-1 classification {cls['accuracy']:.2f}% (mean per class "
           f"{cls['mean_per_class_accuracy']:.2f}%).",
           f"Checkpoint: {sel['checkpoint']} (step {sel['step']}): {sel['rule']}.",
           f"Thresholds chosen on the '{sel['threshold_selected_on']}' split ({ds['num_val']:,} "
           "images), never on test: '@val' columns are test metrics at that threshold; "
           "'@.2' at the fixed official 0.2;",
           "* MaxBoxAcc / MaxBoxAccV2 maximise over thresholds on test by definition."]
  for p in results["protocols"]:
    notes = results["protocol_notes"][p]
    lines += ["", f"[{p} protocol] {notes['protocol']}.", f"GT boxes: {notes['gt_boxes']}.",
              format_table(results["protocols"], p, names)]
  comp = results.get("paper_comparison")
  if comp:
    paper = (f" (paper: {comp['paper_top1_loc']:.2f})" if comp.get("paper_top1_loc") else "")
    lines += ["", f"Paper comparison: {comp['method']} (the official script's flags), paper "
              f"protocol: Top-1 Loc@0.2 {comp['top1_loc']:.2f}{paper}, GT-known Loc@0.2 "
              f"{comp['gt_known_loc']:.2f}, Top-1 Cls {comp['top1_cls']:.2f}."]
  figs = results.get("figures") or []
  lines += ["", f"Results: {os.path.join(outdir, 'results.json')} (curves: "
            f"{os.path.join(outdir, results['curves_file'])})"]
  if figs:
    lines.append("Figures: " + ", ".join(os.path.join(outdir, f) for f in figs))
  wall = results["wall_time_s"]
  if wall.get("total_s") is not None:
    lines.append(f"Wall time {wall['total_s']:.0f} s (CPU {results['cpu_time_s']['total_s']:.0f} "
                 f"s) on {results['device']['device_count']} {results['device']['platform']} "
                 "device(s).")
  return "\n".join(lines)
