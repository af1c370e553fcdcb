"""Many devices and many hosts through JAX's own SPMD sharding (no scheduler of our own).

One mesh axis, "batch": the images x restarts of the solver and the examples of a
training batch are split over it; parameters are replicated on every device. `jax.jit`
then runs one program per device and inserts the gradient all-reduce itself.

Multi-host runs (`jax.distributed.initialize`) use the same code: every process runs
the same command, holds the same parameters and data indices, and places only its own
rows on its own devices (`put` reads just the rows a device needs).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH = "batch"


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join a multi-host run: `jax.distributed.initialize` with the given or detected setup.

    With no arguments JAX detects SLURM, Open MPI and Cloud TPU clusters itself;
    otherwise give all three (the coordinator is "host:port" of process 0).
    Must run before any other JAX call.
    """
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError("multi-host needs --coordinator_address, --num_processes and "
                         "--process_id together (or none of them, to auto-detect a cluster)")
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"--process_id must be in [0, {num_processes}), got {process_id}")
    # CPU hosts need a collectives library to talk to each other; GPUs and TPUs ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis "batch" over `devices` (default: every device of every host)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("a mesh needs at least one device")
    return Mesh(np.asarray(devices), (BATCH,))


def default_mesh() -> Mesh | None:
    """All devices as a batch mesh, or None on a single device (nothing to shard)."""
    return batch_mesh() if jax.device_count() > 1 else None


def is_primary() -> bool:
    """True in the process that writes logs, figures and results (process 0)."""
    return jax.process_index() == 0


def put(tree, mesh: Mesh, *, batch: int | None = None):
    """Place host-identical arrays on `mesh`: leaves whose leading axis is `batch` are split
    over "batch", every other leaf is replicated.

    Every process must pass the same values (same seed, same data); each device receives
    only its rows. Leaves may be NumPy or JAX arrays (PRNG key arrays included).
    """
    split = NamedSharding(mesh, PartitionSpec(BATCH))
    replicated = NamedSharding(mesh, PartitionSpec())

    def one(x):
        sharding = split if batch is not None and np.ndim(x) and x.shape[0] == batch else replicated
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = put(jax.random.key_data(x), mesh, batch=batch)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(one, tree)


def check_divisible(n: int, mesh: Mesh, what: str) -> None:
    if n % mesh.size:
        raise ValueError(f"{what} {n} must be a multiple of the {mesh.size} devices it is split "
                         f"over; change it, or run on fewer devices (e.g. CUDA_VISIBLE_DEVICES)")


def process_rows(n: int) -> slice:
    """This process's share of a global batch of n rows (its devices' rows, in order)."""
    per = n // jax.process_count()
    return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def shard_process_local(local: np.ndarray, mesh: Mesh) -> jax.Array:
    """The global batch whose rows on this process's devices are `local` (per-host data)."""
    return jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec(BATCH)),
                                                  local)


def local_copy(tree):
    """Replicated arrays as this process's own copy, for work one process does alone
    (a computation on a multi-host array needs every process to take part)."""
    return jax.tree_util.tree_map(
        lambda x: x.addressable_data(0)
        if isinstance(x, jax.Array) and x.is_fully_replicated and len(x.sharding.device_set) > 1
        else x, tree)


def to_host(x: jax.Array) -> np.ndarray:
    """The whole of a (possibly multi-host) array as NumPy on every process."""
    if jax.process_count() == 1 or getattr(x, "is_fully_addressable", True):
        return np.asarray(x)  # local to this process: nothing to gather (not collective)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def committed(tree):
    """`tree` committed to its one device, as a jitted program's outputs are: the second
    call would otherwise find its inputs changed from uncommitted to committed and compile
    again. On several devices as it is (a mesh placed what it splits)."""
    devices = set().union(*(a.sharding.device_set for a in jax.tree_util.tree_leaves(tree)))
    return jax.device_put(tree, devices.pop()) if len(devices) == 1 else tree
