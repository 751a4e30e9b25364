"""Shared base of the ``experiments.wsol`` configs: the engine's fields plus the WSOL ones.

Not a config file itself; ``default.py``, ``smoke.py`` and ``paper.py`` start from
``base_config()``. Every field is documented in ``experiments.wsol.WSOL_SCHEMA``.
"""

from infocam_jax.train.config import default_train_config

ALL_METHODS = ("cam,infocam,infocam_min,infocam_same,infocam_min_same,cam_region,"
               "cam_region_same,grad_cam")


def base_config():
  import ml_collections  # pylint: disable=g-import-not-at-top
  c = default_train_config()
  # Input pipeline options of the WSOL experiment (see experiments.wsol.WSOL_SCHEMA).
  c.data.flip = True
  c.data.random_crop = True
  c.data.num_workers = 0
  c.keep_checkpoints = 2
  c.model.layer4_stride = 1  # the official infoCAM ResNet-50 (VGG configs set 2)
  c.wsol = ml_collections.ConfigDict(dict(
      methods=ALL_METHODS,
      protocols="clean,paper",
      region_size=4,
      loc_threshold=0.2,
      threshold_step=0.01,
      checkpoint="last",
      paper_gt="auto",
      num_figure_images=8,
      official_method="",
      paper_top1_loc=0.0,
  ))
  return c
