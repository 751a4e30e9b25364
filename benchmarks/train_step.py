r"""Training-step throughput: JAX/Flax (this project) vs a PyTorch reference.

Measures images/s of one full training step (forward, backward, the paper's
SGD update: momentum 0.9 Nesterov, weight decay 1e-4 on all parameters, 10x LR
on layer4 + fc) on synthetic device-resident input, for fp32 and bf16 compute,
on all local devices (JAX: ``jit`` over a data mesh, state donated; PyTorch:
the first device). The PyTorch model is a torchvision-equivalent ResNet written
below (torchvision is not needed); bf16 there is ``torch.autocast`` (convs and
matmuls in bf16, BatchNorm in fp32, fp32 master weights), matching JAX's
``dtype=bfloat16`` with float32 parameters. On GPU the PyTorch reference uses
channels_last and cuDNN autotuning (``--torch-compile`` adds torch.compile).

Each (model, framework, precision) runs in its own subprocess by default
(``--isolate``), so that one failure or OOM does not stop the others and JAX's
memory preallocation does not starve PyTorch.

  python benchmarks/train_step.py                                  # defaults for the device
  python benchmarks/train_step.py --models resnet50@224:256 resnet18@64:512 --json
  python benchmarks/train_step.py --models resnet18@64:16 --steps 5 --frameworks jax

The table also gives ``cpu ms``: process CPU time per step over all threads
(``time.process_time``), steadier than wall time on a shared machine (wall ≫ cpu
means the process waited for cores). ``resnet_tiny`` (the main job's model) has a
PyTorch reference too.

Model spec: ``ARCH@IMAGE_SIZE:GLOBAL_BATCH``. This script imports neither
ml_collections nor tensorflow-datasets nor grain.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

NUM_CLASSES = 1000
LR, MOMENTUM, WEIGHT_DECAY, HEAD_LR = 0.01, 0.9, 1e-4, 10.0  # the paper's CUB ResNet-50 recipe


# -----------------------------------------------------------------------------
# JAX
# -----------------------------------------------------------------------------


def bench_jax(arch: str, size: int, batch: int, precision: str, steps: int, warmup: int,
              layer4_stride: int) -> dict[str, Any]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from infocam_jax import models  # pylint: disable=g-import-not-at-top
  from infocam_jax.train import optim, parallel, state as st, steps as steps_lib  # pylint: disable=g-import-not-at-top

  dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
  model = models.create_model(arch, NUM_CLASSES, dtype=dtype, layer4_stride=layer4_stride)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                             jnp.zeros((1, size, size, 3)), train=False))
  tx = optim.make_optimizer("sgd", learning_rate=LR, momentum=MOMENTUM, nesterov=True,
                            weight_decay=WEIGHT_DECAY,
                            head_mask=models.head_param_mask(arch, shapes["params"]),
                            head_lr_multiplier=HEAD_LR)
  par = parallel.DataParallel()
  if batch % par.num_devices:
    raise ValueError(f"batch {batch} not divisible by {par.num_devices} devices")
  t0 = time.perf_counter()
  with st.init_rng_context():
    state = par.init(lambda: st.init_train_state(model, tx, jax.random.PRNGKey(0),
                                                 (size, size, 3)))
  jax.block_until_ready(state)
  init_s = time.perf_counter() - t0
  par.compile(steps_lib.make_train_step(model, tx, num_classes=NUM_CLASSES), None)
  rng = np.random.default_rng(0)
  batch_arrays = par.shard_batch({
      "image": rng.standard_normal((batch, size, size, 3), dtype=np.float32),
      "label": rng.integers(0, NUM_CLASSES, size=batch).astype(np.int32)})
  t0 = time.perf_counter()
  compiled = par.train_step.lower(state, batch_arrays).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    state, metrics = compiled(state, batch_arrays)
  jax.block_until_ready((state, metrics))
  times, cpu_times = [], []
  for _ in range(3):  # three timed windows; report the median
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
      state, metrics = compiled(state, batch_arrays)
    jax.block_until_ready((state, metrics))
    times.append((time.perf_counter() - t0) / steps)
    cpu_times.append((time.process_time() - c0) / steps)
  step_s = sorted(times)[1]
  loss = float(metrics["loss"])
  mem = None
  try:
    stats = jax.local_devices()[0].memory_stats() or {}
    mem = stats.get("peak_bytes_in_use")
  except Exception:  # pylint: disable=broad-except
    pass
  dev = jax.devices()[0]
  return {"framework": "jax", "version": jax.__version__, "device": f"{dev.platform}:{dev.device_kind}",
          "num_devices": par.num_devices, "step_ms": 1e3 * step_s,
          "images_per_s": batch / step_s, "compile_s": compile_s, "init_s": init_s,
          "peak_mem_gib": None if mem is None else mem / 2**30, "loss": loss,
          "window_ms": [1e3 * t for t in times], "cpu_ms": 1e3 * sorted(cpu_times)[1]}


# -----------------------------------------------------------------------------
# PyTorch reference (torchvision-equivalent ResNet, written here)
# -----------------------------------------------------------------------------


def _torch_resnet(arch: str, layer4_stride: int):
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(width)
      self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(width)
      self.relu = nn.ReLU(inplace=True)
      self.downsample = None
      if stride != 1 or cin != width:
        self.downsample = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False),
                                        nn.BatchNorm2d(width))

    def forward(self, x):
      identity = x if self.downsample is None else self.downsample(x)
      y = self.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      return self.relu(y + identity)

  class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
      super().__init__()
      out = width * 4
      self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(width)
      self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)  # v1.5: stride on 3x3
      self.bn2 = nn.BatchNorm2d(width)
      self.conv3 = nn.Conv2d(width, out, 1, bias=False)
      self.bn3 = nn.BatchNorm2d(out)
      self.relu = nn.ReLU(inplace=True)
      self.downsample = None
      if stride != 1 or cin != out:
        self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False),
                                        nn.BatchNorm2d(out))

    def forward(self, x):
      identity = x if self.downsample is None else self.downsample(x)
      y = self.relu(self.bn1(self.conv1(x)))
      y = self.relu(self.bn2(self.conv2(y)))
      y = self.bn3(self.conv3(y))
      return self.relu(y + identity)

  # arch -> (block, blocks per stage, stage widths, stem width, stem); as models.factory.
  wide = (64, 128, 256, 512)
  specs = {"resnet18": (BasicBlock, (2, 2, 2, 2), wide, 64, "imagenet"),
           "resnet34": (BasicBlock, (3, 4, 6, 3), wide, 64, "imagenet"),
           "resnet50": (Bottleneck, (3, 4, 6, 3), wide, 64, "imagenet"),
           "resnet_tiny": (BasicBlock, (1, 1, 1, 1), (8, 16, 32, 64), 8, "small")}
  if arch not in specs:
    raise ValueError(f"no PyTorch reference for {arch!r}")
  block, sizes, widths, stem_width, stem = specs[arch]

  class ResNet(nn.Module):

    def __init__(self):
      super().__init__()
      if stem == "imagenet":  # 7x7/2 conv + BN + ReLU + 3x3/2 max-pool
        self.conv1 = nn.Conv2d(3, stem_width, 7, 2, 3, bias=False)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
      else:  # "small": 3x3/1 conv + BN + ReLU, no pool
        self.conv1 = nn.Conv2d(3, stem_width, 3, 1, 1, bias=False)
        self.maxpool = nn.Identity()
      self.bn1 = nn.BatchNorm2d(stem_width)
      self.relu = nn.ReLU(inplace=True)
      cin, stages = stem_width, []
      for i, (n, width) in enumerate(zip(sizes, widths)):
        stride = 1 if i == 0 else (layer4_stride if i == 3 else 2)
        blocks = []
        for j in range(n):
          blocks.append(block(cin, width, stride if j == 0 else 1))
          cin = width * block.expansion
        stages.append(nn.Sequential(*blocks))
      self.layer1, self.layer2, self.layer3, self.layer4 = stages
      self.avgpool = nn.AdaptiveAvgPool2d(1)
      self.fc = nn.Linear(cin, NUM_CLASSES)
      for m in self.modules():
        if isinstance(m, nn.Conv2d):
          nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
      x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
      x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
      return self.fc(torch.flatten(self.avgpool(x), 1))

  return ResNet()


def bench_torch(arch: str, size: int, batch: int, precision: str, steps: int, warmup: int,
                layer4_stride: int, use_compile: bool) -> dict[str, Any]:
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  cuda = torch.cuda.is_available()
  device = torch.device("cuda" if cuda else "cpu")
  torch.manual_seed(0)
  if cuda:
    torch.backends.cudnn.benchmark = True
    # "fp32": float32 storage; both frameworks at their default GPU math, i.e. TF32
    # tensor cores allowed for convolutions and matmuls (JAX's default precision).
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
  model = _torch_resnet(arch, layer4_stride).to(device)
  fmt = torch.channels_last if cuda else torch.contiguous_format
  model = model.to(memory_format=fmt)
  head = [p for n, p in model.named_parameters() if n.startswith(("layer4.", "fc."))]
  base = [p for n, p in model.named_parameters() if not n.startswith(("layer4.", "fc."))]
  opt = torch.optim.SGD([{"params": base, "lr": LR}, {"params": head, "lr": HEAD_LR * LR}],
                        lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
  x = torch.randn(batch, 3, size, size, device=device).to(memory_format=fmt)
  y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
  fwd = torch.compile(model) if use_compile else model
  bf16 = precision == "bf16"

  def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
      loss = F.cross_entropy(fwd(x), y)
    loss.backward()
    opt.step()
    return loss

  sync = torch.cuda.synchronize if cuda else (lambda: None)
  t0 = time.perf_counter()
  for _ in range(max(1, warmup)):
    loss = step()
  sync()
  warmup_s = time.perf_counter() - t0
  if cuda:
    torch.cuda.reset_peak_memory_stats()
  times, cpu_times = [], []
  for _ in range(3):
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
      loss = step()
    sync()
    times.append((time.perf_counter() - t0) / steps)
    cpu_times.append((time.process_time() - c0) / steps)
  step_s = sorted(times)[1]
  mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
  name = torch.cuda.get_device_name() if cuda else "cpu"
  return {"framework": "torch" + ("+compile" if use_compile else ""), "version": torch.__version__,
          "device": name, "num_devices": 1, "step_ms": 1e3 * step_s,
          "images_per_s": batch / step_s, "compile_s": warmup_s, "init_s": None,
          "peak_mem_gib": mem, "loss": float(loss), "window_ms": [1e3 * t for t in times],
          "cpu_ms": 1e3 * sorted(cpu_times)[1], "threads": torch.get_num_threads()}


# -----------------------------------------------------------------------------
# Driver
# -----------------------------------------------------------------------------


def parse_spec(spec: str) -> tuple[str, int, int]:
  try:
    arch, rest = spec.split("@")
    size, batch = rest.split(":")
    return arch, int(size), int(batch)
  except ValueError:
    raise SystemExit(f"bad model spec {spec!r}; expected ARCH@SIZE:BATCH, e.g. resnet50@224:256")


def run_section(section: dict[str, Any]) -> dict[str, Any]:
  arch, size, batch = parse_spec(section["model"])
  common = dict(arch=arch, size=size, batch=batch, precision=section["precision"],
                steps=section["steps"], warmup=section["warmup"],
                layer4_stride=section["layer4_stride"])
  if section["framework"] == "jax":
    out = bench_jax(**common)
  else:
    out = bench_torch(**common, use_compile=section["framework"] == "torch+compile")
  return {**section, **out}


def _run_isolated(section: dict[str, Any], timeout: float) -> dict[str, Any]:
  cmd = [sys.executable, os.path.abspath(__file__), "--section", json.dumps(section)]
  t0 = time.time()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
  except subprocess.TimeoutExpired:
    return {**section, "error": f"timed out after {timeout:.0f} s"}
  for line in proc.stdout.splitlines():
    if line.startswith("SECTION_RESULT="):
      return json.loads(line[len("SECTION_RESULT="):])
  tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
  return {**section, "error": f"rc={proc.returncode} after {time.time() - t0:.0f} s: "
          + " | ".join(tail)}


def _fmt(v, spec):
  return "-" if v is None else format(v, spec)


def print_table(results: list[dict[str, Any]]) -> None:
  print(f"\n{'model':<18} {'framework':<14} {'prec':<5} {'images/s':>10} {'step ms':>9} "
        f"{'cpu ms':>9} {'compile s':>9} {'peak GiB':>9}  device")
  for r in results:
    if "error" in r:
      print(f"{r['model']:<18} {r['framework']:<14} {r['precision']:<5} ERROR: {r['error']}")
      continue
    print(f"{r['model']:<18} {r['framework']:<14} {r['precision']:<5} "
          f"{r['images_per_s']:>10.1f} {r['step_ms']:>9.1f} {_fmt(r.get('cpu_ms'), '9.1f')} "
          f"{_fmt(r['compile_s'], '9.1f')} "
          f"{_fmt(r['peak_mem_gib'], '9.2f')}  {r['device']} x{r['num_devices']}")
  print()
  for r in results:
    if r["framework"] != "jax" or "error" in r:
      continue
    for t in results:
      if (t["framework"].startswith("torch") and t["model"] == r["model"]
          and t["precision"] == r["precision"] and "error" not in t):
        print(f"ratio jax/{t['framework']} {r['model']} {r['precision']}: "
              f"{r['images_per_s'] / t['images_per_s']:.2f}x")


def default_models() -> list[str]:
  try:
    import jax  # pylint: disable=g-import-not-at-top
    accel = jax.default_backend() != "cpu"
  except Exception:  # pylint: disable=broad-except
    accel = False
  return ["resnet50@224:256", "resnet18@64:512"] if accel else ["resnet18@64:16", "resnet50@224:4"]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--models", nargs="+", default=None, help="ARCH@SIZE:BATCH ...")
  p.add_argument("--precisions", default="fp32,bf16")
  p.add_argument("--frameworks", default="jax,torch",
                 help="comma list of jax, torch, torch+compile")
  p.add_argument("--steps", type=int, default=None, help="timed steps per window (3 windows)")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--layer4-stride", type=int, default=2,
                 help="2: torchvision ResNet (default); 1: the infoCAM variant")
  p.add_argument("--no-isolate", action="store_true", help="run all sections in this process")
  p.add_argument("--timeout", type=float, default=600, help="per-section timeout (s)")
  p.add_argument("--json", action="store_true", help="print the results as JSON at the end")
  p.add_argument("--deadline-s", type=float, default=None,
                 help="skip the remaining sections once this many seconds have passed")
  p.add_argument("--section", help=argparse.SUPPRESS)
  args = p.parse_args(argv)

  if args.section:
    try:
      result = run_section(json.loads(args.section))
    except Exception as e:  # pylint: disable=broad-except
      import traceback  # pylint: disable=g-import-not-at-top
      traceback.print_exc()
      result = {**json.loads(args.section), "error": f"{type(e).__name__}: {e}"[:500]}
    print("SECTION_RESULT=" + json.dumps(result), flush=True)
    return 0

  models_ = args.models or default_models()
  frameworks = [f for f in args.frameworks.split(",") if f]
  if any(f.startswith("torch") for f in frameworks):
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      print("torch not installed: JAX only.")
      frameworks = [f for f in frameworks if not f.startswith("torch")]
  results = []
  start = time.time()
  for model in models_:
    _, _, batch = parse_spec(model)
    steps = args.steps or (20 if batch >= 64 else 3)
    for precision in args.precisions.split(","):
      for framework in frameworks:
        section = {"model": model, "precision": precision, "framework": framework,
                   "steps": steps, "warmup": args.warmup, "layer4_stride": args.layer4_stride}
        remaining = None if args.deadline_s is None else args.deadline_s - (time.time() - start)
        if remaining is not None and remaining < 20:
          print(f"-- {model} {framework} {precision}: skipped (deadline)", flush=True)
          results.append({**section, "error": "skipped: --deadline-s reached"})
          continue
        print(f"-- {model} {framework} {precision} ...", flush=True)
        if args.no_isolate:
          try:
            r = run_section(section)
          except Exception as e:  # pylint: disable=broad-except
            r = {**section, "error": f"{type(e).__name__}: {e}"[:500]}
        else:
          r = _run_isolated(section, args.timeout if remaining is None
                            else min(args.timeout, remaining))
        if "error" in r:
          print(f"   error: {r['error']}", flush=True)
        else:
          print(f"   {r['images_per_s']:.1f} images/s ({r['step_ms']:.1f} ms/step, "
                f"compile/warm-up {r['compile_s']:.1f} s)", flush=True)
        results.append(r)
  print_table(results)
  if args.json:
    print(json.dumps({"results": results}, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
