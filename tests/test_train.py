"""Training engine, in process (one CPU device): optimiser, steps, config, checkpoints.

Multi-device, multi-process and kill/resume checks are in
``test_train_multidevice.py`` and ``test_train_cli.py`` (subprocesses).
"""

from __future__ import annotations

import json
import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from infocam_jax import estimators
from infocam_jax.train import checkpoint as ckpt_lib
from infocam_jax.train import config as config_lib
from infocam_jax.data import arrays as synthetic
from infocam_jax.train import optim, parallel, rundir, steps
from infocam_jax.train.state import init_rng_context, init_train_state, state_checksums
from infocam_jax.train.writers import MetricWriter, read_metrics

K = 4
IMG = (16, 16, 3)


class TinyNet(nn.Module):
  """Two conv-BN-ReLU layers, GAP, linear head; the project's model contract."""
  num_classes: int = K
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    for i, width in enumerate((6, 8)):
      x = nn.Conv(width, (3, 3), strides=2, dtype=self.dtype, name=f"conv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                       dtype=self.dtype, name=f"bn{i}")(x)
      x = nn.relu(x)
    features = x.astype(jnp.float32)
    logits = nn.Dense(self.num_classes, name="fc")(jnp.mean(features, axis=(1, 2)))
    return logits, features


def head_mask(params):
  return {k: jax.tree.map(lambda _, h=(k == "fc"): h, v) for k, v in params.items()}


@pytest.fixture(scope="module")
def data():
  src = synthetic.synthetic_source(64, num_classes=K, image_size=IMG[0], seed=0,
                                   class_weights=np.array([4.0, 2.0, 1.0, 1.0]))
  return src, synthetic.ArrayPipeline(src, batch_size=16, train=True, seed=0)


@pytest.fixture(scope="module")
def setup(data):
  """One model/optimiser/state and jitted steps shared by the tests (compiled once)."""
  src, pipe = data
  model = TinyNet()
  params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *IMG))))
  tx = optim.make_optimizer("sgd", learning_rate=0.1, weight_decay=1e-4,
                            head_mask=head_mask(params["params"]), head_lr_multiplier=10.0)
  par = parallel.DataParallel()
  with init_rng_context():
    state = par.init(lambda: init_train_state(model, tx, jax.random.PRNGKey(0), IMG))
  prior = src.class_counts / src.class_counts.sum()
  par.compile(steps.make_train_step(model, tx, num_classes=K, class_prior=prior,
                                    learning_rate_fn=lambda c: 0.1),
              steps.make_eval_step(model, num_classes=K, class_prior=prior))
  return dict(model=model, tx=tx, par=par, state=state, prior=prior, src=src, pipe=pipe)


# -- optimiser -------------------------------------------------------------------


def _quadratic_grads(params, t, scale):
  """A deterministic gradient field g(p, t) = scale * p + d_t (same in torch and JAX)."""
  rng = np.random.default_rng(100 + t)
  return jax.tree.map(lambda p, s: s * p + rng.normal(size=p.shape).astype(np.float32),
                      params, scale)


@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_sgd_matches_torch_sgd_nesterov_weight_decay_head_lr_step_decay(clip):
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  params = {"body": {"kernel": rng.normal(size=(5, 3)).astype(np.float32),
                     "bn_scale": (1 + 0.1 * rng.normal(size=3)).astype(np.float32),
                     "bias": rng.normal(size=3).astype(np.float32)},
            "fc": {"kernel": rng.normal(size=(3, 2)).astype(np.float32),
                   "bias": rng.normal(size=2).astype(np.float32)}}
  scale = jax.tree.map(lambda p: np.float32(rng.uniform(0.2, 2.0)), params)
  mask = {"body": jax.tree.map(lambda _: False, params["body"]),
          "fc": jax.tree.map(lambda _: True, params["fc"])}
  lr, wd, decay_every, steps_n = 0.05, 3e-2, 4, 11
  tx = optim.make_optimizer(
      "sgd", learning_rate=optim.step_decay_schedule(lr, decay_every_steps=decay_every),
      momentum=0.9, nesterov=True, weight_decay=wd, head_mask=mask, head_lr_multiplier=10.0,
      grad_clip_norm=clip)
  opt_state = tx.init(params)
  update = jax.jit(tx.update)

  leaves, treedef = jax.tree.flatten(params)
  head_flags = jax.tree.leaves(mask)
  tp = [torch.tensor(x.copy(), requires_grad=True) for x in leaves]
  topt = torch.optim.SGD(
      [{"params": [p for p, h in zip(tp, head_flags) if not h], "lr": lr},
       {"params": [p for p, h in zip(tp, head_flags) if h], "lr": 10 * lr}],
      lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
  sched = torch.optim.lr_scheduler.StepLR(topt, step_size=decay_every, gamma=0.1)

  p = params
  for t in range(steps_n):
    g = _quadratic_grads(p, t, scale)
    updates, opt_state = update(g, opt_state, p)
    p = optax.apply_updates(p, updates)
    tg = _quadratic_grads(jax.tree.unflatten(treedef, [x.detach().numpy() for x in tp]), t, scale)
    for x, gx in zip(tp, jax.tree.leaves(tg)):
      x.grad = torch.tensor(np.asarray(gx))
    if clip:
      torch.nn.utils.clip_grad_norm_(tp, clip)
    topt.step()
    sched.step()
    for a, b in zip(jax.tree.leaves(p), tp):
      np.testing.assert_allclose(np.asarray(a), b.detach().numpy(), rtol=2e-5, atol=2e-6,
                                 err_msg=f"step {t}")


def test_adam_matches_torch_adam_with_l2():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(1)
  params = {"w": rng.normal(size=(4, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
  scale = {"w": np.float32(0.7), "b": np.float32(1.3)}
  tx = optim.make_optimizer("adam", learning_rate=1e-2, weight_decay=1e-2)
  state = tx.init(params)
  tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
  topt = torch.optim.Adam(list(tp.values()), lr=1e-2, weight_decay=1e-2)
  p = params
  for t in range(6):
    g = _quadratic_grads(p, t, scale)
    u, state = tx.update(g, state, p)
    p = optax.apply_updates(p, u)
    tg = _quadratic_grads({k: v.detach().numpy() for k, v in tp.items()}, t, scale)
    for k in tp:
      tp[k].grad = torch.tensor(np.asarray(tg[k]))
    topt.step()
  for k in params:
    np.testing.assert_allclose(np.asarray(p[k]), tp[k].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_weight_decay_reaches_every_parameter_including_bn_and_bias():
  params = {"conv": {"kernel": jnp.full((2, 2), 2.0)}, "bn": {"scale": jnp.ones(3), "bias": jnp.full(3, -1.0)}}
  tx = optim.make_optimizer("sgd", learning_rate=0.5, momentum=0.9, weight_decay=0.1)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  # First Nesterov step with zero gradient: d = wd*p, buf = d, step = d + 0.9*buf = 1.9*wd*p.
  for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
    np.testing.assert_allclose(u, -0.5 * 1.9 * 0.1 * p, rtol=1e-6)


def test_step_decay_schedule_and_head_multiplier():
  sched = optim.step_decay_schedule(0.1, decay_every_steps=3)
  np.testing.assert_allclose([sched(i) for i in range(7)],
                             [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001], rtol=1e-6)
  params = {"body": jnp.ones(2), "fc": jnp.ones(2)}
  tx = optim.make_optimizer("sgd", learning_rate=sched, momentum=0.0, nesterov=False,
                            head_mask={"body": False, "fc": True}, head_lr_multiplier=10.0)
  g = {"body": jnp.ones(2), "fc": jnp.ones(2)}
  u, _ = tx.update(g, tx.init(params), params)
  np.testing.assert_allclose(u["body"], -0.1)
  np.testing.assert_allclose(u["fc"], -1.0, rtol=1e-6)


def test_warmup_then_step_decay():
  # Step boundaries count from the start of the run (warm-up included).
  sched = optim.make_schedule("step", 1.0, total_steps=20, decay_every_steps=5, warmup_steps=2)
  np.testing.assert_allclose([sched(i) for i in (0, 1, 2, 4, 5, 10)],
                             [0.0, 0.5, 1.0, 1.0, 0.1, 0.01], rtol=1e-6, atol=1e-7)
  # Cosine decays over the steps after the warm-up.
  cos = optim.make_schedule("cosine", 1.0, total_steps=12, warmup_steps=2)
  np.testing.assert_allclose([cos(i) for i in (2, 7, 12)], [1.0, 0.5, 0.0], atol=1e-6)


def test_make_optimizer_rejects_bad_arguments():
  with pytest.raises(ValueError, match="momentum"):
    optim.make_optimizer("sgd", learning_rate=0.1, momentum=1.0)
  with pytest.raises(ValueError, match="name"):
    optim.make_optimizer("rmsprop", learning_rate=0.1)
  with pytest.raises(ValueError, match="decay_every_steps"):
    optim.step_decay_schedule(0.1, decay_every_steps=0)


# -- steps ---------------------------------------------------------------------------


def _reference_forward(model, state, batch):
  fwd = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
  (logits, _), new_vars = fwd(state.variables, batch["image"])
  return logits, new_vars


def test_train_step_matches_a_direct_computation(setup):
  model, tx, par, state = setup["model"], setup["tx"], setup["par"], setup["state"]
  batch = setup["pipe"].get_batch(0)
  logits, new_vars = _reference_forward(model, state, batch)
  labels = batch["label"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)

  def loss_fn(params):
    v = {"params": params, "batch_stats": state.batch_stats}
    (lg, _), _ = model.apply(v, batch["image"], train=True, mutable=["batch_stats"])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(lg, labels))
  @jax.jit
  def reference_update(params, opt_state):
    updates, _ = tx.update(jax.grad(loss_fn)(params), opt_state, params)
    return optax.apply_updates(params, updates)
  want_params = reference_update(state.params, state.opt_state)

  host_before = jax.device_get(state)
  new_state, metrics = par.train_step(jax.tree.map(jnp.array, state), par.shard_batch(batch))
  metrics = jax.device_get(metrics)
  np.testing.assert_allclose(metrics["loss"], np.mean(ce), rtol=1e-5)
  # Softmax: MI estimate = log K - CE (nats).
  np.testing.assert_allclose(metrics["mi"], math.log(K) - np.mean(ce), rtol=1e-5, atol=1e-6)
  # Prior-corrected estimate is reported next to it (the training set is imbalanced).
  want_prior = np.mean(estimators.pmi(logits, labels, setup["prior"], objective="softmax"))
  np.testing.assert_allclose(metrics["mi_prior_corrected"], want_prior, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["accuracy"], 100 * np.mean(np.argmax(logits, -1) == labels),
                             rtol=1e-6)  # percent
  np.testing.assert_allclose(metrics["learning_rate"], 0.1)
  for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(want_params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(new_state.batch_stats), jax.tree.leaves(new_vars["batch_stats"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert int(new_state.step) == int(host_before.step) + 1
  np.testing.assert_array_equal(new_state.rng, host_before.rng)


def test_pc_softmax_step_reports_mean_pmi(setup, data):
  src, pipe = data
  model, tx, prior = setup["model"], setup["tx"], setup["prior"]
  step = jax.jit(steps.make_train_step(model, tx, num_classes=K, loss="pc_softmax",
                                       class_prior=prior))
  batch = pipe.get_batch(1)
  logits, _ = _reference_forward(model, setup["state"], batch)
  _, metrics = step(jax.tree.map(jnp.array, setup["state"]), batch)
  want = np.mean(estimators.pc_softmax_cross_entropy_with_integer_labels(logits, batch["label"],
                                                                         prior))
  np.testing.assert_allclose(metrics["loss"], want, rtol=1e-5)
  # PC-softmax: MI estimate = mean PMI = mean log s~_y = -loss.
  np.testing.assert_allclose(metrics["mi"], -metrics["loss"], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="class_prior"):
    steps.make_train_step(model, tx, num_classes=K, loss="pc_softmax")


def test_eval_step_ignores_padding_even_nan(setup):
  par, state = setup["par"], setup["state"]
  src = setup["src"]
  ev = synthetic.ArrayPipeline(src, batch_size=24, train=False)
  assert ev.steps_per_epoch == 3  # 64 examples: last batch has 16 real + 8 padding
  total = None
  for i in range(ev.steps_per_epoch):
    b = ev.get_batch(i)
    pad = ~b["mask"]
    b["image"][pad] = np.nan
    b["label"][pad] = -7
    total = steps.accumulate(total, par.eval_step(state, par.shard_batch(b)))
  got = steps.finalize_eval(total)
  logits, _ = jax.jit(setup["model"].apply)(jax.device_get(state).variables, src.image)
  logits = np.asarray(logits)
  pred = logits.argmax(-1)
  assert got["count"] == 64
  np.testing.assert_allclose(got["accuracy"], 100 * np.mean(pred == src.label), rtol=1e-6)
  per_class = [np.mean(pred[src.label == k] == k) for k in range(K)]
  np.testing.assert_allclose(got["mean_per_class_accuracy"], 100 * np.mean(per_class), rtol=1e-6)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, src.label)
  np.testing.assert_allclose(got["loss"], np.mean(ce), rtol=1e-5)
  np.testing.assert_allclose(got["mi"], math.log(K) - np.mean(ce), rtol=1e-5, atol=1e-5)


def test_bf16_compute_keeps_float32_params_and_optimizer_state(data):
  _, pipe = data
  model = TinyNet(dtype=jnp.bfloat16)
  tx = optim.make_optimizer("sgd", learning_rate=0.1, weight_decay=1e-4)
  with init_rng_context():
    state = jax.jit(lambda: init_train_state(model, tx, jax.random.PRNGKey(0), IMG))()
  step = steps.make_train_step(model, tx, num_classes=K)
  batch = pipe.get_batch(0)
  jaxpr = str(jax.make_jaxpr(step)(state, batch))
  assert "bf16[" in jaxpr and "conv_general_dilated" in jaxpr
  new_state, metrics = jax.jit(step)(state, batch)
  for leaf in jax.tree.leaves((new_state.params, new_state.opt_state, new_state.batch_stats)):
    assert leaf.dtype == jnp.float32
  assert np.isfinite(float(metrics["loss"]))


# -- config --------------------------------------------------------------------------


def test_default_and_experiment_configs_validate():
  from experiments import wsol  # pylint: disable=g-import-not-at-top
  from infocam_jax.train import build  # pylint: disable=g-import-not-at-top
  config_lib.validate_config(config_lib.default_train_config())
  assert "unknown dataset 'cub'" in build.check_dataset_name("cub")
  import importlib.util  # pylint: disable=g-import-not-at-top
  here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments", "configs")
  for name, args in [("smoke.py", ()), ("default.py", ()),
                     *[("paper.py", (v,)) for v in ("cub_resnet50_adl", "tiny_vgg16_gap")]]:
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(here, name))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod.get_config(*args)
    config_lib.validate_config(cfg, wsol.SCHEMA)  # the engine's fields + the WSOL ones
    with pytest.raises(ValueError, match="config.wsol: unknown key"):
      config_lib.validate_config(cfg)  # the engine alone rejects what it does not know
    assert build.check_dataset_name(cfg.data.name) is None
    for field in ("seed", "batch_size", "num_train_steps", "checkpoint_every_steps"):
      assert field in cfg


def test_paper_configs_carry_the_official_recipes():
  import importlib.util  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments", "configs",
                      "paper.py")
  spec = importlib.util.spec_from_file_location("paper", path)
  paper = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(paper)
  c = paper.get_config("cub_resnet50_adl")
  assert (c.batch_size, c.optimizer.learning_rate, c.num_epochs) == (128, 0.01, 200.0)
  assert (c.model.layer4_stride, c.model.adl_positions, c.model.adl_threshold) == (1, "30 40 42", 0.9)
  assert c.optimizer.nesterov and c.optimizer.weight_decay == 1e-4
  assert c.optimizer.head_lr_multiplier == 10.0 and c.optimizer.decay_every_epochs == 60.0
  v = paper.get_config("tiny_vgg16_gap")
  assert (v.batch_size, v.optimizer.learning_rate, v.data.image_size, v.model.adl_positions) == (
      1280, 0.001, 64, "")
  with pytest.raises(ValueError, match="variant"):
    paper.get_config("cub_resnet18")


def _invalid(**changes):
  # A plain dict: ConfigDict itself already refuses some wrong types on assignment.
  c = config_lib.to_dict(config_lib.default_train_config())
  for dotted, value in changes.items():
    node = c
    *parents, leaf = dotted.split("__")
    for p in parents:
      node = node[p]
    node[leaf] = value
  with pytest.raises(ValueError) as e:
    config_lib.validate_config(c)
  return str(e.value)


def test_validate_config_rejects_bad_values_with_clear_messages():
  assert "config.batch_size: must be >= 1" in _invalid(batch_size=0)
  msg = _invalid(model__arch="resnet51")
  assert "config.model.arch" in msg and "did you mean 'resnet50'" in msg
  assert "config.optimizer.momentum" in _invalid(optimizer__momentum=1.5)
  assert "expected int" in _invalid(seed=1.5)
  assert "expected float or int, got bool" in _invalid(optimizer__learning_rate=True)
  assert "Nesterov momentum requires momentum > 0" in _invalid(optimizer__momentum=0.0)
  assert "adl_positions" in _invalid(model__adl_positions="30 99")
  msg = _invalid(batch_size=0, loss="focal")  # every problem reported at once
  assert "batch_size" in msg and "loss" in msg


def test_validate_config_rejects_unknown_and_missing_keys():
  c = config_lib.default_train_config()
  c.optimizer.learnig_rate = 0.1
  with pytest.raises(ValueError, match=r"optimizer.learnig_rate: unknown key \(did you mean"):
    config_lib.validate_config(c)
  c = config_lib.default_train_config()
  del c["seed"]
  with pytest.raises(ValueError, match="config.seed: missing"):
    config_lib.validate_config(c)


def test_validate_runtime_checks_divisibility():
  c = config_lib.default_train_config()
  c.batch_size = 12
  with pytest.raises(ValueError, match=r"batch_size \(12\) must be divisible by the number of devices \(8\)"):
    config_lib.validate_runtime(c, num_devices=8, process_count=1)
  c.batch_size, c.parallelism = 16, "pmap"
  with pytest.raises(ValueError, match="pmap"):
    config_lib.validate_runtime(c, num_devices=8, process_count=2)
  config_lib.validate_runtime(config_lib.default_train_config(), num_devices=8, process_count=2)


def test_config_differences_ignores_resume_mutable_fields():
  a = config_lib.to_dict(config_lib.default_train_config())
  b = json.loads(json.dumps(a))
  b["num_train_steps"], b["distributed"]["process_id"] = 99, 3
  assert rundir.differences(a, b) == []
  b["optimizer"]["learning_rate"] = 1.0
  assert rundir.differences(a, b) == ["optimizer.learning_rate: 0.01 -> 1.0"]


# -- data pipeline -------------------------------------------------------------------


def test_array_pipeline_is_a_function_of_step_and_shards_partition_the_global_batch(data):
  src, pipe = data
  np.testing.assert_array_equal(pipe.get_batch(7)["label"], pipe.get_batch(7)["label"])
  assert pipe.steps_per_epoch == 4
  first_epoch = np.concatenate([pipe.global_indices(s)[0] for s in range(4)])
  assert sorted(first_epoch) == list(range(64))
  shards = [synthetic.ArrayPipeline(src, batch_size=16, train=True, seed=0, shard_index=i,
                                    num_shards=4).get_batch(5) for i in range(4)]
  np.testing.assert_array_equal(np.concatenate([s["image"] for s in shards]),
                                pipe.get_batch(5)["image"])
  it = pipe.iterate(3)
  for s in range(3, 9):
    np.testing.assert_array_equal(next(it)["label"], pipe.get_batch(s)["label"])


# -- checkpoints and exports ---------------------------------------------------------


def _array_files(step_dir):
  """The tensorstore data files of a checkpoint's state item, largest first."""
  out = []
  for root, _, files in os.walk(os.path.join(step_dir, "state")):
    if os.path.basename(root) == "d" and "ocdbt.process_" in root:
      out += [os.path.join(root, f) for f in files]
  assert out, f"no array data files under {step_dir}"
  return sorted(out, key=os.path.getsize, reverse=True)


# orbax abandons the read coroutines of the truncated checkpoint (harmless GeneratorExit).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_checkpoint_store_keeps_latest_and_best_and_skips_corrupt(tmp_path, setup, caplog):
  par, state = setup["par"], setup["state"]
  host = jax.device_get(state)
  # One large leaf, so that the largest data file holds a real array chunk.
  host = host.replace(params={**host.params, "big": np.linspace(-1, 1, 40000, dtype=np.float32)})
  store = ckpt_lib.CheckpointStore(tmp_path / "checkpoints", max_to_keep=2, keep_best=1,
                                   best_metric="val/accuracy")
  states = {}
  for step in range(1, 6):
    s = host.replace(step=np.int32(step), params=jax.tree.map(lambda x, k=step: x + k, host.params))
    states[step] = s
    metrics = {"val/accuracy": {1: 0.5, 2: 0.9, 3: 0.1}.get(step)} if step <= 3 else None
    store.save(step, s, progress={"step": step}, config={"seed": 0},
               metrics=metrics if metrics and metrics["val/accuracy"] is not None else None)
  store.wait()
  assert store.all_steps() == [2, 4, 5]  # newest two + best (step 2, acc 0.9)
  assert store.best_step() == 2
  # The evaluation helper: the best step's model variables, no optimizer state, nothing deleted.
  best_vars, best = ckpt_lib.load_best_variables(tmp_path / "checkpoints",
                                                 best_metric="val/accuracy")
  assert best == 2 and set(best_vars) <= {"params", "batch_stats"}
  for a, b in zip(jax.tree.leaves(best_vars["params"]), jax.tree.leaves(states[2].params)):
    np.testing.assert_array_equal(a, b)
  assert store.all_steps() == [2, 4, 5]
  assert ckpt_lib.load_best_variables(tmp_path / "empty", best_metric="val/accuracy") is None
  assert not os.path.exists(tmp_path / "empty")
  abstract = par.abstract_state(jax.eval_shape(lambda: host))

  restored = store.restore(abstract)
  assert restored.step == 5 and restored.skipped == []
  for a, b in zip(jax.tree.leaves(restored.state), jax.tree.leaves(states[5])):
    np.testing.assert_array_equal(a, b)
  assert restored.progress["step"] == 5 and restored.config == {"seed": 0}

  # Truncate the largest array file of step 5: the read fails -> step 4.
  biggest = _array_files(tmp_path / "checkpoints" / "5")[0]
  with open(biggest, "r+b") as f:
    f.truncate(os.path.getsize(biggest) // 2)
  # Flip one byte of step 4's array data (restores silently): the checksum catches it.
  victim = _array_files(tmp_path / "checkpoints" / "4")[0]
  raw = bytearray(open(victim, "rb").read())
  raw[len(raw) // 2] ^= 0xFF
  open(victim, "wb").write(bytes(raw))

  store.close()
  store = ckpt_lib.CheckpointStore(tmp_path / "checkpoints", max_to_keep=2, keep_best=1,
                                   best_metric="val/accuracy")  # as a restarted process would
  with caplog.at_level("ERROR"):
    restored = store.restore(abstract)
  assert restored.step == 2
  assert [s for s, _ in restored.skipped] == [5, 4]
  assert "read failed" in restored.skipped[0][1]
  assert "checksum mismatch" in restored.skipped[1][1]
  assert "corrupt" in caplog.text
  for a, b in zip(jax.tree.leaves(restored.state), jax.tree.leaves(states[2])):
    np.testing.assert_array_equal(a, b)
  assert sorted(os.listdir(tmp_path / "corrupt_checkpoints")) == ["4", "5"]
  assert store.all_steps() == [2]
  store.close()


def test_checkpoint_restores_with_plain_orbax(tmp_path, setup):
  host = jax.device_get(setup["state"])
  store = ckpt_lib.CheckpointStore(tmp_path / "checkpoints")
  store.save(3, host, progress={"step": 3})
  store.close()
  # No project code: a plain StandardCheckpointer / CheckpointManager restore.
  tree = ocp.StandardCheckpointer().restore(str(tmp_path / "checkpoints" / "3" / "state"))
  assert set(tree) == {"step", "params", "batch_stats", "opt_state", "rng"}
  for a, b in zip(jax.tree.leaves(tree["params"]), jax.tree.leaves(host.params)):
    np.testing.assert_array_equal(a, b)
  composite = ocp.CheckpointManager(str(tmp_path / "checkpoints")).restore(3)
  assert "params" in composite["state"] and composite["progress"]["step"] == 3


def test_state_checksums_detect_any_change(setup):
  host = jax.device_get(setup["state"])
  a = state_checksums(host)
  def nudge(x):  # the smallest possible change: one ulp of one element
    y = np.array(x, copy=True)
    y.flat[0] = np.nextafter(y.flat[0], np.float32(np.inf))
    return y
  flipped = host.replace(params=jax.tree.map(nudge, host.params))
  b = state_checksums(flipped)
  assert a.keys() == b.keys()
  assert sum(a[k] != b[k] for k in a) == len(jax.tree.leaves(host.params))


def test_export_roundtrip_without_optimizer_state(tmp_path, setup):
  host = jax.device_get(setup["state"])
  ckpt_lib.export_variables(tmp_path / "export", host.variables, metadata={"arch": "tiny"})
  variables, meta = ckpt_lib.load_variables(tmp_path / "export")
  assert set(variables) == {"params", "batch_stats"} and meta["arch"] == "tiny"
  x = setup["pipe"].get_batch(0)["image"]
  apply = jax.jit(setup["model"].apply)
  want, _ = apply(host.variables, x)
  got, _ = apply(variables, x)
  np.testing.assert_array_equal(got, want)


def test_metric_writer_appends_and_truncates_on_resume(tmp_path):
  w = MetricWriter(tmp_path, tensorboard=False, echo=None)
  for s in (5, 10, 15):
    w.write(s, {"train/loss": 1.0 / s, "train/vec": np.ones(3)})
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 20, "train/lo')  # a line cut by a kill
  w2 = MetricWriter(tmp_path, resume_step=10, tensorboard=False, echo=None)
  w2.write(15, {"train/loss": 0.5})
  recs = read_metrics(tmp_path)
  assert [r["step"] for r in recs] == [5, 10, 15]
  assert recs[-1]["train/loss"] == 0.5 and "train/vec" not in recs[0]


# -- the loop, in process ----------------------------------------------------------------


def _fit_config():
  c = config_lib.default_train_config()
  c.batch_size, c.eval_batch_size, c.num_train_steps = 16, 24, 10
  c.log_every_steps, c.checkpoint_every_steps, c.keep_checkpoints = 2, 3, 10
  c.progress_bar, c.tensorboard = False, False
  c.optimizer.learning_rate, c.optimizer.decay_every_steps = 0.05, 6
  config_lib.validate_config(c)
  return c


class _SignalAt:
  """A pipeline that sends SIGTERM to this process when batch ``at`` is produced."""

  def __init__(self, pipe, at):
    self.pipe, self.at, self.steps_per_epoch = pipe, at, pipe.steps_per_epoch

  def get_batch(self, step):
    return self.pipe.get_batch(step)

  def iterate(self, start_step=0):
    import signal  # pylint: disable=g-import-not-at-top
    for step, batch in enumerate(self.pipe.iterate(start_step), start_step):
      if step == self.at:
        os.kill(os.getpid(), signal.SIGTERM)
      yield batch


@pytest.mark.slow  # 57 s on 2 busy cores (2026-11-29): four fits, ~30 checkpoints
def test_fit_stops_cleanly_on_sigterm_and_resumes_to_the_same_state(tmp_path, data):
  from infocam_jax.train import loop  # pylint: disable=g-import-not-at-top
  src, pipe = data
  kwargs = dict(model=TinyNet(), num_classes=K, image_shape=IMG, class_counts=src.class_counts,
                head_mask_fn=head_mask, echo=lambda _: None)
  cfg = _fit_config()
  ref = loop.fit(cfg, tmp_path / "ref", train_data=pipe, **kwargs)
  assert ref.step == 10 and not ref.interrupted and ref.export_dir

  first = loop.fit(cfg, tmp_path / "run", train_data=_SignalAt(pipe, at=4), **kwargs)
  assert first.interrupted and 1 <= first.step < 10
  assert not os.path.exists(tmp_path / "run" / "export")
  assert str(first.step) in os.listdir(tmp_path / "run" / "checkpoints")

  second = loop.fit(cfg, tmp_path / "run", train_data=pipe, **kwargs)
  assert second.resumed_from == first.step and second.step == 10
  for a, b in zip(jax.tree.leaves(second.state), jax.tree.leaves(ref.state)):
    np.testing.assert_array_equal(a, b)
  strip = lambda recs: [{k: v for k, v in r.items() if k != "time"} for r in recs]
  assert strip(read_metrics(tmp_path / "run")) == strip(read_metrics(tmp_path / "ref"))

  # A stop asked for by the caller (polled once per step) acts like the signal.
  polls = []
  third = loop.fit(cfg, tmp_path / "polled", train_data=pipe,
                   stop_requested=lambda: polls.append(1) or len(polls) >= 3, **kwargs)
  assert third.interrupted and third.step == 3 and third.export_dir is None
  assert "3" in os.listdir(tmp_path / "polled" / "checkpoints")
  resumed = loop.fit(cfg, tmp_path / "polled", train_data=pipe, **kwargs)
  assert resumed.resumed_from == 3 and resumed.step == 10
  for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(ref.state)):
    np.testing.assert_array_equal(a, b)

  cfg.optimizer.learning_rate = 0.5  # a different run in the same directory: refused
  with pytest.raises(ValueError, match="optimizer.learning_rate: 0.05 -> 0.5"):
    loop.fit(cfg, tmp_path / "run", train_data=pipe, **kwargs)


def test_with_initial_variables_replaces_params_and_checks_shapes(setup):
  from infocam_jax.train.loop import with_initial_variables  # pylint: disable=g-import-not-at-top
  host = jax.device_get(setup["state"])
  new = jax.tree.map(lambda x: np.full_like(x, 0.5), host.variables)
  out = with_initial_variables(host, new)
  assert all(np.all(x == 0.5) for x in jax.tree.leaves(out.params))
  assert all(np.all(x == 0.5) for x in jax.tree.leaves(out.batch_stats))
  bad = jax.tree.map(lambda x: x, new)
  bad["params"]["fc"]["kernel"] = np.zeros((3, 3), np.float32)
  with pytest.raises(ValueError, match="shape"):
    with_initial_variables(host, bad)


def test_tensorboard_summaries_when_installed(tmp_path):
  pytest.importorskip("tensorboard")
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # pylint: disable=g-import-not-at-top
  w = MetricWriter(tmp_path, echo=None)
  assert w.tensorboard_enabled
  w.write(3, {"train/loss": 0.25})
  w.close()
  acc = EventAccumulator(str(tmp_path / "tensorboard"))
  acc.Reload()
  assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(3, 0.25)]


class _LinearNet(nn.Module):
  """logits = flatten(x) W + b (features = x): a model whose gradient is a closed form."""
  num_classes: int = K

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    return nn.Dense(self.num_classes, name="fc")(x.reshape(x.shape[0], -1)), x


class _OneBatch:
  """The data contract with one fixed batch at every step."""
  steps_per_epoch = 1

  def __init__(self, batch):
    self.batch = batch

  def get_batch(self, step):
    del step
    return self.batch

  def iterate(self, start_step=0):
    del start_step
    while True:
      yield self.batch


def _hand_sgd_step(w, b, x, y, log_prior, lr, wd):
  """One SGD step (no momentum, L2 ``wd`` added to the gradient) on the PC-softmax loss
  mean_i[-z_iy + log sum_k p_k e^{z_ik}], z = xW + b, in float64 numpy:
  dL/dz = (softmax(z + log p) - onehot(y)) / B."""
  z = x @ w + b
  s = z + log_prior
  s = s - s.max(1, keepdims=True)
  q = np.exp(s) / np.exp(s).sum(1, keepdims=True)
  loss = np.mean(-z[np.arange(len(y)), y] + np.log(np.exp(z + log_prior).sum(1)))
  g = (q - np.eye(w.shape[1])[y]) / len(y)
  return w - lr * (x.T @ g + wd * w), b - lr * (g.sum(0) + wd * b), loss


def test_fit_pc_softmax_step_uses_the_training_prior(tmp_path):
  """One step of ``loop.fit`` with loss='pc_softmax' equals the hand-computed step with
  the prior of ``class_counts`` and not the uniform-prior (= plain softmax) step."""
  from infocam_jax.train import loop  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  shape = (4, 4, 1)
  x = rng.normal(size=(12, *shape)).astype(np.float32)
  y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 0])
  counts = np.array([70, 20, 7, 3])
  w0 = (0.3 * rng.normal(size=(16, K))).astype(np.float32)
  b0 = (0.1 * rng.normal(size=K)).astype(np.float32)
  c = config_lib.default_train_config()
  c.loss, c.batch_size, c.num_train_steps = "pc_softmax", 12, 1
  c.progress_bar, c.tensorboard, c.async_checkpointing = False, False, False
  c.log_every_steps = 1
  c.optimizer.update(dict(name="sgd", learning_rate=0.5, momentum=0.0, nesterov=False,
                          weight_decay=1e-3, head_lr_multiplier=1.0, schedule="constant"))
  config_lib.validate_config(c)
  out = loop.fit(c, tmp_path, model=_LinearNet(), train_data=_OneBatch({"image": x, "label": y}),
                 num_classes=K, image_shape=shape, class_counts=counts, echo=lambda _: None,
                 initial_variables={"params": {"fc": {"kernel": w0, "bias": b0}}})
  got = out.state.params["fc"]
  x64, w64, b64 = x.reshape(12, -1).astype(np.float64), w0.astype(np.float64), b0.astype(np.float64)
  want_w, want_b, want_loss = _hand_sgd_step(w64, b64, x64, y, np.log(counts / counts.sum()),
                                             0.5, 1e-3)
  uni_w, uni_b, _ = _hand_sgd_step(w64, b64, x64, y, np.full(K, -np.log(K)), 0.5, 1e-3)
  # Measured (CPU, 2026-11-29): max |got - want| 3.0e-8 (kernel), 7.5e-9 (bias); the
  # uniform-prior step is 0.094 (kernel), 0.15 (bias) away; logged loss rel. error 3.2e-6.
  np.testing.assert_allclose(got["kernel"], want_w, rtol=0, atol=3e-7)
  np.testing.assert_allclose(got["bias"], want_b, rtol=0, atol=1e-7)
  assert np.max(np.abs(want_w - uni_w)) > 1e-2 and np.max(np.abs(want_b - uni_b)) > 1e-2
  rec = read_metrics(tmp_path)[-1]
  np.testing.assert_allclose(rec["train/loss"], want_loss, rtol=3e-5)
