r"""The official infoCAM WSOL recipes (paper-spec.md section 3.4), as configs.

  python -m experiments.wsol --config=experiments/configs/paper.py:cub_resnet50_adl \
      --workdir=runs/cub_r50_adl --config.data.data_dir=/path/to/tfds

Variants: ``{cub,tiny}_{resnet50,vgg16_gap}[_adl]``.

| | CUB R50 | CUB VGG16-GAP | Tiny R50 | Tiny VGG16-GAP |
|---|---|---|---|---|
| base lr (head x10) | 0.01 | 0.001 | 0.01 | 0.001 |
| batch | 128 | 30 | 640 | 1280 |
| epochs / LR x0.1 every | 200 / 60 | 200 / 60 | 200 / 60 | 200 / 60 |
| input | 256 -> 224 | 256 -> 224 | 64 | 64 |
| ADL pos / thr / rate | 30 40 42 / .90 / .75 | 3M 4M 53 / .80 / .75 | as CUB | as CUB |

SGD momentum 0.9 Nesterov, weight decay 1e-4 (torch semantics, all params),
plain softmax cross-entropy, ResNet-50 with ``layer4`` stride 1. The official
runs start from torchvision ImageNet weights: set
``--config.model.pretrained=/path/to/resnet50-19c8e357.pth`` (or the VGG16
file); nothing can be downloaded at run time. The official VGG batch of 30 is
kept for parity; on several devices use a multiple of the device count.
Model/threshold selection uses ``wsol_val`` (the official val.txt half of the
test set) and the reported numbers ``wsol_test`` (test.txt), never the reverse.
CUB must be prepared once with TensorFlow (``tfds build caltech_birds2011
--file_format=array_record``); Tiny-ImageNet from its zip in the manual dir.
"""

from infocam_jax.train.config import default_train_config

_DATASETS = {
    # tfds name, image_size, resize_size
    "cub": ("caltech_birds2011", 224, 256),
    "tiny": ("tiny_imagenet", 64, 64),
}
_ARCHS = {
    # arch, base lr, ADL positions, ADL threshold
    "resnet50": ("resnet50", 0.01, "30 40 42", 0.90),
    "vgg16_gap": ("vgg16_gap", 0.001, "3M 4M 53", 0.80),
}
_BATCH = {("cub", "resnet50"): 128, ("cub", "vgg16_gap"): 30,
          ("tiny", "resnet50"): 640, ("tiny", "vgg16_gap"): 1280}

VARIANTS = tuple(f"{d}_{a}{s}" for d in _DATASETS for a in _ARCHS for s in ("", "_adl"))


def get_config(variant: str = "cub_resnet50_adl"):
  if variant not in VARIANTS:
    raise ValueError(f"paper.py variant must be one of {VARIANTS}, got {variant!r}.")
  adl = variant.endswith("_adl")
  dkey, akey = variant.removesuffix("_adl").split("_", 1)
  name, size, resize = _DATASETS[dkey]
  arch, lr, positions, threshold = _ARCHS[akey]

  c = default_train_config()
  c.seed = 0
  c.batch_size = _BATCH[(dkey, akey)]
  c.eval_batch_size = 100 if akey == "vgg16_gap" and dkey == "cub" else 256
  c.num_train_steps = -1
  c.num_epochs = 200.0
  c.loss = "softmax"
  c.log_every_steps = 50
  c.eval_every_steps = 0
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  c.keep_best_checkpoints = 1
  c.best_metric = "val/accuracy"

  c.model.arch = arch
  c.model.dtype = "bfloat16"
  c.model.layer4_stride = 1 if arch == "resnet50" else 2
  c.model.adl_positions = positions if adl else ""
  c.model.adl_threshold = threshold if adl else 0.0
  c.model.adl_drop_rate = 0.75 if adl else 0.0

  c.data.name = name
  c.data.image_size = size
  c.data.resize_size = resize
  # Selection on the official val.txt half, numbers on the test.txt half (paper-spec 2.5, 5.8).
  c.data.train_split = "train"
  c.data.eval_split = "wsol_val"
  c.data.test_split = "wsol_test"
  c.data.max_boxes = 8

  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = lr
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = True
  c.optimizer.weight_decay = 1e-4
  c.optimizer.head_lr_multiplier = 10.0
  c.optimizer.schedule = "step"
  c.optimizer.decay_every_epochs = 60.0
  c.optimizer.decay_factor = 0.1
  return c
