"""Offline WSOL default: a small ResNet on the cluttered-digits set (CPU, minutes).

  python -m experiments.wsol --workdir=runs/wsol

64x64 scenes, 5,000 / 1,000 / 2,000 images, 10 classes, generated offline on
first use. Tuned by the experiments issue; the recipe mirrors the paper's
(SGD + Nesterov, weight decay 1e-4 on all parameters, 10x LR on layer4 and fc,
step decay x0.1) at a small scale.
"""

from infocam_jax.train.config import default_train_config


def get_config():
  c = default_train_config()
  c.seed = 0
  c.batch_size = 64
  c.eval_batch_size = 200
  c.num_train_steps = -1
  c.num_epochs = 12.0
  c.log_every_steps = 20
  c.eval_every_steps = 0
  c.checkpoint_every_steps = 200

  c.model.arch = "resnet_tiny"
  c.model.layer4_stride = 1

  c.data.name = "cluttered_digits"
  c.data.image_size = 64
  c.data.max_boxes = 4

  c.optimizer.learning_rate = 0.02
  c.optimizer.schedule = "step"
  c.optimizer.decay_every_epochs = 8.0
  return c
