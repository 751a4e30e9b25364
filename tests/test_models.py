"""Behaviour of the Flax backbones (tiny configs; the big nets only through eval_shape).

Torch-free. Equivalence with PyTorch lives in test_torch_equivalence.py, the weight
converter in test_models_convert.py. Random variables are drawn with NumPy on the shapes
from ``jax.eval_shape`` (compiling jax.random ops is slow on CPU); one test checks the
real initialisers.
"""

from __future__ import annotations

import math

import chex
import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from infocam_jax import models
from infocam_jax.models import layers

B, S, K = 2, 32, 5  # batch, image size, classes of the tiny models


def numpy_variables(model, image_shape=(1, S, S, 3), seed=0):
  """Random variables of ``model`` (NumPy draws on eval_shape shapes, He-scaled kernels,
  non-trivial BN affine parameters and running statistics)."""
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                          jax.ShapeDtypeStruct(image_shape, jnp.float32))
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = path[-1].key
    if name == "kernel" and len(s.shape) == 4:
      v = rng.normal(size=s.shape) * math.sqrt(2.0 / (s.shape[0] * s.shape[1] * s.shape[3]))
    elif name == "kernel":
      v = rng.normal(size=s.shape) / math.sqrt(s.shape[0])
    elif name == "scale":
      v = 1.0 + 0.2 * rng.normal(size=s.shape)
    elif name in ("bias", "mean"):
      v = 0.1 * rng.normal(size=s.shape)
    elif name == "var":
      v = rng.uniform(0.5, 1.5, size=s.shape)
    else:
      raise AssertionError(path)
    return jnp.asarray(v, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def images(seed=0, shape=(B, S, S, 3)):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


_COMPILED = {}


def compiled(arch, **options):
  """(model, jitted eval apply, jitted train apply) per configuration, shared by tests
  (every new jit of a network is a fresh compilation)."""
  key = (arch, tuple(sorted(options.items())))
  if key not in _COMPILED:
    model = models.create_model(arch, K, **options)
    _COMPILED[key] = (model, jax.jit(model.apply), train_apply(model))
  return _COMPILED[key]


def train_apply(model):
  return jax.jit(lambda v, x, k: model.apply(v, x, train=True, rngs={"adl": k},
                                             mutable=["batch_stats"]))


def rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def tiny():
  model, apply, train = compiled("resnet_tiny")
  return model, numpy_variables(model), apply, train


# ------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("stride,hw", [(2, 4), (1, 8)])
def test_tiny_shapes_and_dtypes(stride, hw):
  model, apply, _ = compiled("resnet_tiny", layer4_stride=stride)
  variables = numpy_variables(model)
  assert set(variables) == {"params", "batch_stats"}
  logits, features = apply(variables, images())
  chex.assert_shape(logits, (B, K))
  chex.assert_shape(features, (B, hw, hw, 64))
  chex.assert_type([logits, features], jnp.float32)
  assert np.all(np.asarray(features) >= 0)  # after the last ReLU


@pytest.mark.parametrize("arch,stride,size,want", [
    ("resnet50", 1, 224, (14, 14, 2048)),
    ("resnet50", 2, 224, (7, 7, 2048)),
    ("resnet50", 1, 64, (4, 4, 2048)),
    ("resnet18", 2, 64, (2, 2, 512)),
    ("resnet34", 1, 224, (14, 14, 512)),
    ("vgg16_gap", None, 224, (14, 14, 1024)),
    ("vgg16_gap", None, 64, (4, 4, 1024)),
])
def test_big_net_feature_shapes(arch, stride, size, want):
  opts = {} if stride is None else {"layer4_stride": stride}
  model = models.create_model(arch, 200, **opts)
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  (logits, features), variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x), x)
  assert logits.shape == (1, 200) and features.shape == (1,) + want
  assert ("batch_stats" in variables) == arch.startswith("resnet")
  for leaf in jax.tree_util.tree_leaves(variables):
    assert leaf.dtype == jnp.float32


def test_layer4_stride_keeps_parameter_shapes():
  shapes = [jax.eval_shape(lambda x, m=m: m.init(jax.random.key(0), x),
                           jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
            for m in (models.create_model("resnet50", 10, layer4_stride=s) for s in (1, 2))]
  assert jax.tree_util.tree_structure(shapes[0]) == jax.tree_util.tree_structure(shapes[1])
  assert jax.tree_util.tree_map(lambda a, b: a.shape == b.shape, *shapes)
  p = shapes[0]["params"]["layer4"]["0"]["downsample"]["0"]["kernel"]
  assert p.shape == (1, 1, 1024, 2048)  # layer4 downsample still exists with stride 1


def test_torchvision_module_names(tiny):
  _, variables, _, _ = tiny
  params = variables["params"]
  assert set(params) == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}
  assert set(params["layer1"]["0"]) == {"conv1", "bn1", "conv2", "bn2"}  # 8 -> 8, stride 1
  assert set(params["layer2"]["0"]["downsample"]) == {"0", "1"}
  assert set(variables["batch_stats"]["layer2"]["0"]["downsample"]["1"]) == {"mean", "var"}


# ------------------------------------------------------------------------------ init


def test_initialisers_follow_torchvision():
  # An RBG key: compiling threefry random ops is very slow on CPU with jax 0.10
  # (seconds per distinct shape with jax_threefry_partitionable=True).
  model = models.create_model("resnet_tiny", 10)
  variables = jax.jit(model.init)(jax.random.key(3, impl="rbg"), images())
  params, stats = variables["params"], variables["batch_stats"]
  # Conv: kaiming normal, fan_out = kh * kw * out -> std sqrt(2 / (9 * 64)).
  w = np.asarray(params["layer4"]["0"]["conv2"]["kernel"])  # 36,864 draws
  assert abs(w.std() / math.sqrt(2 / (9 * 64)) - 1) < 0.03 and abs(w.mean()) < 3e-3
  # BN scale 1, bias 0, running mean 0, var 1.
  for leaf in jax.tree_util.tree_leaves(params["layer3"]["0"]["bn1"]):
    assert np.all(np.asarray(leaf) == leaf[0]) and float(leaf[0]) in (0.0, 1.0)
  np.testing.assert_array_equal(stats["bn1"]["mean"], 0)
  np.testing.assert_array_equal(stats["bn1"]["var"], 1)
  # fc: PyTorch's Linear default, uniform +-1/sqrt(fan_in) for weight and bias.
  bound = 1 / math.sqrt(64)
  fc = params["fc"]
  assert np.abs(fc["kernel"]).max() <= bound and np.abs(fc["bias"]).max() <= bound
  assert np.abs(fc["kernel"]).max() > 0.8 * bound and np.std(fc["bias"]) > 0

  # VGG-GAP's own initialisers, on a one-block VGG-GAP (few shapes: cheap to compile).
  vgg = models.VGGGAP(num_classes=10, blocks=(1,), widths=(64,), conv6_width=128)
  vparams = jax.jit(vgg.init)(jax.random.key(4, impl="rbg"), images(0, (1, 4, 4, 3)))["params"]
  assert set(vparams) == {"conv1_1", "conv6", "fc"}
  np.testing.assert_array_equal(vparams["conv1_1"]["bias"], 0)
  np.testing.assert_array_equal(vparams["fc"]["bias"], 0)
  np.testing.assert_array_equal(vparams["conv6"]["bias"], 0)
  assert abs(np.std(vparams["fc"]["kernel"]) / 0.01 - 1) < 0.15  # normal(0, 0.01), 1280 draws
  w6 = np.asarray(vparams["conv6"]["kernel"])  # 3x3x64x128
  assert abs(w6.std() / math.sqrt(2 / (9 * 128)) - 1) < 0.03


# ------------------------------------------------------------------------------ BatchNorm


def test_batchnorm_module_matches_pytorch_formulas():
  x = np.random.default_rng(0).normal(2.0, 3.0, size=(4, 3, 5, 6)).astype(np.float32)
  bn = layers.BatchNorm(use_running_average=False)
  v = bn.init(jax.random.key(0), x)
  v = {"params": {"scale": jnp.linspace(0.5, 1.5, 6), "bias": jnp.linspace(-1, 1, 6)},
       "batch_stats": {"mean": jnp.full((6,), 0.3), "var": jnp.full((6,), 2.0)}}
  y, new = bn.apply(v, x, mutable=["batch_stats"])
  x64 = x.astype(np.float64).reshape(-1, 6)
  mean, var_b, var_u = x64.mean(0), x64.var(0), x64.var(0, ddof=1)
  want = (x64 - mean) / np.sqrt(var_b + 1e-5) * np.linspace(0.5, 1.5, 6) + np.linspace(-1, 1, 6)
  np.testing.assert_allclose(np.asarray(y).reshape(-1, 6), want, rtol=1e-5, atol=1e-5)
  # PyTorch momentum 0.1, unbiased variance in the running estimate.
  np.testing.assert_allclose(new["batch_stats"]["mean"], 0.9 * 0.3 + 0.1 * mean, rtol=1e-6)
  np.testing.assert_allclose(new["batch_stats"]["var"], 0.9 * 2.0 + 0.1 * var_u, rtol=1e-6)
  # Eval: running statistics, nothing batch-dependent.
  y_eval = layers.BatchNorm(use_running_average=True).apply(v, x)
  want_eval = ((x64 - 0.3) / np.sqrt(2.0 + 1e-5) * np.linspace(0.5, 1.5, 6)
               + np.linspace(-1, 1, 6))
  np.testing.assert_allclose(np.asarray(y_eval).reshape(-1, 6), want_eval, rtol=1e-5, atol=1e-5)
  # Running variances as small as pretrained nets have (1e-4..1e-2): eps is visible (eps
  # 1e-6 instead of torch's 1e-5 would be off by up to 4.4%). Error max|y - want| / max|want|:
  # measured 2.2e-7 (CPU, 2026-11-29).
  small = {**v, "batch_stats": {"mean": jnp.full((6,), 0.3), "var": jnp.logspace(-4, -2, 6)}}
  y_small = layers.BatchNorm(use_running_average=True).apply(small, x)
  want_small = ((x64 - 0.3) / np.sqrt(np.logspace(-4, -2, 6) + 1e-5) * np.linspace(0.5, 1.5, 6)
                + np.linspace(-1, 1, 6))
  err = np.max(np.abs(np.asarray(y_small).reshape(-1, 6) - want_small)) / np.max(np.abs(want_small))
  assert err < 2e-6, err
  # Initialising in training mode does not touch the statistics.
  v0 = bn.init(jax.random.key(0), x)
  np.testing.assert_array_equal(v0["batch_stats"]["mean"], 0)
  np.testing.assert_array_equal(v0["batch_stats"]["var"], 1)


def test_train_vs_eval_batchnorm_in_the_model(tiny):
  model, variables, apply, train = tiny
  x = images(1)
  (logits_tr, feats_tr), new = train(variables, x, jax.random.key(0))
  logits_ev, _ = apply(variables, x)
  assert jax.tree_util.tree_structure(new["batch_stats"]) == \
      jax.tree_util.tree_structure(variables["batch_stats"])
  # Every running statistic moved, by exactly momentum 0.1 towards the batch value:
  # the stem's mean update is 0.1 * (batch mean of conv1(x)) + 0.9 * old.
  changed = jax.tree_util.tree_map(lambda a, b: bool(np.all(a != b)),
                                   new["batch_stats"], variables["batch_stats"])
  assert all(jax.tree_util.tree_leaves(changed))
  conv1 = nn.Conv(8, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)
  c = conv1.apply({"params": variables["params"]["conv1"]}, x)
  want = 0.9 * variables["batch_stats"]["bn1"]["mean"] + 0.1 * np.asarray(c).mean((0, 1, 2))
  np.testing.assert_allclose(new["batch_stats"]["bn1"]["mean"], want, rtol=1e-5, atol=1e-6)
  assert rel_err(logits_tr, logits_ev) > 1e-3  # batch statistics differ from running ones
  # Eval is per-example; training mode couples the batch.
  single, _ = apply(variables, x[:1])
  np.testing.assert_allclose(single, logits_ev[:1], rtol=1e-5, atol=1e-5)
  (single_tr, _), _ = train(variables, jnp.concatenate([x[:1], x[:1]]), jax.random.key(0))
  assert rel_err(single_tr[:1], logits_tr[:1]) > 1e-3


def test_bn_axis_name_averages_over_the_mapped_axis(tiny):
  _, variables, _, train = tiny
  synced = models.create_model("resnet_tiny", K, bn_axis_name="devices")
  x = images(2)

  def per_device(v, xs):
    return synced.apply(v, xs, train=True, mutable=["batch_stats"])

  (logits_m, _), new_m = jax.jit(jax.vmap(per_device, in_axes=(None, 0), axis_name="devices"))(
      variables, x.reshape(2, 1, S, S, 3))
  (logits, _), new = train(variables, x, jax.random.key(0))
  np.testing.assert_allclose(logits_m.reshape(2, K), logits, rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(new_m), jax.tree_util.tree_leaves(new)):
    np.testing.assert_allclose(a[0], b, rtol=1e-5, atol=1e-6)  # n counted over both
    np.testing.assert_array_equal(a[0], a[1])


# ------------------------------------------------------------------------------ head


@pytest.mark.parametrize("arch,options", [("resnet_tiny", {}), ("vgg_tiny", {}),
                                          ("resnet_tiny", {"dtype": jnp.bfloat16})])
def test_head_weights_reproduce_logits(arch, options):
  model, apply, _ = compiled(arch, **options)
  variables = numpy_variables(model)
  logits, features = apply(variables, images(3))
  w, b = models.head_weights(variables)
  chex.assert_shape([w, b], [(features.shape[-1], K), (K,)])
  assert w is variables["params"]["fc"]["kernel"]
  assert models.head_weights(variables["params"])[0] is w
  want = np.asarray(features, np.float64).mean((1, 2)) @ np.asarray(w, np.float64) + np.asarray(b)
  np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)


def test_head_weights_error():
  with pytest.raises(ValueError, match="no head"):
    models.head_weights({"params": {"conv1": {}}})


def _torch_name(arch, path):
  from infocam_jax.models import convert
  keys = tuple(p.key for p in path)
  return convert._torch_key(arch, "params", keys)


@pytest.mark.parametrize("arch", ["resnet_tiny", "resnet50", "vgg_tiny", "vgg16_gap"])
def test_head_param_mask_matches_the_official_param_groups(arch):
  model = models.create_model(arch, 7)
  params = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                          jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))["params"]
  mask = models.head_param_mask(arch, params)
  assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(params)

  def official(path, _):  # train.py's rule, on torchvision names
    name = _torch_name(arch, path)
    if arch.startswith("resnet"):
      return name.startswith(("layer4.", "fc."))
    return not name.startswith("features.")

  want = jax.tree_util.tree_map_with_path(official, params)
  assert mask == want
  n_true = sum(math.prod(p.shape) for p, m in zip(jax.tree_util.tree_leaves(params),
                                                   jax.tree_util.tree_leaves(mask)) if m)
  if arch == "resnet50":  # layer4 14,964,736 + fc 2048*7+7
    assert n_true == 14_964_736 + 2048 * 7 + 7
  if arch == "vgg16_gap":  # conv6 3*3*512*1024+1024 + fc
    assert n_true == 4_719_616 + 1024 * 7 + 7


def test_head_param_mask_errors(tiny):
  _, variables, _, _ = tiny
  with pytest.raises(ValueError, match="variables"):
    models.head_param_mask("resnet_tiny", variables)
  with pytest.raises(ValueError, match="conv6"):
    models.head_param_mask("vgg16_gap", variables["params"])
  with pytest.raises(ValueError, match="arch"):
    models.head_param_mask("resnet51", variables["params"])


# ------------------------------------------------------------------------------ dtype


def test_bfloat16_compute_with_float32_params(tiny):
  _, variables, apply32, _ = tiny
  model, apply, train = compiled("resnet_tiny", dtype=jnp.bfloat16)
  x = images(4)
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x))(variables, x)

  def products_of(j):  # convolutions and matmuls (1x1 convs are matmuls, layers.Conv2d)
    out = [e for e in j.eqns if e.primitive.name in ("conv_general_dilated", "dot_general")]
    return out + [c for sub in jax.extend.core.subjaxprs(j) for c in products_of(sub)]

  products = products_of(jaxpr.jaxpr)
  convs = [e for e in products if all(v.aval.dtype == jnp.bfloat16 for v in e.invars)]
  head = [e for e in products if all(v.aval.dtype == jnp.float32 for v in e.invars)]
  assert len(convs) == 12  # stem + 4 blocks x 2 + downsamples of layer2-4
  assert len(head) == 1 and len(products) == 13  # the fc matmul, in float32
  logits, features = apply(variables, x)
  chex.assert_type([logits, features], jnp.float32)
  (logits_tr, _), new = train(variables, x, jax.random.key(0))
  assert logits_tr.dtype == jnp.float32
  for leaf in jax.tree_util.tree_leaves(new):
    assert leaf.dtype == jnp.float32  # BN statistics stay float32
  logits32, _ = apply32(variables, x)
  assert rel_err(logits, logits32) < 5e-2  # bf16 has 8 mantissa bits


# ------------------------------------------------------------------------------ ADL


def _adl_reference(x, threshold, use_drop):
  a = np.asarray(x, np.float64).mean(-1, keepdims=True)
  if use_drop:
    return x * (a < threshold * a.max((1, 2), keepdims=True))
  return x * (1 / (1 + np.exp(-a)))


@given(seed=st.integers(0, 2**31 - 1),
       config=st.sampled_from([(0.8, 0.0), (0.0, 1.0), (0.8, 1.0), (1.0, 1.0)]))
def test_adl_layer_matches_the_formulas(seed, config):
  threshold, drop_rate = config
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(3, 5, 6, 4)).astype(np.float32) + rng.uniform(-1, 1)
  out = _adl_apply(threshold, drop_rate)(x, jax.random.key(seed))
  np.testing.assert_allclose(out, _adl_reference(x, threshold, drop_rate == 1.0),
                             rtol=1e-6, atol=1e-6)
  if drop_rate == 1.0 and threshold <= 1.0:
    # The most attended location of each example is always dropped (when its mean > 0).
    a = x.mean(-1)
    for i in range(3):
      if a[i].max() > 0:
        h, w = np.unravel_index(np.argmax(a[i]), a[i].shape)
        assert np.all(np.asarray(out)[i, h, w] == 0)


_ADL_CACHE = {}


def _adl_apply(threshold, drop_rate):
  if (threshold, drop_rate) not in _ADL_CACHE:
    adl = layers.ADL(threshold, drop_rate)
    _ADL_CACHE[(threshold, drop_rate)] = jax.jit(
        lambda x, k: adl.apply({}, x, train=True, rngs={"adl": k}))
  return _ADL_CACHE[(threshold, drop_rate)]


def test_adl_draws_one_branch_per_call_with_probability_drop_rate():
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 2, size=(2, 4, 4, 3)), jnp.float32)
  adl = layers.ADL(0.9, 0.75)
  keys = jax.random.split(jax.random.key(11), 2000)
  outs = jax.jit(jax.vmap(lambda k: adl.apply({}, x, train=True, rngs={"adl": k})))(keys)
  drop = np.asarray(_adl_reference(np.asarray(x), 0.9, True))
  imp = np.asarray(_adl_reference(np.asarray(x), 0.9, False))
  is_drop = np.all(np.isclose(outs, drop, atol=1e-6), axis=(1, 2, 3, 4))
  is_imp = np.all(np.isclose(outs, imp, atol=1e-6), axis=(1, 2, 3, 4))
  assert np.all(is_drop ^ is_imp)  # one branch for the whole batch, never a mixture
  # Binomial(2000, 0.75): sd 0.0097; 5 sd.
  assert abs(is_drop.mean() - 0.75) < 0.05
  # Identity at evaluation.
  np.testing.assert_array_equal(adl.apply({}, x, train=False), x)


def test_adl_in_resnet_identity_at_eval_and_keyed_in_training(tiny):
  _, variables, apply, _ = tiny
  model, model_apply, model_train = compiled("resnet_tiny", adl_positions="20 40",
                                            adl_drop_rate=1.0, adl_threshold=0.8)
  x = images(5)
  for a, b in zip(model_apply(variables, x), apply(variables, x)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="rngs=\\{'adl'"):
    model.apply(variables, x, train=True, mutable=["batch_stats"])
  # Position '40' is after layer4 block 0, the last block of resnet_tiny, so the returned
  # features are those of a model with ADL at '20' alone (same key, same '20' draw) times
  # the drop mask of '40' (drop_rate 1).
  _, _, only20_train = compiled("resnet_tiny", adl_positions="20", adl_drop_rate=1.0,
                                adl_threshold=0.8)
  (logits, feats), _ = model_train(variables, x, jax.random.key(0))
  (_, feats20), _ = only20_train(variables, x, jax.random.key(0))
  np.testing.assert_allclose(feats, _adl_reference(np.asarray(feats20), 0.8, True),
                             rtol=1e-6, atol=1e-6)
  w, b = models.head_weights(variables)
  np.testing.assert_allclose(logits, np.asarray(feats).mean((1, 2)) @ np.asarray(w) + b,
                             rtol=1e-5, atol=1e-5)


def test_adl_randomness_comes_from_the_key(tiny):
  _, variables, _, _ = tiny
  _, _, f = compiled("resnet_tiny", adl_positions="30 40")
  x = images(6)
  outs = [np.asarray(f(variables, x, jax.random.key(i))[0][0]) for i in range(6)]
  np.testing.assert_array_equal(outs[0], np.asarray(f(variables, x, jax.random.key(0))[0][0]))
  assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_adl_in_vgg_positions():
  base, base_apply, _ = compiled("vgg_tiny")
  variables = numpy_variables(base)
  x = images(7)
  _, apply, train = compiled("vgg_tiny", adl_positions="3M 4M 53 6", adl_drop_rate=0.0)
  for a, b in zip(apply(variables, x), base_apply(variables, x)):
    np.testing.assert_array_equal(a, b)  # identity at eval
  _, _, official_train = compiled("vgg_tiny", adl_positions="3M 4M 53", adl_drop_rate=0.0)
  (_, feats), _ = train(variables, x, jax.random.key(0))
  (_, feats_off), _ = official_train(variables, x, jax.random.key(0))
  # '6' acts on conv6's output (after ReLU), which is the returned feature map.
  np.testing.assert_allclose(feats, _adl_reference(np.asarray(feats_off), 0.8, False),
                             rtol=1e-6, atol=1e-6)
  assert models.create_model("vgg_tiny", K, adl_positions="3M").adl_threshold == 0.8
  assert models.create_model("resnet_tiny", K, adl_positions="30").adl_threshold == 0.9


def test_adl_position_validation():
  assert models.create_model("resnet50", 3, adl_positions="42 30 40").adl_positions == \
      ("30", "40", "42")
  assert models.create_model("resnet50", 3, adl_positions=["30", "42"]).adl_positions == \
      ("30", "42")
  assert models.valid_adl_positions("vgg16_gap")[:4] == ("11", "12", "1M", "21")
  for arch, bad, match in [
      ("resnet18", "42", "unknown position '42'"),   # layer4 has blocks 0, 1
      ("resnet50", "50", "unknown position '50'"),
      ("vgg16_gap", "5M", "unknown position '5M'"),  # the last pool is removed
      ("vgg16_gap", "3M 3M", "given twice"),
      ("resnet50", [30, 40], "must be strings"),
      ("resnet50", 30, "must be a string"),
  ]:
    with pytest.raises(ValueError, match=match):
      models.create_model(arch, 3, adl_positions=bad)
  with pytest.raises(ValueError, match="adl_threshold"):
    models.create_model("resnet50", 3, adl_positions="30", adl_threshold=1.5)
  with pytest.raises(ValueError, match="adl_drop_rate"):
    models.create_model("resnet50", 3, adl_positions="30", adl_drop_rate=-0.1)


# ------------------------------------------------------------------------------ errors


def test_create_model_errors(tiny):
  with pytest.raises(ValueError, match="`arch` must be one of .*resnet50"):
    models.create_model("resnet101", 10)
  for bad in (0, -3, 2.0, True):
    with pytest.raises(ValueError, match="num_classes"):
      models.create_model("resnet18", bad)
  with pytest.raises(ValueError, match="layer4_stride"):
    models.create_model("resnet18", 10, layer4_stride=3)
  with pytest.raises(ValueError, match="ResNet archs only"):
    models.create_model("vgg16_gap", 10, layer4_stride=1)
  with pytest.raises(ValueError, match="dtype"):
    models.create_model("resnet18", 10, dtype=jnp.int32)
  with pytest.raises(TypeError):
    models.create_model("resnet18", 10, widths=(1, 2, 3, 4))
  model, variables, _, _ = tiny
  with pytest.raises(ValueError, match="4-D NHWC"):
    model.apply(variables, jnp.zeros((S, S, 3)))
  with pytest.raises(ValueError, match="floating point"):
    model.apply(variables, jnp.zeros((1, S, S, 3), jnp.uint8))
  assert models.create_model("vgg16_gap", 10, bn_axis_name="batch").num_classes == 10


# ------------------------------------------------------------------------------ Grad-CAM hook


@pytest.mark.parametrize("arch", ["resnet_tiny", "vgg_tiny"])
def test_grad_cam_through_the_feature_map_hook(arch):
  """The models expose their feature map to `cam.grad_cam` via `perturb`; init adds no
  extra collection, and the result equals Grad-CAM of the GAP + dense head."""
  from infocam_jax import cam
  model, apply, _ = compiled(arch)
  shape = (B, S, S, 3) if arch == "resnet_tiny" else (B, 16, 16, 3)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                          jax.ShapeDtypeStruct(shape, jnp.float32))
  assert set(shapes) <= {"params", "batch_stats"}
  variables = numpy_variables(model, shape, seed=5)
  x = images(6, shape)
  labels = jnp.array([1, 3])
  via_model = cam.grad_cam(model.apply, variables, x, labels, train=False)
  _, features = apply(variables, x)
  via_head = cam.grad_cam_from_head(cam.gap_dense_head(*models.head_weights(variables)),
                                    features, labels)
  np.testing.assert_allclose(via_model, via_head, rtol=1e-5, atol=1e-6)
  assert float(jnp.max(via_head)) > 0  # not a vacuous all-zero comparison


# -- LeNet (the paper's MNIST network, models/lenet.py) -------------------------------------------------------------------------


def test_lenet_shapes_and_torch_parameter_count():
  model = models.create_model("lenet", 10)
  x = np.zeros((3, 28, 28, 1), np.float32)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)  # eager: every op compiled alone
  logits, features = jax.jit(model.apply)(variables, x)
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  assert features.shape == (3, 4, 4, 50)
  # torch's Net of the MNIST example: conv1 (1->20, 5), conv2 (20->50, 5), fc1 800->500, fc2.
  torch_count = (20 * 1 * 5 * 5 + 20) + (50 * 20 * 5 * 5 + 50) + (800 * 500 + 500) + (500 * 10 + 10)
  assert sum(int(np.size(p)) for p in jax.tree.leaves(variables["params"])) == torch_count
  assert "batch_stats" not in variables
  shapes = jax.tree.map(np.shape, variables["params"])
  assert shapes["fc1"]["kernel"] == (800, 500) and shapes["fc2"]["kernel"] == (500, 10)
  # Other sizes infer fc1's width: 32x32x3 -> 5x5x50.
  v32 = jax.eval_shape(model.init, jax.random.PRNGKey(0), np.zeros((1, 32, 32, 3), np.float32))
  assert v32["params"]["fc1"]["kernel"].shape == (1250, 500)
  with pytest.raises(ValueError, match="at least 16x16"):
    jax.eval_shape(model.init, jax.random.PRNGKey(0), np.zeros((1, 12, 12, 1), np.float32))
  with pytest.raises(ValueError, match="do not apply"):
    models.create_model("lenet", 10, layer4_stride=1)
  # PyTorch's default init: |w| <= 1/sqrt(fan_in) for every layer.
  for name, fan_in in (("conv1", 25), ("conv2", 500), ("fc1", 800), ("fc2", 500)):
    for leaf in variables["params"][name].values():
      assert float(np.abs(leaf).max()) <= 1 / math.sqrt(fan_in) + 1e-7


def test_lenet_matches_torch_with_converted_weights():
  torch = pytest.importorskip("torch")
  tnn = torch.nn

  class Net(tnn.Module):  # the PyTorch MNIST example's network
    def __init__(self):
      super().__init__()
      self.conv1 = tnn.Conv2d(1, 20, 5, 1)
      self.conv2 = tnn.Conv2d(20, 50, 5, 1)
      self.fc1 = tnn.Linear(4 * 4 * 50, 500)
      self.fc2 = tnn.Linear(500, 10)

    def forward(self, x):
      x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2, 2)
      x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2, 2)
      x = torch.relu(self.fc1(x.view(-1, 4 * 4 * 50)))
      return self.fc2(x)

  torch.manual_seed(0)
  net = Net().eval()
  sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
  params = {
      "conv1": {"kernel": sd["conv1.weight"].transpose(2, 3, 1, 0), "bias": sd["conv1.bias"]},
      "conv2": {"kernel": sd["conv2.weight"].transpose(2, 3, 1, 0), "bias": sd["conv2.bias"]},
      "fc1": {"kernel": sd["fc1.weight"].T, "bias": sd["fc1.bias"]},
      "fc2": {"kernel": sd["fc2.weight"].T, "bias": sd["fc2.bias"]},
  }
  x = np.random.default_rng(0).normal(size=(4, 1, 28, 28)).astype(np.float32)
  with torch.no_grad():
    want = net(torch.from_numpy(x)).numpy()
  got, _ = models.create_model("lenet", 10).apply({"params": params}, x.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size,cin,cout,k,stride,pad", [
    (9, 5, 7, 1, 1, 0),   # 1x1: one matmul
    (9, 5, 7, 1, 2, 0),   # 1x1 strided (downsample): slice + matmul
    (2, 6, 4, 3, 1, 1),   # map smaller than the kernel: im2col matmul
    (1, 6, 4, 3, 2, 1),
    (2, 3, 4, 7, 2, 3),   # 7x7 stem on a 2x2 image
    (4, 6, 4, 3, 2, 1),   # 4x4 -> 2x2 output smaller than the kernel: im2col
    (8, 3, 4, 3, 1, 1),   # plain lax convolution
    (9, 3, 4, 3, 2, 1),
])
def test_conv2d_equals_flax_conv_values_and_gradients(size, cin, cout, k, stride, pad):
  # Conv2d picks a matmul / im2col / convolution formulation by shape; each must be the
  # same function as nn.Conv with PyTorch padding, for the output and both gradients.
  rng = np.random.default_rng(size * 100 + k * 10 + stride)
  x = jnp.asarray(rng.standard_normal((2, size, size, cin)), jnp.float32)
  ref = nn.Conv(cout, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                use_bias=False)
  ours = layers.Conv2d(cout, k, stride, pad)
  variables = ref.init(jax.random.key(0), x)
  assert jax.tree_util.tree_structure(ours.init(jax.random.key(0), x)) == \
      jax.tree_util.tree_structure(variables)
  want, got = ref.apply(variables, x), ours.apply(variables, x)
  assert got.shape == want.shape and got.dtype == want.dtype
  cot = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)
  grad = lambda m: jax.grad(lambda v, x: jnp.sum(m.apply(v, x) * cot), argnums=(0, 1))(
      variables, x)
  # Measured max |difference| <= 8.1e-6 (values of order 1-10): summation order only.
  for a, b in zip(jax.tree_util.tree_leaves((want, grad(ref))),
                  jax.tree_util.tree_leaves((got, grad(ours)))):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=5e-5)
