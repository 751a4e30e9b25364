"""The configs on the IDX datasets validate and name splits that exist (no training here).

"""

from __future__ import annotations

import pytest

from experiments import pc_softmax as pc_exp
from experiments import wsol as wsol_exp
from experiments.configs import fashion_wsol as fashion_wsol_config
from experiments.configs import pc_softmax as pc_configs
from infocam_jax import data
from infocam_jax.train import build
from infocam_jax.train import config as config_lib


@pytest.mark.parametrize("variant, name", [("fashion_mnist", "mnist_idx/fashion_mnist"),
                                           ("mnist_idx", "mnist_idx/mnist")])
def test_pc_softmax_idx_variants(variant, name):
  c = pc_configs.get_config(variant)
  pc_exp.validate(c)
  assert c.data.name == name and c.model.arch == "lenet" and c.data.channels == 1
  mnist = pc_configs.get_config("mnist")  # the paper's recipe, only the data differ
  for key in ("num_epochs", "batch_size", "optimizer", "experiment"):
    assert c[key] == mnist[key], key
  rules = data.SPLITS["mnist_idx"]
  assert rules["imbalanced_train"].size == 16_500
  for split in (c.data.train_split, c.data.eval_split, c.data.test_split,
                c.experiment.extra_test_splits):
    assert split in rules or split in data.BASE_SPLITS["mnist_idx"], split


def test_fashion_wsol_config():
  c = fashion_wsol_config.get_config()
  config_lib.validate_config(c, wsol_exp.SCHEMA)
  assert build.check_dataset_name(c.data.name) is None
  assert c.data.name == "fashion_wsol"
  for split in (c.data.train_split, c.data.eval_split, c.data.test_split):
    assert split in data.BASE_SPLITS["fashion_wsol"], split
