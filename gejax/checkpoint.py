"""Self-describing workdirs: Orbax checkpoints beside the configs that built them.

    workdir/
      config.json      {"data": DataConfig, "began": BeganConfig, "began_train": {...},
                        "ae": AEConfig, "ae_train": {...}, "init_ae": ..., ...}
      began/<step>/    Orbax checkpoints: "state" (G, D, optimisers, k_t) and "params"
      ae/<step>/       the same for GE1's autoencoder (ae_<suffix>/ for more encoders)
      init_ae/<step>/  the same for the learned start of autoencoder ae (train.init)
      samples/         PNG grids of G(z) for fixed z at each BEGAN checkpoint
      tb/              TensorBoard scalars
      .lock            held by the run that writes to the workdir (`one_writer`)

`--workdir` alone is enough for later commands: they read the configs from config.json
and rebuild every network from them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from gejax import data, parallel

CONFIG_FILE = "config.json"
ITEMS = ("state", "params")
LOCK_FILE = ".lock"


# A workdir's parts, each named once here: a config.json section, "<part>_train" beside
# it, and a checkpoint folder. "began"; the autoencoders "ae" and "ae_<suffix>", whose
# encoders the experiments call GE1, "ge1" and "ge1_<suffix>"; and "init_<autoencoder>",
# an autoencoder's learned start.
def train_section(part: str) -> str:
    return f"{part}_train"


def is_autoencoder(part: str) -> bool:
    return part == "ae" or (part.startswith("ae_") and part[3:].isidentifier())


def autoencoders(workdir: str | os.PathLike) -> list[str]:
    """The autoencoders trained in a workdir ("ae", "ae_m64", ...), sorted."""
    config = read_config(workdir)
    return sorted(k for k in config if is_autoencoder(k) and train_section(k) in config)


def encoder_method(autoencoder: str) -> str:
    """The experiments' name of an autoencoder's encoder: "ae_m64" -> "ge1_m64"."""
    return "ge1" + autoencoder[2:]


def init_part(autoencoder: str) -> str:
    """The part that holds an autoencoder's learned start: "ae" -> "init_ae"."""
    return f"init_{autoencoder}"


@contextlib.contextmanager
def exclusive(workdir: str | os.PathLike, *, create: bool = True) -> Iterator[None]:
    """Hold the workdir's writer lock while the block runs; refuse if another run holds it.

    An OS lock (flock) on `workdir/.lock`: the OS releases it when the process ends, however
    it ends (kill -9 included), so a dead run never leaves the workdir locked. The file
    keeps the holder's pid for the message. Taken by process 0 only (every host of a
    multi-host run writes through it). `create` False: a missing workdir is left missing
    (and unlocked), for runs that need one made before them.
    """
    path = Path(workdir)
    if not parallel.is_primary() or not (create or path.is_dir()):
        yield
        return
    new = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    with _locked(path, workdir):
        try:
            yield
        except BaseException:
            # A first command that fails before its first checkpoint (a mistyped
            # --dataset, a damaged file) leaves no workdir behind whose config the
            # corrected command would take as its own.
            if new and not any(path.glob("*/*/_CHECKPOINT_METADATA")):
                shutil.rmtree(path, ignore_errors=True)
            raise


@contextlib.contextmanager
def _locked(path: Path, workdir) -> Iterator[None]:
    """flock on `path/.lock`, or refuse naming the holder."""
    with open(path / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ValueError(f"workdir {workdir} is busy: {holder} is training in it; wait for "
                             "it to finish or use another --workdir") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def one_writer(train: Callable | None = None, *, create: bool = True) -> Callable:
    """`train(workdir, ...)` run under `exclusive(workdir, create=create)`; use as
    `@one_writer` or `@one_writer(create=False)`."""
    if train is None:
        return functools.partial(one_writer, create=create)

    @functools.wraps(train)
    def locked(workdir, *args, **kwargs):
        with exclusive(workdir, create=create):
            return train(workdir, *args, **kwargs)

    return locked


def read_config(workdir: str | os.PathLike) -> dict:
    """The whole config.json of a workdir ({} when there is none yet)."""
    path = Path(workdir) / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the workdir is corrupt") from e


def write_config(workdir: str | os.PathLike, **sections) -> None:
    """Merge `sections` (dataclasses or dicts) into config.json, atomically."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = read_config(workdir)
    for name, value in sections.items():
        config[name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    write_text_atomic(workdir / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write through a temp file and rename, so a reader never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    os.replace(tmp, path)


def data_section(workdir: str | os.PathLike) -> data.DataConfig:
    """The workdir's data config, its dataset path found from any directory (`data.locate`)."""
    cfg = section(workdir, "data", data.DataConfig)
    return dataclasses.replace(cfg, name=data.locate(cfg.name, near=workdir))


def section(workdir: str | os.PathLike, name: str, cls):
    """Rebuild the dataclass `cls` stored under `name` in config.json."""
    config = read_config(workdir)
    if name not in config:
        raise ValueError(f"{workdir} has no '{name}' config: was it trained with the matching "
                         f"command (python -m train.began / train.ae --workdir {workdir})?")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(config[name]) - fields
    if unknown:
        raise ValueError(f"{workdir}: '{name}' config has unknown fields {sorted(unknown)}; "
                         "it was written by an incompatible version")
    return cls(**config[name])


def manager(workdir: str | os.PathLike, name: str, *, max_to_keep: int = 2,
            alone: bool = False) -> ocp.CheckpointManager:
    """The Orbax CheckpointManager of `workdir/name` (atomic saves; keeps the newest).

    Orbax writes each checkpoint into a temporary folder and renames it when complete,
    so a run killed mid-save leaves no checkpoint that `latest_step` would pick up.
    Every process of a multi-host run must call it, unless `alone`: then this process
    saves by itself (what it saves must be its own copy, `parallel.local_copy`).
    """
    here, path = jax.process_index(), Path(workdir, name).absolute()
    processes = ocp.options.MultiprocessingOptions()
    if alone:
        processes = ocp.options.MultiprocessingOptions(primary_host=here, active_processes={here})
        path.mkdir(parents=True, exist_ok=True)  # Orbax's create= needs every process
    return ocp.CheckpointManager(
        path, item_handlers={item: ocp.StandardCheckpointHandler() for item in ITEMS},
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not alone,
                                             multiprocessing_options=processes))


def save(mngr: ocp.CheckpointManager, step: int, state, params) -> None:
    """Save the full training `state` and, as a separate item, just its `params`.

    Evaluation restores only "params", so a shipped checkpoint can drop "state" (the
    optimiser moments, 2/3 of the bytes) and still load.
    """
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                            params=ocp.args.StandardSave(params)))


def save_params(workdir: str | os.PathLike, name: str, step: int, params) -> None:
    """Save `params` alone as checkpoint `step` of `workdir/name`, the only one kept there
    (e.g. the best G so far, `began_best/`): it can be evaluated, not resumed. Process 0
    calls it alone (the floor monitor runs there only)."""
    alone = jax.process_count() > 1
    if alone:  # Orbax refuses a process's own jax.Array in a multi-host run; NumPy it takes
        params = jax.device_get(params)
    with manager(workdir, name, max_to_keep=1, alone=alone) as mngr:
        mngr.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params)))
        mngr.wait_until_finished()


def drop_after(workdir: str | os.PathLike, name: str, step: int) -> None:
    """Delete the checkpoints of `workdir/name` past `step` (a resumed run redoes them)."""
    if not Path(workdir, name).is_dir():
        return
    with manager(workdir, name) as mngr:
        for s in mngr.all_steps():
            if s > step:
                mngr.delete(s)


def load(workdir: str | os.PathLike, part: str, model_cls, train_cls,
         params_of: Callable, command: str, folders: tuple[str, ...] = ()):
    """(model config, params) of a workdir's `part`, the one loader of every network:
    the configs from config.json (`part`, `train_section(part)`), the params from the
    first of `folders` (default: `part`) that holds a checkpoint, shaped by
    params_of(model, train config) (traced abstractly). Where none does, an error naming
    `command`, which trains it."""
    model = section(workdir, part, model_cls)
    cfg = section(workdir, train_section(part), train_cls)
    target = jax.eval_shape(lambda: params_of(model, cfg))
    for folder in folders or (part,):
        if Path(workdir, folder).is_dir():
            params, _ = restore(workdir, folder, target, item="params")
            if params is not None:
                return model, params
    raise ValueError(f"{workdir} has no {part} checkpoint; run python -m {command} "
                     f"--workdir {workdir}")


def restore(workdir: str | os.PathLike, name: str, target, item: str = "state"):
    """(tree, step) of the newest checkpoint in `workdir/name`, shaped like `target`.

    `item` is "state" (to resume training) or "params" (to evaluate). Abstract leaves of
    `target` (from jax.eval_shape) are restored onto this process's first device, whatever
    the device count that saved them; callers replicate or shard from there.
    Returns (None, 0) when there is no checkpoint yet.
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)
        if isinstance(x, jax.ShapeDtypeStruct) else x, target)
    with manager(workdir, name) as mngr:
        step = mngr.latest_step()
        if step is None:
            return None, 0
        where = Path(mngr.directory, str(step))
        if not (where / item).is_dir():
            raise ValueError(f"checkpoint {where} has no '{item}' (a shipped checkpoint holds "
                             "parameters only and cannot resume)")
        try:
            stored = mngr.item_metadata(step)[item]
        except Exception as e:  # TensorStore / Orbax on damaged files: any error type
            raise _unreadable(where, e) from e
        _check_shapes(stored, target, where)
        try:
            restored = mngr.restore(step, args=ocp.args.Composite(
                **{item: ocp.args.StandardRestore(target)}))
        except Exception as e:
            raise _unreadable(where, e) from e
    return restored[item], step


def _unreadable(where: Path, e: Exception) -> ValueError:
    first = (str(e).strip().splitlines() or [""])[0][:160]
    return ValueError(f"checkpoint {where} cannot be read ({type(e).__name__}: {first}). If it "
                      f"is damaged, move it aside (mv {where} {where}.damaged) and rerun to use "
                      "the previous checkpoint")


def _check_shapes(stored, target, where: Path) -> None:
    """Refuse a checkpoint whose arrays do not match the networks config.json describes."""
    def name(key) -> str:  # Orbax stores every container as a dict of str keys
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                return str(getattr(key, attr))
        return str(key)

    def shapes(tree):
        return {"/".join(name(k) for k in path): tuple(leaf.shape)
                for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
                if hasattr(leaf, "shape")}

    want, have = shapes(target), shapes(stored)
    diff = sorted(k for k in want if want[k] != have.get(k))
    if diff:
        k = diff[0]
        raise ValueError(
            f"checkpoint {where} does not match the networks in {where.parent.parent}/"
            f"{CONFIG_FILE}: {len(diff)} arrays differ, e.g. {k} is {have.get(k)} in the "
            f"checkpoint but {want.get(k)} in the config (was config.json edited, or the "
            "checkpoint copied from another run?)")
