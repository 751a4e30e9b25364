"""Offline WSOL default: a small ResNet on the cluttered-digits set (2 CPU cores, minutes).

  python -m experiments.wsol --workdir=runs/wsol

Data: ``cluttered_digits`` (64x64 scenes of a real handwritten digit among
fragments of other digits and pen strokes; 5,000 / 1,000 / 2,000 images, 10
classes; generated offline on first use, ~40 s), resized to 32x32 for the
network: the digits come from 8x8 scans, so 32 pixels keep all of their
detail, and the 4x cheaper convolutions are what makes the run fit in minutes
on 2 cores. No flip (a mirrored digit is another shape), no crop (the
resized image is the input).

Model: ``resnet_tiny`` (one BasicBlock per stage, widths 8/16/32/64, 3x3
stem without pooling) with ``layer4`` stride 1 (as the official infoCAM
ResNet-50): 8x8 feature maps at 32x32.

Recipe: SGD + Nesterov (momentum 0.9), weight decay 1e-4 on all parameters,
cosine decay after a linear warm-up. Unlike the paper's fine-tuning recipe
the head gets no 10x learning rate: from scratch, 10x on layer4 and fc makes
this small network collapse to chance in some runs (measured).

Evaluation: every method (CAM, infoCAM mean/min x full/same, the region-sum
ablations, Grad-CAM) and the centred-box and full-image baselines, in the
clean and the paper protocol; region size 2 on the 8x8 maps; the last
checkpoint; thresholds chosen on the validation split.
"""

from experiments.configs.wsol_base import base_config

#: The experiment this config file is for (``python -m experiments.<EXPERIMENT>``).
EXPERIMENT = "wsol"


def get_config():
  c = base_config()
  c.eval_batch_size = 250
  c.num_epochs = 12.0
  c.log_every_steps = 78
  c.checkpoint_every_steps = 200
  c.keep_best_checkpoints = 0
  c.tensorboard = False

  c.data.name = "cluttered_digits"
  c.data.resize_size = 32
  c.data.max_boxes = 1
  c.data.flip = False
  c.data.random_crop = False

  c.optimizer.learning_rate = 0.1
  c.optimizer.head_lr_multiplier = 1.0
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 150

  c.wsol.region_size = 2
  return c
