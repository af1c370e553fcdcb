"""The training loop that train.began, train.ae and train.init share: jitted steps, data
parallel over devices, progress bar, TensorBoard, atomic Orbax checkpoints, resume.

The batch is a pure function of the step and the step's randomness is
`fold_in(key, step)`, so a resumed run sees exactly the data and random numbers of an
uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gejax import checkpoint, parallel
from gejax.validate import DivergedError

# {name: [[step, seconds], ...]}: the training seconds of each run at each of its
# checkpoints, summed over resumed runs (what `--minutes` budgets count).
SECONDS_FILE = "train_seconds.json"


def batch_indices(step: int, num_examples: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices of the batch of `step`: a fresh seeded permutation of the data every epoch."""
    per_epoch = max(1, num_examples // batch_size)
    epoch, i = divmod(step, per_epoch)
    order = np.random.default_rng((seed, epoch)).permutation(num_examples)
    if num_examples < batch_size:  # tiny test data: draw with replacement
        return np.resize(order, batch_size)
    return order[i * batch_size:(i + 1) * batch_size]


def _all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree))


def seconds_ledger(workdir: str) -> dict[str, list[list[float]]]:
    """The workdir's `SECONDS_FILE` ({} before any checkpoint)."""
    path = Path(workdir, SECONDS_FILE)
    return json.loads(path.read_text()) if path.exists() else {}


def trained_seconds(workdir: str, name: str, upto: int | None = None) -> float:
    """Training seconds of run `name` up to its checkpoint at step `upto` (default: the
    newest record), over every process that trained it; 0 before its first checkpoint."""
    records = [r for r in seconds_ledger(workdir).get(name, []) if upto is None or r[0] <= upto]
    return records[-1][1] if records else 0.0


def _record_seconds(workdir: str, name: str, step: int, seconds: float) -> None:
    """Append (step, seconds) to run `name`'s ledger, dropping records past `step` (a
    resumed run redoes them)."""
    ledger = seconds_ledger(workdir)
    ledger[name] = [r for r in ledger.get(name, []) if r[0] < step] + [[step, round(seconds, 1)]]
    checkpoint.write_text_atomic(Path(workdir, SECONDS_FILE), json.dumps(ledger))


def run_loop(*, name: str, workdir: str, state, step_fn, images, cfg,
             on_checkpoint, params_of, postfix_keys: tuple[str, ...], start: int,
             monitor=None, stop: Callable[[], bool] | None = None) -> Any:
    """The shared loop: jitted steps, progress bar, TensorBoard, atomic Orbax checkpoints.

    With several devices the batch is split over all of them (data parallel, parameters
    replicated; `jax.jit` inserts the gradient all-reduce), and with several hosts each
    process loads only its share of every batch. Process 0 alone logs and writes samples.
    `monitor(state, step)`, if given, runs on process 0 every `cfg.monitor_every` steps
    and at the end; the scalars it returns go to TensorBoard and the progress line.
    `images` (an (N, H, W, C) array or a data.Images) is read one batch at a time.

    `stop()`, if given, is asked before every step (train.all's budget): once it says
    True the loop checkpoints (and monitors) the step it reached as it would the last. A
    run with no step yet takes one first, so that there is a network to load. The
    training seconds of every checkpoint, summed over resumed runs, go to SECONDS_FILE.
    """
    from tensorboardX import SummaryWriter

    def train_step(state, batch, step):
        # The key is made inside the program from the step: nothing host-specific is passed.
        return step_fn(state, batch, jax.random.fold_in(jax.random.key(cfg.seed), step))

    jitted = jax.jit(train_step, donate_argnums=0)
    mesh = parallel.default_mesh()
    if mesh is not None:
        parallel.check_divisible(cfg.batch_size, mesh, "batch_size")
        state = parallel.put(state, mesh)
    primary = parallel.is_primary()
    writer = SummaryWriter(str(Path(workdir, "tb", name))) if primary else None
    mngr = checkpoint.manager(workdir, name)
    # With `stop` the steps are not known in advance (train.all gives a cap, not a goal).
    bar = tqdm(total=None if stop is not None else cfg.steps, initial=start, desc=name,
               unit="step", dynamic_ncols=True, disable=not primary)
    shown: dict[str, str] = {}
    offset, t0 = trained_seconds(workdir, name, start), time.perf_counter()

    def spent() -> float:
        return offset + time.perf_counter() - t0

    def save(state, done: int) -> None:
        # A step's loss is computed before its update, so NaN parameters can precede the
        # first NaN loss: never let them into a checkpoint.
        if not _all_finite(params_of(state)):
            raise DivergedError(
                f"{name}: non-finite parameters after step {done}; the last good "
                f"checkpoint in {Path(workdir, name)} is kept")
        checkpoint.save(mngr, done, state, params_of(state))
        if primary:
            _record_seconds(workdir, name, done, spent())
            on_checkpoint(state, done)

    def observe(state, done: int) -> None:
        for k, v in monitor(state, done).items():
            writer.add_scalar(f"{name}/{k}", v, done)
            shown[k] = f"{v:.5f}"
        bar.set_postfix(shown)

    done = start
    try:
        for step in range(start, cfg.steps):
            if stop is not None and step > 0 and stop():
                break
            rows = batch_indices(step, len(images), cfg.batch_size, cfg.seed)
            if mesh is None:
                batch = images[rows]
            else:
                batch = parallel.shard_process_local(
                    images[rows[parallel.process_rows(len(rows))]], mesh)
            state, metrics = jitted(state, batch, np.int32(step))
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                values = {k: float(v) for k, v in metrics.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise DivergedError(
                        f"{name}: non-finite loss at step {done} ({values}); the last good "
                        f"checkpoint in {Path(workdir, name)} is kept")
                if writer is not None:
                    for k, v in values.items():
                        writer.add_scalar(f"{name}/{k}", v, done)
                shown.update({k: f"{values[k]:.4f}" for k in postfix_keys})
                bar.set_postfix(shown)
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                save(state, done)
            if monitor is not None and primary and (done % cfg.monitor_every == 0
                                                    or done == cfg.steps):
                observe(state, done)
        if start < done < cfg.steps:  # stopped: the step reached is kept as the last would be
            if done % cfg.checkpoint_every:
                save(state, done)
            if monitor is not None and primary and done % cfg.monitor_every:
                observe(state, done)
        mngr.wait_until_finished()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        mngr.close()
    return state


def fit(workdir: str, name: str, state, step_fn, images, cfg, postfix_keys: tuple[str, ...],
        stop: Callable[[], bool] | None = None, *, params_of=lambda s: s.params,
        on_checkpoint=lambda s, step: None, monitor_from=None):
    """Resume `state` from the newest checkpoint `name` of the workdir, then train it to
    `cfg.steps` (or until `stop()`) with `run_loop` (every train.* command).
    `monitor_from(start)`, if given, builds run_loop's monitor once the step resumed from
    is known."""
    restored, start = checkpoint.restore(workdir, name, state)
    if restored is not None:
        state = restored
        print(f"resuming from step {start}")
    if start >= cfg.steps:
        print(f"already trained to step {start} >= --steps {cfg.steps}; nothing to do")
        return state
    return run_loop(name=name, workdir=workdir, state=state, step_fn=step_fn, images=images,
                    cfg=cfg, start=start, postfix_keys=postfix_keys, params_of=params_of,
                    on_checkpoint=on_checkpoint,
                    monitor=None if monitor_from is None else monitor_from(start), stop=stop)
