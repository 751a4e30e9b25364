"""Data parallelism on 8 host devices (in a subprocess): jit+mesh and pmap vs one device.

Tolerance: the 8-device steps sum per-device partial results (BatchNorm moments,
gradients, metrics) in a different order than the 1-device step, so float32
results differ by rounding only: observed max |diff| ~1e-6 on parameters and
BatchNorm statistics after 5 SGD steps (values O(1)); we allow 1e-4 absolute
(100x margin) and require that nothing else differs (step counters, eval counts,
accuracies are exactly equal).
"""

from __future__ import annotations

import pytest

try:
  import multidevice  # tests/ on sys.path (pytest's default rootdir-less import)
except ImportError:  # pragma: no cover
  from tests import multidevice

pytestmark = pytest.mark.slow

_CODE = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from infocam_jax import models
from infocam_jax.data import arrays as synthetic
from infocam_jax.train import optim, parallel, state as st, steps
from infocam_jax.train.loop import evaluate_classification

assert jax.device_count() == 8, jax.devices()
K, B, STEPS, HW = 4, 16, 5, 16
src = synthetic.synthetic_source(64, num_classes=K, image_size=HW, seed=0,
                                 class_weights=np.array([3.0, 1.0, 1.0, 1.0]))
pipe = synthetic.ArrayPipeline(src, batch_size=B, train=True, seed=0)
ev = synthetic.ArrayPipeline(src, batch_size=24, train=False)   # last batch padded
prior = src.class_counts / src.class_counts.sum()
arch = "resnet_tiny"

base_model = models.create_model(arch, K)
shapes = jax.eval_shape(lambda: base_model.init(jax.random.PRNGKey(0), jnp.zeros((1, HW, HW, 3))))
tx = optim.make_optimizer("sgd", learning_rate=0.05, weight_decay=1e-4,
                          head_mask=models.head_param_mask(arch, shapes["params"]),
                          head_lr_multiplier=10.0)
with st.init_rng_context():
  init = jax.device_get(jax.jit(lambda: st.init_train_state(
      base_model, tx, jax.random.PRNGKey(0), (HW, HW, 3)))())

def run(kind, devices):
  axis = parallel.step_axis_name(kind)
  model = models.create_model(arch, K, bn_axis_name=axis)
  if kind == "jit":
    par = parallel.DataParallel(parallel.make_data_mesh(devices))
  else:
    par = parallel.PmapDataParallel(devices)
  s = par.put_state(init)
  par.compile(steps.make_train_step(model, tx, num_classes=K, loss="pc_softmax",
                                    class_prior=prior, axis_name=axis),
              steps.make_eval_step(model, num_classes=K, loss="pc_softmax",
                                   class_prior=prior, axis_name=axis))
  metrics = []
  for i in range(STEPS):
    s, m = par.train_step(s, par.shard_batch(pipe.get_batch(i)))
    metrics.append({k: float(v) for k, v in jax.device_get(m).items()})
  return jax.device_get(par.host_state(s)), metrics, evaluate_classification(par, s, ev)

def maxdiff(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(la, lb))

devs = jax.devices()
one, eight, pm = run("jit", devs[:1]), run("jit", devs), run("pmap", devs)
out = {"steps": [int(r[0].step) for r in (one, eight, pm)]}
for name, (a, b) in {"jit8_vs_jit1": (eight, one), "pmap8_vs_jit1": (pm, one),
                     "pmap8_vs_jit8": (pm, eight)}.items():
  out[name] = {
      "params": maxdiff(a[0].params, b[0].params),
      "batch_stats": maxdiff(a[0].batch_stats, b[0].batch_stats),
      "opt_state": maxdiff(a[0].opt_state, b[0].opt_state),
      "train_metrics": max(abs(x[k] - y[k]) for x, y in zip(a[1], b[1]) for k in y),
      "eval_metrics": {k: abs(a[2][k] - b[2][k]) for k in b[2]},
  }
out["param_scale"] = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(one[0].params))
out["eval_count"] = [r[2]["count"] for r in (one, eight, pm)]
out["moved"] = maxdiff(one[0].params, init.params)
print("RESULT=" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def result():
  return multidevice.run_python(_CODE, num_devices=8)


def test_all_variants_took_the_same_number_of_steps(result):
  assert result["steps"] == [5, 5, 5]
  assert result["eval_count"] == [64, 64, 64]
  assert result["moved"] > 1e-2  # training actually changed the parameters


@pytest.mark.parametrize("pair", ["jit8_vs_jit1", "pmap8_vs_jit1", "pmap8_vs_jit8"])
def test_eight_devices_match_one_device_up_to_rounding(result, pair):
  r = result[pair]
  for key in ("params", "batch_stats", "opt_state"):
    assert r[key] < 1e-4, (pair, key, r[key])
  assert r["train_metrics"] < 1e-4, r
  assert r["eval_metrics"]["accuracy"] == 0.0
  assert r["eval_metrics"]["mean_per_class_accuracy"] == 0.0
  assert r["eval_metrics"]["loss"] < 1e-4 and r["eval_metrics"]["mi"] < 1e-4
