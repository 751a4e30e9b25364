"""The torchvision weight converter without torch: safetensors written from NumPy.

State dicts are generated here in torchvision's naming and layout (OIHW convs, [out, in]
linears, BatchNorm weight/bias/running_mean/running_var/num_batches_tracked), and the
loaded Flax model is compared with an independent functional NCHW forward pass written
directly on the torch-layout arrays (``jax.lax.conv_general_dilated`` with OIHW kernels).
"""

from __future__ import annotations

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from safetensors.numpy import save_file

from infocam_jax import models
from infocam_jax.models import convert

K = 6
TINY_WIDTHS = (8, 16, 32, 64)
VGG_TINY_CFG = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64]


def rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ---------------------------------------------------------------- torchvision-layout dicts


def _conv(sd, rng, name, o, i, k, bias=False):
  sd[f"{name}.weight"] = (rng.normal(size=(o, i, k, k)) * math.sqrt(2 / (o * k * k))
                          ).astype(np.float32)
  if bias:
    sd[f"{name}.bias"] = (0.05 * rng.normal(size=(o,))).astype(np.float32)


def _bn(sd, rng, name, c):
  # Running variances log-uniform in [1e-4, 1] as in pretrained nets (eps 1e-5 vs 1e-6
  # then changes a channel by up to 4.5%); scale sqrt(var) x (1 +- 0.2) keeps outputs O(1).
  var = 10.0 ** rng.uniform(-4, 0, size=(c,))
  sd[f"{name}.weight"] = (np.sqrt(var) * (1 + 0.2 * rng.normal(size=(c,)))).astype(np.float32)
  sd[f"{name}.bias"] = (0.1 * rng.normal(size=(c,))).astype(np.float32)
  sd[f"{name}.running_mean"] = (0.1 * rng.normal(size=(c,))).astype(np.float32)
  sd[f"{name}.running_var"] = var.astype(np.float32)
  sd[f"{name}.num_batches_tracked"] = np.array(5, np.int64)


def _fc(sd, rng, fan_in, k):
  sd["fc.weight"] = (rng.normal(size=(k, fan_in)) / math.sqrt(fan_in)).astype(np.float32)
  sd["fc.bias"] = (0.1 * rng.normal(size=(k,))).astype(np.float32)


def tv_resnet_tiny(seed=0, k=K):
  """torchvision naming for resnet_tiny (BasicBlock, 1 block per stage, 3x3/1 stem)."""
  rng, sd = np.random.default_rng(seed), {}
  _conv(sd, rng, "conv1", 8, 3, 3)
  _bn(sd, rng, "bn1", 8)
  inp = 8
  for s, w in enumerate(TINY_WIDTHS):
    p = f"layer{s + 1}.0"
    _conv(sd, rng, f"{p}.conv1", w, inp, 3)
    _bn(sd, rng, f"{p}.bn1", w)
    _conv(sd, rng, f"{p}.conv2", w, w, 3)
    _bn(sd, rng, f"{p}.bn2", w)
    if s > 0:
      _conv(sd, rng, f"{p}.downsample.0", w, inp, 1)
      _bn(sd, rng, f"{p}.downsample.1", w)
    inp = w
  _fc(sd, rng, 64, k)
  return sd


def tv_vgg_tiny(seed=0, k=K, head="gap"):
  """torchvision VGG ``features.N`` for vgg_tiny; head "gap" adds conv6 + fc (infoCAM),
  "classifier" adds a torchvision-style classifier.0/3/6, None nothing."""
  rng, sd, idx, c = np.random.default_rng(seed), {}, 0, 3
  for v in VGG_TINY_CFG + ["M"]:
    if v == "M":
      idx += 1
    else:
      _conv(sd, rng, f"features.{idx}", v, c, 3, bias=True)
      idx, c = idx + 2, v
  if head == "gap":
    _conv(sd, rng, "conv6", 128, 64, 3, bias=True)
    _fc(sd, rng, 128, k)
  elif head == "classifier":
    for i, (o, n) in {0: (32, 64 * 49), 3: (32, 32), 6: (1000, 32)}.items():
      sd[f"classifier.{i}.weight"] = rng.normal(size=(o, n)).astype(np.float32)
      sd[f"classifier.{i}.bias"] = rng.normal(size=(o,)).astype(np.float32)
  return sd


# ---------------------------------------------------------------- functional references


def _ref_conv(x, sd, name, stride, pad):
  y = lax.conv_general_dilated(x, jnp.asarray(sd[f"{name}.weight"]), (stride, stride),
                               [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW"),
                               precision=lax.Precision.HIGHEST)
  if f"{name}.bias" in sd:
    y = y + sd[f"{name}.bias"][None, :, None, None]
  return y


def _ref_bn(x, sd, name):
  c = lambda a: jnp.asarray(sd[f"{name}.{a}"])[None, :, None, None]
  return (x - c("running_mean")) / jnp.sqrt(c("running_var") + 1e-5) * c("weight") + c("bias")


def ref_resnet_tiny(sd, x_nhwc, layer4_stride):
  relu = jax.nn.relu
  x = jnp.transpose(x_nhwc, (0, 3, 1, 2))
  x = relu(_ref_bn(_ref_conv(x, sd, "conv1", 1, 1), sd, "bn1"))
  for s in range(4):
    p, stride = f"layer{s + 1}.0", (1, 2, 2, layer4_stride)[s]
    y = relu(_ref_bn(_ref_conv(x, sd, f"{p}.conv1", stride, 1), sd, f"{p}.bn1"))
    y = _ref_bn(_ref_conv(y, sd, f"{p}.conv2", 1, 1), sd, f"{p}.bn2")
    if f"{p}.downsample.0.weight" in sd:
      x = _ref_bn(_ref_conv(x, sd, f"{p}.downsample.0", stride, 0), sd, f"{p}.downsample.1")
    x = relu(y + x)
  logits = x.mean((2, 3)) @ sd["fc.weight"].T + sd["fc.bias"]
  return logits, jnp.transpose(x, (0, 2, 3, 1))


def ref_vgg_tiny(sd, x_nhwc):
  x, idx = jnp.transpose(x_nhwc, (0, 3, 1, 2)), 0
  for v in VGG_TINY_CFG:
    if v == "M":
      x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
      idx += 1
    else:
      x = jax.nn.relu(_ref_conv(x, sd, f"features.{idx}", 1, 1))
      idx += 2
  x = jax.nn.relu(_ref_conv(x, sd, "conv6", 1, 1))
  logits = x.mean((2, 3)) @ sd["fc.weight"].T + sd["fc.bias"]
  return logits, jnp.transpose(x, (0, 2, 3, 1))


def images(seed=0, shape=(2, 32, 32, 3)):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("stride", [1, 2])
def test_safetensors_resnet_tiny_matches_functional_reference(tmp_path, stride):
  sd = tv_resnet_tiny(seed=stride)
  path = tmp_path / "tiny.safetensors"
  save_file(sd, str(path))
  variables = models.load_torchvision_weights(path, "resnet_tiny", layer4_stride=stride)
  model = models.create_model("resnet_tiny", K, layer4_stride=stride)
  x = images(stride)
  logits, feats = jax.jit(model.apply)(variables, x)
  ref_logits, ref_feats = jax.jit(ref_resnet_tiny, static_argnums=2)(sd, x, stride)
  assert feats.shape == (2, 8 if stride == 1 else 4, 8 if stride == 1 else 4, 64)
  assert rel_err(logits, ref_logits) < 1e-5 and rel_err(feats, ref_feats) < 1e-5
  # Leaf-level mapping, spelled out.
  p = variables["params"]
  np.testing.assert_array_equal(p["layer2"]["0"]["downsample"]["0"]["kernel"],
                                sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(p["layer3"]["0"]["bn2"]["scale"], sd["layer3.0.bn2.weight"])
  np.testing.assert_array_equal(variables["batch_stats"]["layer4"]["0"]["bn1"]["var"],
                                sd["layer4.0.bn1.running_var"])
  np.testing.assert_array_equal(p["fc"]["kernel"], sd["fc.weight"].T)
  for leaf in jax.tree_util.tree_leaves(variables):
    assert leaf.dtype == jnp.float32


def test_safetensors_vgg_tiny_gap_checkpoint_matches_functional_reference(tmp_path):
  sd = tv_vgg_tiny(seed=3)
  save_file(sd, str(tmp_path / "v.safetensors"))
  variables = models.load_torchvision_weights(tmp_path / "v.safetensors", "vgg_tiny")
  assert set(variables) == {"params"}
  model = models.create_model("vgg_tiny", K)
  x = images(4)
  logits, feats = jax.jit(model.apply)(variables, x)
  ref_logits, ref_feats = jax.jit(ref_vgg_tiny)(sd, x)
  assert rel_err(logits, ref_logits) < 1e-5 and rel_err(feats, ref_feats) < 1e-5


def test_vgg_conv_indices_are_torchvisions():
  want, idx = [], 0
  for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]:
    if v != "M":
      want.append(idx)
      idx += 1
    idx += 1
  got = convert._vgg_conv_indices((2, 2, 3, 3, 3))
  assert list(got.values()) == want == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
  assert list(got)[:3] == ["conv1_1", "conv1_2", "conv2_1"] and got["conv5_3"] == 28


def test_torchvision_vgg_checkpoint_drops_classifier_and_inits_conv6_fc():
  sd = tv_vgg_tiny(seed=5, head="classifier")
  with pytest.raises(ValueError, match="num_classes"):
    models.convert_torchvision_state_dict(sd, "vgg_tiny")
  with pytest.raises(ValueError, match="conv6.*key="):
    models.convert_torchvision_state_dict(sd, "vgg_tiny", 200)
  v = models.convert_torchvision_state_dict(sd, "vgg_tiny", 200, key=jax.random.key(0))
  p = v["params"]
  np.testing.assert_array_equal(p["conv4_3"]["kernel"], sd["features.21"
                                                          ".weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(p["conv5_1"]["bias"], sd["features.24.bias"])
  assert p["conv6"]["kernel"].shape == (3, 3, 64, 128) and p["fc"]["kernel"].shape == (128, 200)
  np.testing.assert_array_equal(p["conv6"]["bias"], 0)
  np.testing.assert_array_equal(p["fc"]["bias"], 0)
  assert 0.007 < float(np.std(p["fc"]["kernel"])) < 0.013  # normal(0, 0.01)
  assert abs(float(np.std(p["conv6"]["kernel"])) / math.sqrt(2 / (9 * 128)) - 1) < 0.05


def test_head_kept_or_replaced():
  sd = tv_resnet_tiny(seed=7)
  kept = models.convert_torchvision_state_dict(sd, "resnet_tiny", K)
  np.testing.assert_array_equal(kept["params"]["fc"]["bias"], sd["fc.bias"])
  with pytest.raises(ValueError, match="fc must be initialised freshly.*6 classes.*key="):
    models.convert_torchvision_state_dict(sd, "resnet_tiny", 3)
  new = models.convert_torchvision_state_dict(sd, "resnet_tiny", 3, key=jax.random.key(1))
  again = models.convert_torchvision_state_dict(sd, "resnet_tiny", 3, key=jax.random.key(1))
  other = models.convert_torchvision_state_dict(sd, "resnet_tiny", 3, key=jax.random.key(2))
  w, b = models.head_weights(new)
  assert w.shape == (64, 3) and b.shape == (3,)
  assert float(np.abs(w).max()) <= 1 / 8 and float(np.abs(b).max()) <= 1 / 8  # torch Linear
  np.testing.assert_array_equal(w, models.head_weights(again)[0])
  assert not np.array_equal(w, models.head_weights(other)[0])
  # Everything else is the checkpoint's.
  body = lambda v: {k: x for k, x in v["params"].items() if k != "fc"}
  jax.tree_util.tree_map(np.testing.assert_array_equal, body(new), body(kept))


def test_round_trip_export(tmp_path):
  for arch, sd in (("resnet_tiny", tv_resnet_tiny(9)), ("vgg_tiny", tv_vgg_tiny(9))):
    variables = models.convert_torchvision_state_dict(sd, arch)
    out = models.to_torchvision_state_dict(variables, arch)
    want = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert sorted(out) == sorted(want)
    for k in want:
      np.testing.assert_array_equal(out[k], want[k], err_msg=k)
    path = tmp_path / f"{arch}.safetensors"
    models.save_torchvision_weights(variables, path, arch)
    again = models.load_torchvision_weights(path, arch)
    jax.tree_util.tree_map(np.testing.assert_array_equal, again, variables)
  with pytest.raises(ValueError, match=".safetensors"):
    models.save_torchvision_weights(variables, tmp_path / "x.pth", "vgg_tiny")


def test_wrappers_prefixes_and_ignored_entries():
  sd = tv_resnet_tiny(seed=11)
  want = models.convert_torchvision_state_dict(sd, "resnet_tiny")
  wrapped = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
  got = models.convert_torchvision_state_dict(wrapped, "resnet_tiny")
  jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)


def test_errors_name_the_key():
  sd = tv_resnet_tiny(seed=12)
  bad = dict(sd)
  del bad["layer2.0.downsample.1.running_var"]
  with pytest.raises(ValueError, match=r"missing 1 key.*layer2\.0\.downsample\.1\.running_var"):
    models.convert_torchvision_state_dict(bad, "resnet_tiny")
  bad = dict(sd, **{"layer3.0.conv2.weight": np.zeros((32, 32, 1, 1), np.float32)})
  with pytest.raises(ValueError, match=r"'layer3\.0\.conv2\.weight': checkpoint \(32, 32, 1, 1\), "
                     r"model needs \(32, 32, 3, 3\)"):
    models.convert_torchvision_state_dict(bad, "resnet_tiny")
  extra = dict(sd, **{"layer1.1.conv1.weight": np.zeros((8, 8, 3, 3), np.float32)})
  with pytest.raises(ValueError, match=r"unexpected.*layer1\.1\.conv1\.weight.*strict=False"):
    models.convert_torchvision_state_dict(extra, "resnet_tiny")
  with pytest.warns(UserWarning, match="layer1.1.conv1.weight"):
    v = models.convert_torchvision_state_dict(extra, "resnet_tiny", strict=False)
  assert "1" not in v["params"]["layer1"]
  with pytest.raises(ValueError, match="`arch` must be one of"):
    models.convert_torchvision_state_dict(sd, "resnet101")
  with pytest.raises(ValueError, match="missing .* key"):
    models.convert_torchvision_state_dict(sd, "resnet18")  # a different architecture
  bad = dict(sd, **{"bn1.running_mean": np.zeros(8, np.int32)})
  with pytest.raises(ValueError, match="bn1.running_mean.*non-float"):
    models.convert_torchvision_state_dict(bad, "resnet_tiny")
  with pytest.raises(ValueError, match="mapping"):
    models.convert_torchvision_state_dict([1, 2], "resnet_tiny")
  with pytest.raises(ValueError, match="layer4_stride"):
    models.convert_torchvision_state_dict(sd, "resnet_tiny", layer4_stride=5)


def test_file_errors(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError):
    models.load_torchvision_weights(tmp_path / "none.safetensors", "resnet_tiny")
  (tmp_path / "w.npz").write_bytes(b"")
  with pytest.raises(ValueError, match="unknown weights file type '.npz'"):
    models.load_torchvision_weights(tmp_path / "w.npz", "resnet_tiny")
  (tmp_path / "w.safetensors").write_bytes(b"not a safetensors file")
  with pytest.raises(ValueError, match="could not read"):
    models.load_torchvision_weights(tmp_path / "w.safetensors", "resnet_tiny")
  (tmp_path / "w.pth").write_bytes(b"")
  monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
  with pytest.raises(ImportError, match="needs torch"):
    models.load_torchvision_weights(tmp_path / "w.pth", "resnet_tiny")
