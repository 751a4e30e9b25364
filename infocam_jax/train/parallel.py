"""Data parallelism: ``jax.jit`` over a device mesh (default) or ``jax.pmap``.

Default (``"jit"``): one 1-D ``Mesh`` over every device of every process with
the axis ``"data"``. The train state is replicated (``NamedSharding(mesh,
P())``), the batch is sharded on its leading axis (``P("data")``) and the
*single-device* step is compiled by ``jax.jit``; XLA inserts the all-reduces,
so gradients, metrics and BatchNorm statistics are those of the global batch
with no code change. Multi-host: call ``initialize_distributed`` first; each
process feeds only its slice of the global batch and
``jax.make_array_from_process_local_data`` assembles the global array.

``"pmap"``: the classic Flax-examples formulation kept for users who expect it:
state replicated along a leading device axis, ``lax.pmean`` of gradients and
metrics, BatchNorm statistics averaged over the same axis (the model is built
with ``bn_axis_name``). JAX put ``pmap`` in maintenance mode (0.8) and since 0.9
implements it with ``jit`` + ``shard_map``, so it buys nothing over the mesh
step; it is single-process here. Both give the same updates (tested).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
PARALLELISMS = ("jit", "pmap")
PyTree = Any

log = logging.getLogger(__name__)


def initialize_distributed(*, coordinator_address: str = "", num_processes: int = 0,
                           process_id: int = -1, local_device_ids: Sequence[int] | str = "",
                           cpu_collectives: str = "gloo",
                           initialization_timeout: int = 300) -> None:
  """``jax.distributed.initialize`` with "empty means auto-detect" arguments.

  Must run before any other JAX call. Empty/negative fields are passed as
  ``None`` so that JAX's cluster detection (SLURM, Open MPI, TPU, ...) fills
  them. On CPU, cross-process collectives need an implementation: ``"gloo"``
  (bundled with jaxlib; verified with jax 0.10.2 on localhost) or ``"mpi"``.

  >>> initialize_distributed(  # doctest: +SKIP
  ...     coordinator_address="10.0.0.1:1234", num_processes=2, process_id=0)  # host 0 of 2
  >>> jax.process_count()  # doctest: +SKIP
  2

  (Skipped as a doctest: it must run first in a fresh multi-process job.)
  """
  if jax.distributed.is_initialized():
    return
  if cpu_collectives:
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  if isinstance(local_device_ids, str):
    ids = [int(t) for t in local_device_ids.replace(",", " ").split()] or None
  else:
    ids = list(local_device_ids) or None
  jax.distributed.initialize(
      coordinator_address=coordinator_address or None,
      num_processes=num_processes if num_processes > 0 else None,
      process_id=process_id if process_id >= 0 else None,
      local_device_ids=ids,
      initialization_timeout=initialization_timeout)
  log.info("jax.distributed: process %d of %d, %d local / %d global devices",
           jax.process_index(), jax.process_count(), jax.local_device_count(),
           jax.device_count())


def initialize_distributed_from_config(distributed: Any) -> bool:
  """`initialize_distributed` from a config's ``distributed`` section, if it asks for it.

  Returns whether ``distributed.initialize`` was set (the experiments' multi-host switch).

  >>> from infocam_jax.train import default_train_config
  >>> initialize_distributed_from_config(default_train_config().distributed)  # off by default
  False
  """
  if not distributed.initialize:
    return False
  initialize_distributed(
      coordinator_address=distributed.coordinator_address,
      num_processes=distributed.num_processes, process_id=distributed.process_id,
      local_device_ids=distributed.local_device_ids,
      cpu_collectives=distributed.cpu_collectives)
  return True


def make_data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh ``("data",)`` ordered by (process, device id).

  The order matters for multi-host data loading: process ``i``'s local batch
  becomes rows ``[i*b, (i+1)*b)`` of the global batch, the same rows a single
  process would have used.

  >>> mesh = make_data_mesh()  # every device of every process
  >>> mesh.axis_names, mesh.devices.size == jax.device_count()
  (('data',), True)
  """
  devices = list(jax.devices() if devices is None else devices)
  devices.sort(key=lambda d: (d.process_index, d.id))
  return Mesh(np.asarray(devices), (DATA_AXIS,))


class DataParallel:
  """The jit + mesh data-parallel driver (see the module docstring).

  Usage::

    par = DataParallel()
    state = par.init(lambda: init_train_state(model, tx, key, (H, W, 3)))
    par.compile(train_step_fn, eval_step_fn)
    state, metrics = par.train_step(state, par.shard_batch(local_batch))

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> import optax
  >>> from infocam_jax.train import init_train_state, make_train_step
  >>> par, tx = DataParallel(), optax.sgd(0.1)
  >>> state = par.init(lambda: init_train_state(Net(), tx, jax.random.PRNGKey(0), (8, 8, 3)))
  >>> par.compile(make_train_step(Net(), tx, num_classes=3), None)
  >>> local_batch = {"image": np.ones((4, 8, 8, 3), np.float32), "label": np.array([0, 1, 2, 0])}
  >>> state, metrics = par.train_step(state, par.shard_batch(local_batch))
  >>> int(par.host_state(state).step), par.num_devices == jax.device_count()
  (1, True)
  """
  kind = "jit"

  def __init__(self, mesh: Mesh | None = None, *, donate: bool = True):
    self.mesh = make_data_mesh() if mesh is None else mesh
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    self.donate = donate
    self.train_step: Callable[..., Any] | None = None
    self.eval_step: Callable[..., Any] | None = None

  @property
  def num_devices(self) -> int:
    return self.mesh.devices.size

  @property
  def num_local_devices(self) -> int:
    return sum(d.process_index == jax.process_index() for d in self.mesh.devices.flat)

  def init(self, init_fn: Callable[[], PyTree]) -> PyTree:
    """Runs ``init_fn`` (no arguments; traceable) with replicated outputs."""
    return run_once(jax.jit(init_fn, out_shardings=self.replicated))

  def abstract_state(self, state: PyTree) -> PyTree:
    """``ShapeDtypeStruct`` tree with the state's target sharding (for restore)."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=self.replicated), state)

  def put_state(self, state: PyTree) -> PyTree:
    """Places a host/single-device state replicated on the mesh."""
    if jax.process_count() == 1:
      return jax.device_put(state, self.replicated)

    def place(x: Any) -> jax.Array:
      host = np.asarray(x)
      return jax.make_array_from_callback(host.shape, self.replicated, lambda idx: host[idx])

    return jax.tree.map(place, state)

  def host_state(self, state: PyTree) -> PyTree:
    """The state as saved in checkpoints (already global and replicated)."""
    return state

  def shard_batch(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows of the global batch -> global arrays sharded on "data"."""
    out = {}
    for k, v in local_batch.items():
      v = np.asarray(v)
      if v.shape[0] % self.num_local_devices:
        raise ValueError(
            f"batch[{k!r}] has {v.shape[0]} rows on this process, not divisible by its "
            f"{self.num_local_devices} local devices.")
      out[k] = jax.make_array_from_process_local_data(self.batch_sharding, v)
    return out

  def compile(self, train_step: Callable | None, eval_step: Callable | None) -> None:
    """jits the steps with explicit shardings; the state buffers are donated."""
    if train_step is not None:
      self.train_step = jax.jit(
          train_step, in_shardings=(self.replicated, self.batch_sharding),
          out_shardings=(self.replicated, self.replicated),
          donate_argnums=(0,) if self.donate else ())
    if eval_step is not None:
      self.eval_step = jax.jit(
          eval_step, in_shardings=(self.replicated, self.batch_sharding),
          out_shardings=self.replicated)


class PmapDataParallel:
  """The ``jax.pmap`` variant over this process's devices (single process).

  The state carries a leading axis of size ``num_devices``; ``host_state``
  strips it (device 0's copy) for checkpoints and export, ``put_state`` adds it.

  >>> import flax.linen as nn
  >>> class Net(nn.Module):  # the model contract: apply(v, x, train) -> (logits, features)
  ...   @nn.compact
  ...   def __call__(self, images, train=False):
  ...     features = nn.Conv(4, (3, 3))(images)
  ...     return nn.Dense(3)(features.mean(axis=(1, 2))), features
  >>> import optax
  >>> from infocam_jax.train import init_train_state
  >>> par = PmapDataParallel()  # this process's devices
  >>> state = par.init(lambda: init_train_state(Net(), optax.sgd(0.1), jax.random.PRNGKey(0), (8, 8, 3)))
  >>> state.step.shape == (par.num_devices,)  # one copy per device
  True
  >>> par.host_state(state).step.shape  # device 0's copy
  ()
  """
  kind = "pmap"

  def __init__(self, devices: Sequence[jax.Device] | None = None, *, donate: bool = True):
    if jax.process_count() != 1:
      raise ValueError("parallelism='pmap' supports a single process; use 'jit' for "
                       "multi-host data parallelism.")
    self.devices = list(jax.local_devices() if devices is None else devices)
    self.mesh = Mesh(np.asarray(self.devices), (DATA_AXIS,))
    self._stacked = NamedSharding(self.mesh, P(DATA_AXIS))
    self.donate = donate
    self.train_step: Callable[..., Any] | None = None
    self.eval_step: Callable[..., Any] | None = None

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  num_local_devices = num_devices

  def init(self, init_fn: Callable[[], PyTree]) -> PyTree:
    state = run_once(jax.jit(init_fn))
    return self.put_state(state)

  def abstract_state(self, state: PyTree) -> PyTree:
    """Abstract *unreplicated* state on the first device (restore target).

    ``state`` is an unreplicated state or its ``jax.eval_shape``.
    """
    sharding = jax.sharding.SingleDeviceSharding(self.devices[0])
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), state)

  def put_state(self, state: PyTree) -> PyTree:
    """Adds the leading device axis: every device holds the same copy."""
    n = self.num_devices

    def rep(x):
      x = np.asarray(x)
      return jax.device_put(np.broadcast_to(x[None], (n, *x.shape)), self._stacked)
    return jax.tree.map(rep, state)

  def host_state(self, state: PyTree) -> PyTree:
    """Device 0's copy (no leading axis)."""
    return jax.tree.map(lambda x: x.addressable_shards[0].data.reshape(x.shape[1:]), state)

  def shard_batch(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    n = self.num_devices
    out = {}
    for k, v in local_batch.items():
      v = np.asarray(v)
      if v.shape[0] % n:
        raise ValueError(f"batch[{k!r}] has {v.shape[0]} rows, not divisible by {n} devices.")
      out[k] = jax.device_put(v.reshape(n, v.shape[0] // n, *v.shape[1:]), self._stacked)
    return out

  def compile(self, train_step: Callable | None, eval_step: Callable | None) -> None:
    """pmaps the steps (built with ``axis_name=DATA_AXIS``); metrics unstacked."""
    if train_step is not None:
      pstep = jax.pmap(train_step, axis_name=DATA_AXIS, devices=self.devices,
                       donate_argnums=(0,) if self.donate else ())

      def train(state, batch):
        new_state, metrics = pstep(state, batch)
        return new_state, jax.tree.map(lambda m: m[0], metrics)
      self.train_step = train
    if eval_step is not None:
      peval = jax.pmap(eval_step, axis_name=DATA_AXIS, devices=self.devices)
      self.eval_step = lambda state, batch: jax.tree.map(lambda m: m[0], peval(state, batch))


def run_once(jitted: Any) -> PyTree:
  """Compiles and runs a no-argument jitted function that runs once (init).

  Compiled without backend (LLVM) optimisation: the program runs once, and on
  XLA:CPU this halves the compile time of a model's initialisation.
  """
  lowered = jitted.lower()
  try:
    compiled = lowered.compile(compiler_options={"xla_backend_optimization_level": 0})
  except Exception:  # pylint: disable=broad-except  # a backend without the option
    compiled = lowered.compile()
  return compiled()


def make_parallel(kind: str = "jit", **kwargs: Any) -> DataParallel | PmapDataParallel:
  """``DataParallel`` for ``"jit"``, ``PmapDataParallel`` for ``"pmap"``.

  >>> type(make_parallel("jit")).__name__, type(make_parallel("pmap")).__name__
  ('DataParallel', 'PmapDataParallel')
  """
  if kind == "jit":
    return DataParallel(**kwargs)
  if kind == "pmap":
    return PmapDataParallel(**kwargs)
  raise ValueError(f"`parallelism` must be one of {PARALLELISMS}, got {kind!r}.")


def step_axis_name(kind: str) -> str | None:
  """The collective axis the step functions need: ``"data"`` for pmap, else None."""
  return DATA_AXIS if kind == "pmap" else None
