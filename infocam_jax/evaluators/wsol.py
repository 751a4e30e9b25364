r"""The WSOL evaluator: a predict function's maps through the box metric of every protocol.

``evaluate_split`` streams one ordered, padded pass of a split: the predict
function (``cam_methods.make_predict_fn``) gives the logits and every method's
map of a batch, and every (protocol, method) pair, plus the two baselines
(``cam_methods.baseline_maps``), updates its own
``infocam_jax.wsol.box_accuracy`` state with the protocol's GT boxes
(``gt_boxes``). It returns the numbers (``SplitEvaluation``: box-accuracy
results and running meters per protocol and method, the classification
metrics); choosing thresholds on validation, summaries, curves, figures and
the results record are the experiment's (``experiments/_wsol_results.py``).

Example::

  predict = cam_methods.make_predict_fn(model, ("cam", "infocam"), region_size=4)
  metrics = wsol.box_metrics(("clean",), image_size=224, threshold_step=0.01,
                             loc_threshold=0.2)
  val = wsol.evaluate_split(predict, variables, pipeline, split="validation",
                            methods=("cam", "infocam"), evaluators=metrics, image_size=224,
                            class_prior=prior, num_classes=200)
  val.results["clean"]["infocam"].max_box_acc      # percent; val.classification: accuracy (%)
"""

from __future__ import annotations

from infocam_jax import _deps

_deps.require("wsol", "infocam_jax.evaluators.wsol")

import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from infocam_jax.evaluators.cam_methods import BASELINES, METHODS, baseline_maps  # noqa: F401
from infocam_jax.wsol import boxes as boxes_lib
from infocam_jax.wsol import ground_truth
from infocam_jax.wsol import box_accuracy as localization

__all__ = ["PROTOCOLS", "PAPER_GT", "threshold_grid", "resolve_paper_gt", "gt_boxes",
           "box_metrics", "FigureSample", "SplitEvaluation", "evaluate_split"]

PROTOCOLS = tuple(localization.PROTOCOLS)
#: GT-box transforms of the "paper" protocol (``resolve_paper_gt``; "wsolevaluation" is that
#: protocol's own rule).
PAPER_GT = ("auto", "exact", "cub_legacy", "tiny_legacy")


def threshold_grid(protocol: str, step: float) -> np.ndarray:
  """Map thresholds: the protocol's own grid for "paper" (official 0.05), else ``arange(0, 1, step)``.

  >>> threshold_grid("clean", 0.25)
  array([0.  , 0.25, 0.5 , 0.75])
  >>> len(threshold_grid("paper", 0.01))  # the official 0.05 grid whatever the step
  20
  """
  start, stop, paper_step = localization.PROTOCOLS[protocol].default_thresholds
  if protocol == "paper":
    step = paper_step
  return np.round(np.arange(start, stop, step), 10)


def resolve_paper_gt(setting: str, dataset: str) -> str:
  """The GT-box transform of the "paper" protocol for ``dataset`` (``setting='auto'``).

  >>> resolve_paper_gt("auto", "caltech_birds2011/2.0.0"), resolve_paper_gt("auto", "my_data")
  ('cub_legacy', 'exact')
  """
  if setting not in PAPER_GT:
    raise ValueError(f"wsol.paper_gt must be one of {PAPER_GT}, got {setting!r}")
  if setting != "auto":
    return setting
  base = dataset.split("/")[0]
  return {"caltech_birds2011": "cub_legacy", "tiny_imagenet": "tiny_legacy"}.get(base, "exact")


def gt_boxes(batch: Mapping[str, np.ndarray], transform: str, *, resize_size: int,
             image_size: int) -> np.ndarray:
  """GT boxes ``[b, M, 4]`` of a batch under a protocol's GT ``transform``.

  ``"exact"``: the network input's boxes; ``"wsolevaluation"``: the peer's
  ``int()`` truncation (``wsol.ground_truth.protocol_gt_boxes``);
  ``"cub_legacy"`` / ``"tiny_legacy"``: the official infoCAM CUB transform and
  Tiny-ImageNet mis-parse (``boxes.legacy_resize_crop_boxes``,
  ``boxes.tiny_imagenet_legacy_boxes``). Boxes are ``(x0, y0, x1, y1)`` in
  pixels of the ``image_size`` frame; ``batch`` holds ``bbox`` / ``bbox_mask``
  (and, for the other transforms, ``bbox_normalized`` ``(ymin, xmin, ymax,
  xmax)`` and ``orig_size`` ``(H, W)``).

  >>> batch = {"bbox_normalized": np.array([[[0.1, 0.2, 0.5, 0.9]]]),
  ...          "orig_size": np.array([[300, 500]]), "bbox_mask": np.array([[True]])}
  >>> gt_boxes(batch, "wsolevaluation", resize_size=224, image_size=224)  # int() truncation
  array([[[ 44.,  22., 201., 112.]]], dtype=float32)
  """
  if transform == "exact":
    return np.asarray(batch["bbox"], np.float32)
  norm = np.asarray(batch["bbox_normalized"], np.float64)  # (ymin, xmin, ymax, xmax)
  size = np.asarray(batch["orig_size"], np.float64)[:, None, :]  # (H, W)
  h, w = size[..., 0], size[..., 1]
  if transform == "wsolevaluation":
    # The peer's rule on the annotation's integer pixels: int(c * resize / W) (sizes (W, H)),
    # minus the centre-crop offset (none when resize == crop, wsolevaluation's own setting).
    xyxy = np.round(np.stack([norm[..., 1] * w, norm[..., 0] * h, norm[..., 3] * w,
                              norm[..., 2] * h], axis=-1))
    wh = np.broadcast_to(np.stack([w, h], axis=-1), xyxy.shape[:-1] + (2,))
    out = np.asarray(ground_truth.protocol_gt_boxes(xyxy, wh, "wsolevaluation", frame=image_size,
                                                    resize=resize_size))
  elif transform == "cub_legacy":
    xywh = np.stack([norm[..., 1] * w, norm[..., 0] * h, (norm[..., 3] - norm[..., 1]) * w,
                     (norm[..., 2] - norm[..., 0]) * h], axis=-1)
    out = np.asarray(boxes_lib.legacy_resize_crop_boxes(
        xywh, np.broadcast_to(size, xywh.shape[:-1] + (2,)), resize_size, image_size))
  elif transform == "tiny_legacy":
    # The builder stored inclusive corners as (x0 / W, (x1 + 1) / W): recover the file's numbers.
    corners = np.stack([norm[..., 1] * w, norm[..., 0] * h, norm[..., 3] * w - 1.0,
                        norm[..., 2] * h - 1.0], axis=-1)
    out = np.asarray(boxes_lib.tiny_imagenet_legacy_boxes(
        np.round(corners), np.broadcast_to(size, corners.shape[:-1] + (2,)), resize_size,
        image_size))
  else:
    raise ValueError(f"unknown GT transform {transform!r}; expected one of "
                     f"{PAPER_GT[1:] + ('wsolevaluation',)}")
  out = np.asarray(out, np.float32)
  # Slots without a box hold zeros; keep them well-formed (masked out anyway).
  return np.where(np.asarray(batch["bbox_mask"])[..., None], np.asarray(out, np.float32),
                  0.0).astype(np.float32)


def box_metrics(protocols: Sequence[str], *, image_size: int, threshold_step: float,
                loc_threshold: float) -> dict[str, localization.BoxAccuracy]:
  """One streaming box metric per protocol, on the protocol's threshold grid.

  >>> metrics = box_metrics(("clean", "paper"), image_size=32, threshold_step=0.1,
  ...                       loc_threshold=0.5)
  >>> sorted(metrics), type(metrics["clean"]).__name__
  (['clean', 'paper'], 'BoxAccuracy')
  """
  return {p: localization.max_box_accuracy(
      p, cam_thresholds=threshold_grid(p, threshold_step), image_size=(image_size, image_size),
      loc_threshold=loc_threshold) for p in protocols}


@functools.partial(jax.jit, static_argnames=("prior", "loss", "num_classes"))
def _classification_sums(logits, labels, valid, prior, *, loss: str, num_classes: int):
  """(correct [B], the engine's eval sums) of one batch (padding masked).

  ``prior``: the training class frequencies as a tuple (static), or None.
  """
  from infocam_jax.train import steps  # pylint: disable=g-import-not-at-top
  prior = None if prior is None else np.asarray(prior, np.float32)
  correct = (jnp.argmax(logits, -1) == labels) & valid
  return correct, steps.eval_sums(logits, labels, valid, num_classes=num_classes, loss=loss,
                                  prior=prior)


@dataclasses.dataclass
class FigureSample:
  """The examples kept by ``evaluate_split(keep_indices=...)`` (host arrays, source order).

  >>> [f.name for f in dataclasses.fields(FigureSample)]
  ['index', 'image', 'label', 'prediction', 'bbox', 'bbox_mask', 'maps']
  """
  index: np.ndarray  # [N] source positions
  image: np.ndarray  # uint8 [N, S, S, C]
  label: np.ndarray
  prediction: np.ndarray
  bbox: np.ndarray  # [N, M, 4] exact GT boxes
  bbox_mask: np.ndarray
  maps: dict[str, np.ndarray]  # raw maps [N, h, w]


@dataclasses.dataclass
class SplitEvaluation:
  """Everything measured on one split (``evaluate_split``'s result; its example uses one).

  >>> [f.name for f in dataclasses.fields(SplitEvaluation)][:5]
  ['split', 'num_images', 'classification', 'results', 'meters']
  """
  split: str
  num_images: int
  classification: dict[str, float]  # train.steps.finalize_eval: accuracy (%), ..., mi (nats)
  results: dict[str, dict[str, localization.BoxAccuracyResult]]  # protocol -> name -> result
  meters: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # running meters [J, T] (known, top1)
  figure: FigureSample | None  # the kept examples
  wall_s: float
  cpu_s: float


def evaluate_split(predict_fn: Callable, variables: Any, pipeline: Any, *, split: str,
                   methods: Sequence[str], evaluators: Mapping[str, localization.BoxAccuracy],
                   image_size: int, gt_transforms: Mapping[str, str] | None = None,
                   resize_size: int = 0, loss: str = "softmax", class_prior: np.ndarray | None = None,
                   num_classes: int, keep_indices: Sequence[int] = (),
                   progress: bool = True) -> SplitEvaluation:
  """Streams ``pipeline`` (one ordered, padded pass) through every box metric.

  ``predict_fn(variables, images, labels) -> (logits, {method: maps})``
  (``cam_methods.make_predict_fn``); ``evaluators``: ``box_metrics``;
  ``gt_transforms``: protocol -> ``gt_boxes`` transform (default ``"exact"``),
  ``resize_size`` the resize before the crop (default ``image_size``), both
  for the legacy GT transforms; ``class_prior``: the
  training class frequencies (the PC-softmax loss and MI readings);
  ``keep_indices``: source positions whose images, maps and boxes are returned.
  Accuracies in percent, the MI reading in nats.

  >>> import flax.linen as nn
  >>> from infocam_jax.data.arrays import ArrayPipeline, synthetic_source
  >>> from infocam_jax.evaluators import cam_methods
  >>> class Net(nn.Module):  # features = the image; logits = GAP(features) @ W + b
  ...   @nn.compact
  ...   def __call__(self, x, train=False):
  ...     return nn.Dense(3, name="fc")(x.mean(axis=(1, 2))), x
  >>> model = Net()
  >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  >>> pipe = ArrayPipeline(synthetic_source(6, num_classes=3, image_size=16), batch_size=4,
  ...                      train=False)
  >>> predict = cam_methods.make_predict_fn(model, ("cam",), region_size=3)
  >>> ev = evaluate_split(predict, variables, pipe, split="test", methods=("cam",),
  ...                     evaluators=box_metrics(("clean",), image_size=16,
  ...                                            threshold_step=0.1, loc_threshold=0.5),
  ...                     image_size=16, num_classes=3, progress=False)
  >>> ev.num_images, sorted(ev.results["clean"])  # the padding is dropped; baselines too
  (6, ['cam', 'centre_box', 'full_image_box'])
  >>> 0.0 <= ev.results["clean"]["cam"].max_box_acc <= 100.0  # percent
  True
  """
  from infocam_jax.data import denormalize  # pylint: disable=g-import-not-at-top
  from infocam_jax.train import steps  # pylint: disable=g-import-not-at-top
  t0, c0 = time.time(), time.process_time()
  gt_transforms = gt_transforms or {p: "exact" for p in evaluators}
  resize_size = resize_size or image_size
  names = tuple(methods) + tuple(BASELINES)
  base = {k: jnp.asarray(v) for k, v in baseline_maps(image_size).items()}
  states = {p: {n: ev.init() for n in names} for p, ev in evaluators.items()}
  prior = None if class_prior is None else tuple(float(p) for p in class_prior)
  cls_sums = None
  want = set(int(i) for i in keep_indices)
  kept: list[dict[str, Any]] = []

  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm(total=pipeline.steps_per_epoch, desc=f"evaluate {split}", unit="batch",
             disable=not progress, dynamic_ncols=True, leave=True)
  for batch in pipeline.iterate(0):
    labels = jnp.asarray(batch["label"])
    valid = jnp.asarray(batch["mask"])
    logits, maps = predict_fn(variables, jnp.asarray(batch["image"]), labels)
    correct, sums = _classification_sums(logits, labels, valid, prior, loss=loss,
                                         num_classes=num_classes)
    cls_sums = steps.accumulate(cls_sums, sums)
    b = labels.shape[0]
    for p, ev in evaluators.items():
      gt = gt_boxes(batch, gt_transforms[p], resize_size=resize_size, image_size=image_size)
      gm = batch["bbox_mask"]
      for n in names:
        m = maps[n] if n in maps else jnp.broadcast_to(base[n], (b, *base[n].shape))
        states[p][n] = ev.update(states[p][n], m, gt, gm, correct, valid)
    if want:
      rows = [r for r, i in enumerate(batch["index"]) if int(i) in want]
      if rows:
        pred = np.asarray(jnp.argmax(logits, -1))
        kept.append({"index": batch["index"][rows], "image": denormalize(batch["image"][rows]),
                     "label": batch["label"][rows], "prediction": pred[rows],
                     "bbox": batch["bbox"][rows], "bbox_mask": batch["bbox_mask"][rows],
                     "maps": {n: np.asarray(maps[n])[rows] for n in methods}})
    bar.update(1)
  bar.close()

  results = {p: {n: ev.compute(states[p][n]) for n in names} for p, ev in evaluators.items()}
  meters: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
  for p in evaluators:
    meters[p] = {}
    for n in names:
      s = jax.device_get(states[p][n])
      wgt = max(int(s.meter_weight), 1)
      meters[p][n] = (np.asarray(s.meter_known, np.float64) / wgt,
                      np.asarray(s.meter_top1, np.float64) / wgt)
  fin = steps.finalize_eval(cls_sums or {})
  classification = {k: fin[k] for k in ("accuracy", "mean_per_class_accuracy", "loss", "mi")}
  classification["count"] = int(fin["count"])
  figure = None
  if kept:
    cat = lambda k: np.concatenate([d[k] for d in kept])
    order = np.argsort(cat("index"), kind="stable")
    figure = FigureSample(index=cat("index")[order], image=cat("image")[order],
                          label=cat("label")[order], prediction=cat("prediction")[order],
                          bbox=cat("bbox")[order], bbox_mask=cat("bbox_mask")[order],
                          maps={n: np.concatenate([d["maps"][n] for d in kept])[order]
                                for n in methods})
  return SplitEvaluation(split=split, num_images=int(classification["count"]),
                         classification=classification, results=results, meters=meters,
                         figure=figure, wall_s=time.time() - t0, cpu_s=time.process_time() - c0)

