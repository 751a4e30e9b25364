"""Tests of infocam_jax.cam: CAM, infoCAM, Grad-CAM, upsampling, normalisation."""

from __future__ import annotations

import functools

import cv2
import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from infocam_jax import cam

B, H, W, C, K = 3, 5, 6, 7, 11


def _data(seed=0, b=B, h=H, w=W, c=C, k=K):
  rng = np.random.default_rng(seed)
  features = np.abs(rng.normal(size=(b, h, w, c))).astype(np.float32)
  weights = rng.normal(size=(c, k)).astype(np.float32)
  labels = rng.integers(0, k, size=b).astype(np.int32)
  logits = rng.normal(size=(b, k)).astype(np.float32)
  return features, weights, labels, logits


def _all_cams_np(features, weights):
  """All K maps by a loop (the textbook definition): [B, K, H, W] in float64."""
  f = features.astype(np.float64)
  out = np.zeros(f.shape[:1] + (weights.shape[1],) + f.shape[1:3])
  for b in range(f.shape[0]):
    for k in range(weights.shape[1]):
      for c in range(f.shape[3]):
        out[b, k] += weights[c, k] * f[b, :, :, c]
  return out


def _region_sum_np(m, k, padding):
  """Brute-force window sums of one [H, W] map."""
  h, w = m.shape
  if padding == "full":
    out = np.zeros((h + k - 1, w + k - 1))
    for i in range(h + k - 1):
      for j in range(w + k - 1):
        for u in range(i - k + 1, i + 1):
          for v in range(j - k + 1, j + 1):
            if 0 <= u < h and 0 <= v < w:
              out[i, j] += m[u, v]
  else:
    lo = (k - 1) // 2
    out = np.zeros((h, w))
    for i in range(h):
      for j in range(w):
        for u in range(i - lo, i - lo + k):
          for v in range(j - lo, j - lo + k):
            if 0 <= u < h and 0 <= v < w:
              out[i, j] += m[u, v]
  return out


# ---------------------------------------------------------------------------
# CAM


def test_cam_matches_loop_over_all_class_maps():
  f, w, y, _ = _data()
  ref = _all_cams_np(f, w)[np.arange(B), y]
  got = np.asarray(cam.class_activation_map(f, w, y))
  assert got.shape == (B, H, W) and got.dtype == np.float32
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_cam_mean_is_channel_mean_and_normalises_identically():
  f, w, y, _ = _data(1)
  s = cam.class_activation_map(f, w, y, reduce="sum")
  m = cam.class_activation_map(f, w, y, reduce="mean")
  np.testing.assert_allclose(m, s / C, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(cam.normalize_maps(m), cam.normalize_maps(s), atol=1e-6)


def test_cam_accepts_bfloat16_features_and_returns_float32():
  f, w, y, _ = _data(2)
  got = cam.class_activation_map(jnp.asarray(f, jnp.bfloat16), w, y)
  assert got.dtype == jnp.float32
  ref = _all_cams_np(np.asarray(jnp.asarray(f, jnp.bfloat16).astype(jnp.float32)), w)
  np.testing.assert_allclose(got, ref[np.arange(B), y], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Region summation


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("padding", ["full", "same"])
def test_region_sum_matches_brute_force(k, padding):
  m = np.random.default_rng(k).normal(size=(2, H, W)).astype(np.float32)
  got = np.asarray(cam.region_sum(m, k, padding))
  ref = np.stack([_region_sum_np(x, k, padding) for x in m])
  expected = (2, H + k - 1, W + k - 1) if padding == "full" else (2, H, W)
  assert got.shape == expected
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_region_sum_same_is_cropped_full_and_full_preserves_total(k):
  m = np.random.default_rng(10 + k).normal(size=(2, H, W)).astype(np.float32)
  full = np.asarray(cam.region_sum(m, k, "full"))
  same = np.asarray(cam.region_sum(m, k, "same"))
  np.testing.assert_allclose(same, full[:, k // 2:k // 2 + H, k // 2:k // 2 + W], atol=1e-6)
  np.testing.assert_allclose(full.sum((1, 2)), k * k * m.sum((1, 2)), rtol=1e-5)


def test_official_geometries():
  # CUB: 14x14 maps, k=4, pad 3 -> 17x17; Tiny-ImageNet: 4x4, k=3, pad 2 -> 6x6.
  assert cam.region_sum(np.zeros((1, 14, 14), np.float32), 4, "full").shape == (1, 17, 17)
  assert cam.region_sum(np.zeros((1, 4, 4), np.float32), 3, "full").shape == (1, 6, 6)


# ---------------------------------------------------------------------------
# infoCAM


def _effective_weights_np(w, y, logits, variant):
  k = w.shape[1]
  out = []
  for b, yb in enumerate(y):
    if variant == "mean":
      others = [w[:, j] for j in range(k) if j != yb]
      out.append(w[:, yb] - np.mean(others, axis=0))
    elif variant == "min":
      out.append(w[:, yb] - w[:, int(np.argmin(logits[b]))])
    else:
      out.append(w[:, yb])
  return np.stack(out)


@pytest.mark.parametrize("variant", ["mean", "min", "none"])
@pytest.mark.parametrize("padding", ["full", "same"])
def test_infocam_matches_reference(variant, padding):
  f, w, y, z = _data(3)
  k = 4
  got = np.asarray(cam.infocam(f, w, y, logits=z, variant=variant, region_size=k,
                               padding=padding))
  v = _effective_weights_np(w, y, z, variant)
  unsummed = np.einsum("bhwc,bc->bhw", f.astype(np.float64), v)
  ref = np.stack([_region_sum_np(x, k, padding) for x in unsummed])
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_infocam_min_subtracts_lowest_scoring_class():
  f, w, _, _ = _data(4)
  y = np.array([0, 1, 2], np.int32)
  z = np.zeros((B, K), np.float32)
  kmin = np.array([5, 9, 2])  # the last one equals the label -> an all-zero map
  z[np.arange(B), kmin] = -3.0
  got = np.asarray(cam.infocam(f, w, y, logits=z, variant="min", region_size=1))
  for b in range(B):
    ref = np.einsum("hwc,c->hw", f[b], w[:, y[b]] - w[:, kmin[b]])
    np.testing.assert_allclose(got[b], ref, rtol=1e-5, atol=1e-5)
  assert np.all(got[2] == 0)


def test_infocam_none_is_region_summed_cam():
  f, w, y, _ = _data(5)
  got = cam.infocam(f, w, y, variant="none", region_size=3)
  ref = cam.region_sum(cam.class_activation_map(f, w, y), 3, "full")
  np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_infocam_never_forms_all_class_maps():
  f, w, y, z = _data(6, k=13)
  for variant in ("mean", "min"):
    jaxpr = jax.make_jaxpr(
        lambda f, w, y, z: cam.infocam(f, w, y, logits=z, variant=variant))(f, w, y, z)
    sizes, prims = [], set()

    def visit(jp):
      for eqn in jp.eqns:
        prims.add(eqn.primitive.name)
        for var in eqn.outvars:
          sizes.append(int(np.prod(var.aval.shape)))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
          visit(sub)

    visit(jaxpr.jaxpr)
    assert "dot_general" in prims and "reduce_window_sum" in prims  # saw inside the jit
    # No intermediate is as large as the K maps [B, H, W, K] (nor even the features):
    # the largest is the region-summed output [B, H+3, W+3].
    assert max(sizes) == B * (H + 3) * (W + 3) < B * H * W * 13


class _GapNet(nn.Module):
  """Conv -> ReLU -> (features) -> GAP -> Dense, returning (logits, features)."""
  num_classes: int = K
  use_perturb: bool = True
  hidden: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    # Full-precision matmuls: GPUs otherwise use TF32, which these exact comparisons would see.
    dense = functools.partial(nn.Dense, precision=jax.lax.Precision.HIGHEST)
    x = nn.relu(dense(C)(x))  # a 1x1 convolution
    if self.use_perturb:
      x = self.perturb("features", x)
    pooled = x.mean(axis=(1, 2))
    if self.hidden:
      pooled = jnp.tanh(dense(9)(pooled))
    logits = dense(self.num_classes)(pooled)
    return logits, x


def _gapnet(seed=0, **kw):
  """The model with NumPy-drawn variables (no jax.random: its compile is slow on CPU)."""
  model = _GapNet(**kw)
  rng = np.random.default_rng(seed)
  images = rng.normal(size=(B, H, W, 3)).astype(np.float32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), images))["params"]
  params = jax.tree_util.tree_map(
      lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)
  return model, {"params": params}, images


def test_decomposition_identity_pmi_difference():
  """Mean of the unsummed mean-variant map = PMI(x;y) - mean_{k!=y} PMI(x;k) - bias term."""
  model, variables, images = _gapnet(0)
  logits, feats = model.apply(variables, images)
  dense = variables["params"]["Dense_1"]
  w, bias = np.asarray(dense["kernel"]), np.asarray(dense["bias"])
  y = np.array([0, 4, 10], np.int32)
  logits = np.asarray(logits, np.float64)
  prior = np.random.default_rng(0).dirichlet(np.ones(K))
  top = logits.max(1)
  log_norm = np.log(np.sum(prior * np.exp(logits - top[:, None]), 1)) + top
  pmi = logits - log_norm[:, None]  # PMI(x; k), nats
  others = np.ones((B, K), bool)
  others[np.arange(B), y] = False
  pmi_diff = pmi[np.arange(B), y] - np.array([pmi[b, others[b]].mean() for b in range(B)])
  bias_diff = bias[y] - np.array([bias[others[b]].mean() for b in range(B)])

  unsummed = np.asarray(cam.infocam(feats, w, y, variant="mean", region_size=1), np.float64)
  np.testing.assert_allclose(unsummed.mean((1, 2)), pmi_diff - bias_diff, rtol=1e-4, atol=1e-5)
  # "full" region summation keeps the total, up to k^2.
  summed = np.asarray(cam.infocam(feats, w, y, variant="mean", region_size=4), np.float64)
  np.testing.assert_allclose(summed.sum((1, 2)) / (16 * H * W), pmi_diff - bias_diff,
                             rtol=1e-4, atol=1e-5)
  # The min variant decomposes f_y - f_kmin (bias excluded) the same way.
  kmin = logits.argmin(1)
  umin = np.asarray(cam.infocam(feats, w, y, logits=logits.astype(np.float32), variant="min",
                                region_size=1), np.float64)
  np.testing.assert_allclose(
      umin.mean((1, 2)),
      logits[np.arange(B), y] - logits[np.arange(B), kmin] - (bias[y] - bias[kmin]),
      rtol=1e-4, atol=1e-5)
  # Plain CAM (channel sum): mean over positions is logit_y - b_y.
  plain = np.asarray(cam.class_activation_map(feats, w, y), np.float64)
  np.testing.assert_allclose(plain.mean((1, 2)), logits[np.arange(B), y] - bias[y],
                             rtol=1e-4, atol=1e-5)


def test_infocam_jit_and_vmap_agree_with_eager():
  f, w, y, z = _data(7)
  eager = cam.infocam(f, w, y, logits=z, variant="min", region_size=2, padding="same")
  jitted = jax.jit(lambda f, z: cam.infocam(f, w, y, logits=z, variant="min", region_size=2,
                                            padding="same"))(f, z)
  np.testing.assert_allclose(jitted, eager, atol=1e-6)
  stacked = np.stack([f, 2 * f])
  vm = jax.vmap(lambda g: cam.infocam(g, w, y, region_size=2))(stacked)
  np.testing.assert_allclose(vm[1], 2 * np.asarray(cam.infocam(f, w, y, region_size=2)),
                             rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Argument validation


def test_cam_argument_errors():
  f, w, y, z = _data(8)
  with pytest.raises(ValueError, match="features"):
    cam.class_activation_map(f[0], w, y)
  with pytest.raises(ValueError, match="features"):
    cam.class_activation_map(f.astype(np.int32), w, y)
  with pytest.raises(ValueError, match="weights"):
    cam.class_activation_map(f, w[:-1], y)
  with pytest.raises(ValueError, match="labels"):
    cam.class_activation_map(f, w, y[:-1])
  with pytest.raises(ValueError, match="labels"):
    cam.class_activation_map(f, w, y.astype(np.float32))
  with pytest.raises(ValueError, match=r"labels.*\[0, 10\]"):
    cam.class_activation_map(f, w, np.array([0, 1, K], np.int32))
  with pytest.raises(ValueError, match="reduce"):
    cam.class_activation_map(f, w, y, reduce="max")
  with pytest.raises(ValueError, match="logits"):
    cam.infocam(f, w, y, variant="min")
  with pytest.raises(ValueError, match="logits"):
    cam.infocam(f, w, y, logits=z[:, :-1], variant="min")
  with pytest.raises(ValueError, match="variant"):
    cam.infocam(f, w, y, variant="max")
  with pytest.raises(ValueError, match="padding"):
    cam.infocam(f, w, y, padding="valid")
  for bad in (0, -1, 2.0, True):
    with pytest.raises(ValueError, match="region_size"):
      cam.infocam(f, w, y, region_size=bad)
  with pytest.raises(ValueError, match="2 classes"):
    cam.infocam(f, w[:, :1], np.zeros(B, np.int32))


# ---------------------------------------------------------------------------
# Grad-CAM


def test_grad_cam_gap_dense_is_relu_cam_over_hw():
  f, w, y, _ = _data(9)
  bias = np.random.default_rng(9).normal(size=K).astype(np.float32)
  got = cam.grad_cam_from_head(cam.gap_dense_head(w, bias), f, y)
  plain = np.asarray(cam.class_activation_map(f, w, y))
  assert (plain < 0).any() and (plain > 0).any()  # the ReLU matters in this case
  np.testing.assert_allclose(got, np.maximum(plain, 0) / (H * W), rtol=1e-5, atol=1e-7)
  raw = cam.grad_cam_from_head(cam.gap_dense_head(w, bias), f, y, relu=False)
  np.testing.assert_allclose(raw, plain / (H * W), rtol=1e-5, atol=1e-7)


def test_grad_cam_nonlinear_head_matches_analytic_gradient():
  rng = np.random.default_rng(11)
  f, _, y, _ = _data(11)
  w1 = rng.normal(size=(C, 9)).astype(np.float32)
  w2 = rng.normal(size=(9, K)).astype(np.float32)

  def head(feats):
    hp = jax.lax.Precision.HIGHEST
    return jnp.dot(jnp.tanh(jnp.dot(feats.mean((1, 2)), w1, precision=hp)), w2, precision=hp)

  got = cam.grad_cam_from_head(head, f, y, relu=False)
  z = f.astype(np.float64).mean((1, 2)) @ w1  # [B, 9]
  # d f_y / d A(i,j,c) = (1/HW) sum_j W1[c,j] (1 - tanh^2 z_j) W2[j,y], constant over (i,j).
  alpha = np.einsum("cj,bj,jb->bc", w1, 1 - np.tanh(z) ** 2, w2[:, y]) / (H * W)
  ref = np.einsum("bhwc,bc->bhw", f, alpha)
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_grad_cam_through_flax_perturb_matches_head_version():
  model, variables, images = _gapnet(3, hidden=True)
  y = np.array([2, 0, 7], np.int32)
  got = cam.grad_cam(model.apply, variables, images, y, train=False)
  _, feats = model.apply(variables, images)
  params = variables["params"]

  def head(x):
    hp = jax.lax.Precision.HIGHEST
    hidden = jnp.tanh(nn.Dense(9, precision=hp).apply({"params": params["Dense_1"]},
                                                      x.mean((1, 2))))
    return nn.Dense(K, precision=hp).apply({"params": params["Dense_2"]}, hidden)

  ref = cam.grad_cam_from_head(head, feats, y)
  assert got.shape == (B, H, W)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
  jitted = jax.jit(lambda v, x: cam.grad_cam(model.apply, v, x, y, train=False))(variables, images)
  np.testing.assert_allclose(jitted, got, rtol=1e-5, atol=1e-7)
  # A perturbation collection passed in with the variables is replaced by zeros.
  stale = {"params": params, "perturbations": {"features": np.ones((B, H, W, C), np.float32)}}
  again = cam.grad_cam(model.apply, stale, images, y, train=False)
  np.testing.assert_allclose(again, got, atol=1e-7)


def test_grad_cam_gap_dense_model_equals_relu_cam():
  model, variables, images = _gapnet(4)
  y = np.array([1, 2, 3], np.int32)
  got = cam.grad_cam(model.apply, variables, images, y)
  _, feats = model.apply(variables, images)
  plain = cam.class_activation_map(feats, variables["params"]["Dense_1"]["kernel"], y)
  np.testing.assert_allclose(got, np.maximum(plain, 0) / (H * W), rtol=1e-5, atol=1e-7)


def test_grad_cam_without_perturb_raises():
  model, variables, images = _gapnet(5, use_perturb=False)
  with pytest.raises(ValueError, match="perturb"):
    cam.grad_cam(model.apply, variables, images, np.zeros(B, np.int32))
  model, variables, images = _gapnet(5)
  with pytest.raises(ValueError, match="labels"):
    cam.grad_cam(model.apply, variables, images, np.array([0, 1, K], np.int32))
  with pytest.raises(ValueError, match="labels"):
    cam.grad_cam(model.apply, variables, images, np.zeros(B + 1, np.int32))
  with pytest.raises(ValueError, match="labels"):
    cam.grad_cam_from_head(lambda x: x.mean((1, 2)), np.ones((B, H, W, C), np.float32),
                           np.zeros(B + 1, np.int32))
  with pytest.raises(ValueError, match="labels"):
    cam.grad_cam_from_head(lambda x: x.mean((1, 2)), np.ones((B, H, W, C), np.float32),
                           np.full(B, C, np.int32))
  with pytest.raises(ValueError, match="logits"):
    cam.grad_cam_from_head(lambda x: x.mean((1, 2, 3)), np.ones((B, H, W, C), np.float32),
                           np.zeros(B, np.int32))


# ---------------------------------------------------------------------------
# Upsampling


_CV2_FLAGS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
@pytest.mark.parametrize("src,dst", [((17, 17), (224, 224)), ((6, 6), (64, 64)),
                                     ((14, 14), (224, 224)), ((5, 7), (33, 20)),
                                     ((1, 1), (4, 4)), ((4, 5), (4, 5))])
def test_upsample_matches_cv2(method, src, dst):
  maps = np.random.default_rng(sum(src + dst)).normal(size=(2,) + src).astype(np.float32)
  got = np.asarray(cam.upsample_maps(maps, dst, method))
  ref = np.stack([cv2.resize(m, dst[::-1], interpolation=_CV2_FLAGS[method]) for m in maps])
  assert got.shape == (2,) + dst and got.dtype == np.float32
  scale = max(float(np.ptp(maps)), 1.0)
  assert np.abs(got - ref).max() <= 1e-5 * scale


@given(n_in=st.integers(1, 40), n_out=st.integers(1, 300),
       method=st.sampled_from(["bilinear", "bicubic"]))
def test_resize_matrix_is_cv2_resize_of_identity(n_in, n_out, method):
  # Resizing the rows of an identity image yields exactly the interpolation matrix.
  if method == "bilinear" and n_out * 2 == n_in:
    return  # cv2 switches to INTER_AREA for exact 2x reduction (documented difference)
  eye = np.eye(n_in, dtype=np.float32)
  ref = cv2.resize(eye, (n_in, n_out), interpolation=_CV2_FLAGS[method])
  got = cam.resize_matrix(n_in, n_out, method, -0.75)
  np.testing.assert_allclose(got, ref.reshape(n_out, n_in), atol=2e-6)
  np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)


def test_upsample_matches_jax_image_resize_where_semantics_coincide():
  maps = np.random.default_rng(0).normal(size=(2, 6, 6)).astype(np.float32)
  lin = cam.upsample_maps(maps, (64, 64), "bilinear")
  np.testing.assert_allclose(lin, jax.image.resize(maps, (2, 64, 64), "linear"), atol=2e-6)
  # jax's cubic is Keys a=-0.5 with border renormalisation instead of replication:
  # equal wherever all four taps fall inside the map (source coordinate in [1, 3]).
  cub = np.asarray(cam.upsample_maps(maps, (64, 64), "bicubic", cubic_a=-0.5))
  ref = np.asarray(jax.image.resize(maps, (2, 64, 64), "cubic"))
  inner = slice(16, 37)
  np.testing.assert_allclose(cub[:, inner, inner], ref[:, inner, inner], atol=2e-6)
  assert np.abs(cub - ref).max() > 1e-3  # the borders really differ


def test_upsample_properties_and_errors():
  const = np.full((1, 3, 4), 2.5, np.float32)
  for method in ("bilinear", "bicubic"):
    np.testing.assert_allclose(cam.upsample_maps(const, (9, 11), method), 2.5, rtol=1e-6)
  step = np.zeros((1, 4, 4), np.float32)
  step[:, :, 2:] = 1.0
  up = np.asarray(cam.upsample_maps(step, (4, 16), "bicubic"))
  assert up.max() > 1.0 and up.min() < 0.0  # bicubic overshoots, like cv2
  # Leading dimensions are arbitrary; a single int is a square size; ints are accepted.
  assert cam.upsample_maps(np.zeros((2, 3, 4, 5), np.int32), 8).shape == (2, 3, 8, 8)
  # jit-able with static size.
  fn = jax.jit(lambda m: cam.upsample_maps(m, (8, 8), "bicubic"))
  np.testing.assert_allclose(fn(step), cam.upsample_maps(step, (8, 8), "bicubic"))
  with pytest.raises(ValueError, match="method"):
    cam.upsample_maps(step, (8, 8), "nearest")
  with pytest.raises(ValueError, match="size"):
    cam.upsample_maps(step, (0, 8))
  with pytest.raises(ValueError, match="size"):
    cam.upsample_maps(step, (8, 8.5))
  with pytest.raises(ValueError, match="maps"):
    cam.upsample_maps(np.zeros(5, np.float32), (8, 8))
  with pytest.raises(ValueError, match="maps"):
    cam.upsample_maps(np.zeros((1, 3, 3), bool), (8, 8))


# ---------------------------------------------------------------------------
# Normalisation


def test_normalize_reference_and_special_maps():
  rng = np.random.default_rng(0)
  maps = rng.normal(size=(6, 5, 4)).astype(np.float32)
  maps[1] = 3.0  # constant
  maps[2, 1, 1] = np.nan
  maps[3, 0, 0] = np.inf
  maps[4, 2, 3] = -np.inf
  maps[5] = [[-3e38, 3e38, 0, 0]] * 5  # range beyond float32 max
  got = np.asarray(cam.normalize_maps(maps))
  ref0 = (maps[0] - maps[0].min()) / np.ptp(maps[0])
  np.testing.assert_allclose(got[0], ref0, atol=1e-6)
  assert got[0].min() == 0.0 and got[0].max() == 1.0
  for i in (1, 2, 3, 4):
    assert np.all(got[i] == 0.0)
  np.testing.assert_allclose(got[5, 0], [0.0, 1.0, 0.5, 0.5], atol=1e-6)


# Values below 1e-30 in magnitude (but not 0) are left out: XLA:CPU flushes subnormals to
# zero, so a map whose halved range is below float32's smallest normal (~1.2e-38) becomes
# all zeros like a constant one (found by a randomized run, 2026-11-29; see normalize_maps).
_not_tiny = lambda v: 0.0 if 0.0 < abs(v) < 1e-30 else v


@given(hnp.arrays(np.float32, (2, 4, 3),
                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True).map(_not_tiny)))
def test_normalize_is_finite_in_unit_interval_and_affine_invariant(maps):
  got = np.asarray(cam.normalize_maps(maps))
  assert got.shape == maps.shape and got.dtype == np.float32
  assert np.all(np.isfinite(got)) and got.min() >= 0.0 and got.max() <= 1.0
  for b in range(2):
    m = maps[b].astype(np.float64)
    if not np.all(np.isfinite(m)) or m.min() == m.max():
      assert np.all(got[b] == 0.0)
    else:
      ref = (m - m.min()) / (m.max() - m.min())
      # float32 halving loses the smallest subnormal digits only.
      np.testing.assert_allclose(got[b], ref, atol=1e-6)


def test_normalize_errors():
  with pytest.raises(ValueError, match="maps"):
    cam.normalize_maps(np.zeros(4, np.float32))
  with pytest.raises(ValueError, match="maps"):
    cam.normalize_maps(np.zeros((1, 0, 3), np.float32))


@given(seed=st.integers(0, 2**31 - 1), pc=st.booleans())
def test_cross_entropy_gradient_never_changes_the_sum_of_head_columns(seed, pc):
  # Why infoCAM's "mean" variant equals CAM up to the initial sum of the head's columns
  # (see the infocam docstring): d CE / d W has zero row sums over classes, for softmax and
  # PC-softmax cross-entropy alike, whatever the features, labels and prior.
  from infocam_jax import estimators  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  feats = jnp.asarray(np.abs(rng.normal(size=(B, H, W, C))), jnp.float32)
  labels = jnp.asarray(rng.integers(0, K, size=B))
  weights = jnp.asarray(rng.normal(size=(C, K)) * 2, jnp.float32)
  bias = jnp.asarray(rng.normal(size=(K,)), jnp.float32)
  prior = rng.dirichlet(np.ones(K)).astype(np.float32)
  prior = jnp.asarray(prior / prior.sum())

  def loss(w):
    logits = feats.mean((1, 2)) @ w + bias
    if pc:
      return estimators.pc_softmax_cross_entropy_with_integer_labels(logits, labels, prior).mean()
    return -jax.nn.log_softmax(logits)[jnp.arange(B), labels].mean()

  g = jax.grad(loss)(weights)
  assert float(jnp.abs(g).max()) > 1e-4  # the gradient itself is not zero
  np.testing.assert_allclose(np.asarray(g.sum(1)), 0.0, atol=1e-6)
