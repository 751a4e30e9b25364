"""Equivalence of the Flax backbones with torchvision-equivalent PyTorch networks.

torchvision itself does not import beside the pinned torch here, so the reference
networks below are written in plain ``torch.nn`` following torchvision's ResNet / VGG
definitions (same module names, hence the same state-dict keys). They get random weights,
random non-trivial BatchNorm affine parameters *and* random running statistics; the
weights go through a saved ``.pth`` and a ``.safetensors`` file into
``load_torchvision_weights`` and both networks are compared in eval mode.

Error measure (stated once, used everywhere): for a Flax output ``a`` and the torch
output ``b`` of the same shape, ``rel_err(a, b) = max|a - b| / max|b|`` (max over all
elements). Bound: 1e-5 in float32 (measured 2026-11-29 on CPU: at most 1.7e-6, ResNet-50
features at 224; ~1e-6 typically).

Runtime: the Flax forward passes of the big nets run op-by-op (no ``jax.jit``), which on
CPU is much cheaper than compiling a whole ResNet-50; weights are converted once per arch
(module-scoped fixtures) and shared by the two input sizes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed: equivalence tests need it "
                            "(pip install 'infocam-jax[torch]')")
from torch import nn  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from infocam_jax import models  # noqa: E402

TOL = 1e-5  # ~10x the measured 5e-7..1.7e-6 (see the module docstring)


def rel_err(a, b) -> float:
  """max|a - b| / max|b| over all elements."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape, (a.shape, b.shape)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# --------------------------------------------------------------------------------------
# PyTorch reference networks (torchvision semantics, written here).
# --------------------------------------------------------------------------------------


class TorchBasicBlock(nn.Module):
  expansion = 1

  def __init__(self, inplanes, planes, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.relu = nn.ReLU()
    self.downsample = downsample

  def forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu(out + identity)


class TorchBottleneck(nn.Module):
  expansion = 4

  def __init__(self, inplanes, planes, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # v1.5
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.relu = nn.ReLU()
    self.downsample = downsample

  def forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu(out + identity)


class TorchResNet(nn.Module):
  """torchvision.models.ResNet with a layer4 stride option; forward -> (logits, features)."""

  def __init__(self, block, layers, num_classes=1000, widths=(64, 128, 256, 512),
               stem_width=64, stem="imagenet", layer4_stride=2):
    super().__init__()
    self.inplanes = stem_width
    if stem == "imagenet":
      self.conv1 = nn.Conv2d(3, stem_width, 7, 2, 3, bias=False)
      self.maxpool = nn.MaxPool2d(3, 2, 1)
    else:
      self.conv1 = nn.Conv2d(3, stem_width, 3, 1, 1, bias=False)
      self.maxpool = nn.Identity()
    self.bn1 = nn.BatchNorm2d(stem_width)
    self.relu = nn.ReLU()
    strides = (1, 2, 2, layer4_stride)
    for i in range(4):
      setattr(self, f"layer{i + 1}", self._make_layer(block, widths[i], layers[i], strides[i]))
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

  def _make_layer(self, block, planes, blocks, stride):
    downsample = None
    if stride != 1 or self.inplanes != planes * block.expansion:
      downsample = nn.Sequential(
          nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
          nn.BatchNorm2d(planes * block.expansion))
    layers = [block(self.inplanes, planes, stride, downsample)]
    self.inplanes = planes * block.expansion
    layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)

  def forward(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(torch.flatten(self.avgpool(x), 1)), x


VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"]


def torch_vgg16_features(cfg=VGG16_CFG):
  layers, c = [], 3
  for v in cfg:
    if v == "M":
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
      c = v
  return nn.Sequential(*layers)


class TorchVGG16(nn.Module):
  """torchvision.models.vgg16 (for parameter counts and checkpoint layout)."""

  def __init__(self, num_classes=1000):
    super().__init__()
    self.features = torch_vgg16_features()
    self.avgpool = nn.AdaptiveAvgPool2d(7)
    self.classifier = nn.Sequential(
        nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Dropout(), nn.Linear(4096, num_classes))


class TorchVGG16GAP(nn.Module):
  """The official vgg16_GAP: VGG16 convs without the last pool, conv6 1024 + ReLU, GAP, fc."""

  def __init__(self, num_classes=1000, cfg=VGG16_CFG, conv6_width=1024):
    super().__init__()
    self.features = torch_vgg16_features(cfg[:-1])
    last = [v for v in cfg if v != "M"][-1]
    self.conv6 = nn.Conv2d(last, conv6_width, 3, padding=1)
    self.relu = nn.ReLU()
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(conv6_width, num_classes)
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

  def forward(self, x):
    x = self.relu(self.conv6(self.features(x)))
    return self.fc(torch.flatten(self.avgpool(x), 1)), x


def torch_reference(arch, num_classes=1000, layer4_stride=2):
  if arch == "resnet18":
    return TorchResNet(TorchBasicBlock, [2, 2, 2, 2], num_classes, layer4_stride=layer4_stride)
  if arch == "resnet34":
    return TorchResNet(TorchBasicBlock, [3, 4, 6, 3], num_classes, layer4_stride=layer4_stride)
  if arch == "resnet50":
    return TorchResNet(TorchBottleneck, [3, 4, 6, 3], num_classes, layer4_stride=layer4_stride)
  if arch == "resnet_tiny":
    return TorchResNet(TorchBasicBlock, [1, 1, 1, 1], num_classes, widths=(8, 16, 32, 64),
                       stem_width=8, stem="small", layer4_stride=layer4_stride)
  if arch == "vgg16_gap":
    return TorchVGG16GAP(num_classes)
  if arch == "vgg_tiny":
    return TorchVGG16GAP(num_classes, cfg=[8, 8, "M", 16, 16, "M", 32, 32, 32, "M",
                                           64, 64, 64, "M", 64, 64, 64, "M"], conv6_width=128)
  raise ValueError(arch)


def randomize_(net, seed):
  """Random conv/linear biases, BN affine params and BN running statistics (in place).

  Running variances are log-uniform in [1e-4, 1], as in pretrained ImageNet networks
  (many channels below 1e-2), so that BatchNorm's eps matters: at var 1e-4 eps 1e-6
  instead of 1e-5 changes that channel by 4.5%. The BN scale is ``sqrt(var)`` times a
  factor in [0.5, 1.5], which keeps activations O(1) through the deep nets.
  """
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):
        var = 10.0 ** (-4.0 * torch.rand(m.running_var.shape, generator=g))
        m.running_var.copy_(var)
        m.weight.copy_(var.sqrt() * (0.5 + torch.rand(m.weight.shape, generator=g)))
        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
        m.num_batches_tracked.fill_(7)
      elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
        m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
  return net.eval()


def torch_forward(net, images_nhwc):
  with torch.no_grad():
    logits, feats = net(torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2))))
  return logits.numpy(), feats.numpy().transpose(0, 2, 3, 1)


def count_torch(net):
  return sum(p.numel() for p in net.parameters())


def count_flax(arch, num_classes=1000, **options):
  model = models.create_model(arch, num_classes, **options)
  shapes = jax.eval_shape(lambda k, x: model.init(k, x), jax.random.key(0),
                          jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
  return sum(math.prod(s.shape) for s in jax.tree_util.tree_leaves(shapes["params"]))


def to_torch(arrays):
  return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


# --------------------------------------------------------------------------------------
# Parameter counts.
# --------------------------------------------------------------------------------------

# torchvision's documented counts (1000-class heads).
TORCHVISION_COUNTS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_resnet_parameter_counts_equal_torchvision(arch):
  want = TORCHVISION_COUNTS[arch]
  assert count_torch(torch_reference(arch)) == want
  assert count_flax(arch) == want
  assert count_flax(arch, layer4_stride=1) == want


def test_vgg16_gap_parameter_count():
  convs = count_torch(torch_vgg16_features())
  assert convs == 14_714_688  # torchvision vgg16 `features`
  conv6, fc = 512 * 1024 * 9 + 1024, 1024 * 1000 + 1000
  assert count_torch(torch_reference("vgg16_gap")) == convs + conv6 + fc == 20_459_304
  assert count_flax("vgg16_gap") == 20_459_304


# --------------------------------------------------------------------------------------
# Eval-mode equivalence of the converted big nets.
# --------------------------------------------------------------------------------------

CASES = [("resnet18", 1), ("resnet18", 2), ("resnet34", 1), ("resnet50", 1), ("resnet50", 2),
         ("vgg16_gap", None)]
SIZES = [(224, 1), (64, 2)]


def _feature_hw(arch, stride, size):
  if arch.startswith("vgg"):
    return size // 16
  return size // (16 if stride == 1 else 32)


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-s{s}" if s else a for a, s in CASES])
def converted(request, tmp_path_factory):
  """Torch reference with random weights + BN statistics, converted via .pth and via
  .safetensors (the two must agree exactly); one jitted Flax apply shared by the sizes."""
  from safetensors.torch import save_file

  arch, stride = request.param
  torch.manual_seed(0)
  net = randomize_(torch_reference(arch, 1000, stride or 2), seed=1)
  sd = net.state_dict()
  d = tmp_path_factory.mktemp(arch)
  torch.save(sd, d / "w.pth")
  save_file(sd, str(d / "w.safetensors"))
  opts = {} if stride is None else {"layer4_stride": stride}
  variables = models.load_torchvision_weights(d / "w.pth", arch, **opts)
  from_st = models.load_torchvision_weights(d / "w.safetensors", arch, **opts)
  jax.tree_util.tree_map(np.testing.assert_array_equal, variables, from_st)
  model = models.create_model(arch, 1000, **opts)
  return arch, stride, net, jax.jit(model.apply), variables


@pytest.mark.parametrize("size,batch", SIZES, ids=[f"{s}px-b{b}" for s, b in SIZES])
def test_eval_outputs_match_torch(converted, size, batch):
  arch, stride, net, apply, variables = converted
  x = np.random.default_rng(size).normal(size=(batch, size, size, 3)).astype(np.float32)
  ref_logits, ref_feats = torch_forward(net, x)
  logits, feats = apply(variables, jnp.asarray(x))
  hw = _feature_hw(arch, stride, size)
  assert feats.shape == (batch, hw, hw, ref_feats.shape[-1]) == ref_feats.shape
  e_logits, e_feats = rel_err(logits, ref_logits), rel_err(feats, ref_feats)
  print(f"\n[equivalence] {arch} layer4_stride={stride} {size}x{size} batch {batch}: "
        f"logits rel_err {e_logits:.2e}, features rel_err {e_feats:.2e}")
  assert e_logits <= TOL and e_feats <= TOL


# --------------------------------------------------------------------------------------
# Training mode (BatchNorm batch statistics and running-statistic updates), export, .pth.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
def test_train_mode_and_running_statistics_match_torch(stride):
  net = randomize_(torch_reference("resnet_tiny", 7, stride), seed=2).train()
  variables = models.convert_torchvision_state_dict(net.state_dict(), "resnet_tiny",
                                                    layer4_stride=stride)
  model = models.create_model("resnet_tiny", 7, layer4_stride=stride)
  x = np.random.default_rng(3).normal(size=(4, 32, 32, 3)).astype(np.float32)
  ref_logits, ref_feats = torch_forward(net, x)  # updates torch's running statistics
  (logits, feats), new = jax.jit(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
  assert rel_err(logits, ref_logits) <= TOL and rel_err(feats, ref_feats) <= TOL
  updated = models.convert_torchvision_state_dict(net.state_dict(), "resnet_tiny",
                                                  layer4_stride=stride)["batch_stats"]
  for path, a in jax.tree_util.tree_leaves_with_path(new["batch_stats"]):
    b = dict(jax.tree_util.tree_leaves_with_path(updated))[path]
    assert rel_err(a, b) <= 1e-5, jax.tree_util.keystr(path)


@pytest.mark.parametrize("arch", ["resnet_tiny", "vgg_tiny"])
def test_exported_weights_load_strictly_into_torch(arch, tmp_path):
  from safetensors.torch import load_file

  source = randomize_(torch_reference(arch, 4), seed=4)
  variables = models.convert_torchvision_state_dict(source.state_dict(), arch)
  # Move away from the source so that a no-op export could not pass.
  variables = jax.tree_util.tree_map(lambda a: a * 1.1 + 0.01, variables)
  models.save_torchvision_weights(variables, tmp_path / "w.safetensors", arch)
  target = torch_reference(arch, 4)
  target.load_state_dict(load_file(str(tmp_path / "w.safetensors")), strict=True)
  target.eval()
  x = np.random.default_rng(5).normal(size=(2, 32, 32, 3)).astype(np.float32)
  ref_logits, ref_feats = torch_forward(target, x)
  logits, feats = jax.jit(models.create_model(arch, 4).apply)(variables, x)
  assert rel_err(logits, ref_logits) <= TOL and rel_err(feats, ref_feats) <= TOL


def test_pth_wrapped_checkpoint_and_head_replacement(tmp_path):
  net = randomize_(torch_reference("resnet_tiny", 10), seed=6)
  sd = net.state_dict()
  torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
             tmp_path / "ckpt.pth")
  v = models.load_torchvision_weights(tmp_path / "ckpt.pth", "resnet_tiny")
  np.testing.assert_array_equal(v["params"]["fc"]["kernel"], sd["fc.weight"].numpy().T)
  v3 = models.load_torchvision_weights(tmp_path / "ckpt.pth", "resnet_tiny", 3,
                                       key=jax.random.key(0))
  assert v3["params"]["fc"]["kernel"].shape == (64, 3)
  np.testing.assert_array_equal(v3["params"]["layer4"]["0"]["conv2"]["kernel"],
                                v["params"]["layer4"]["0"]["conv2"]["kernel"])


def test_pth_is_read_with_weights_only(tmp_path):
  class Evil:
    def __reduce__(self):
      return (print, ("pickle code ran",))

  torch.save({"conv1.weight": torch.zeros(1), "x": Evil()}, tmp_path / "evil.pth")
  with pytest.raises(Exception, match="[Ww]eights.only|Unsupported"):
    models.load_torchvision_weights(tmp_path / "evil.pth", "resnet_tiny")
