"""``infocam_jax.train.build``: one place builds the model, its options and the optimiser groups."""

from __future__ import annotations

import jax
import numpy as np

from experiments.configs import paper, pc_softmax
from infocam_jax import models
from infocam_jax.train import build


def test_model_options_pass_every_model_field_on():
  """ADL settings reach the model (the old pc_softmax builder dropped them)."""
  c = paper.get_config("cub_resnet50_adl")
  opts = build.model_options(c)
  assert opts == {"dtype": "bfloat16", "layer4_stride": 1, "adl_positions": "30 40 42",
                  "adl_threshold": 0.9, "adl_drop_rate": 0.75}
  c = pc_softmax.get_config("cub")
  c.model.adl_positions, c.model.adl_threshold = "30 40", 0.8
  opts = build.model_options(c)
  assert (opts["adl_positions"], opts["adl_threshold"]) == ("30 40", 0.8)
  assert "adl_drop_rate" not in opts  # 0 = the family default
  lenet = build.model_options(pc_softmax.get_config("mnist"))
  assert lenet == {"dtype": "float32"}  # no ResNet-only options for other families


def test_last_layer_only_wraps_the_model_for_training_only():
  c = pc_softmax.get_config("small")
  c.model.last_layer_only = True
  assert isinstance(build.build_model(c, 10), models.LastLayerOnly)
  assert not isinstance(build.build_model(c, 10, for_training=False), models.LastLayerOnly)
  x = np.zeros((1, c.data.image_size, c.data.image_size, c.data.channels), np.float32)
  params = jax.eval_shape(lambda: build.build_model(c, 10).init(jax.random.key(0), x))["params"]
  mask = build.head_mask_fn(c)(params)
  head = models.head_names(c.model.arch)  # the small config's LeNet: "fc2"
  assert {k for k, v in mask.items() if all(jax.tree.leaves(v))} == set(head)
  assert not any(jax.tree.leaves({k: v for k, v in mask.items() if k not in head}))
  c.model.last_layer_only = False
  assert not isinstance(build.build_model(c, 10), models.LastLayerOnly)


def test_pretrained_none_and_empty_mean_from_scratch(tmp_path):
  c = pc_softmax.get_config("small")
  for value in ("", "none"):
    c.model.pretrained = value
    assert build.pretrained_path(c) == "" and build.initial_variables(c, 10) is None
    build.check_pretrained(c)  # nothing to check
  c.model.pretrained = str(tmp_path / "missing.pth")
  try:
    build.check_pretrained(c)
  except FileNotFoundError as e:
    assert "missing.pth" in str(e) and "--config.model.pretrained=none" in str(e)
  else:
    raise AssertionError("a missing weights file must raise")
