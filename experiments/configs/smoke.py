"""Smoke test: a tiny ResNet for a few dozen steps, then the full WSOL evaluation (seconds).

  python -m experiments.wsol --config=experiments/configs/smoke.py --workdir=/tmp/smoke

Data: the offline cluttered-digits set in its small configuration (32x32,
240 / 80 / 80 images, 10 classes; generated on first use, no download). The
evaluation runs every method and both protocols on the 80 validation and 80
test images (numbers are meaningless after 30 steps; the point is the path).
"""

from experiments.configs.wsol_base import base_config

#: The experiment this config file is for (``python -m experiments.<EXPERIMENT>``).
EXPERIMENT = "wsol"


def get_config():
  c = base_config()
  c.batch_size = 16  # global
  c.eval_batch_size = 40
  c.num_train_steps = 30
  c.log_every_steps = 5
  c.checkpoint_every_steps = 10  # 15 steps per epoch: checkpoints fall mid-epoch
  c.tensorboard = False

  c.data.name = "cluttered_digits/small"
  c.data.flip = False

  c.optimizer.learning_rate = 0.02
  c.optimizer.decay_every_steps = 20

  c.wsol.num_figure_images = 4
  c.wsol.threshold_step = 0.05
  return c
