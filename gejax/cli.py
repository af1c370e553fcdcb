"""What every command shares: config flags, and user mistakes as one line, not a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import jax

from gejax import parallel
from gejax.training import DivergedError

# Where compiled programs are kept between runs, unless JAX_COMPILATION_CACHE_DIR says.
CACHE = Path.home() / ".cache" / "gejax" / "xla"


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, *, skip=()) -> None:
    """One `--field` flag per field of the config dataclass `cls`, default None (= keep)."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = f.type if isinstance(f.type, type) else {"int": int, "float": float,
                                                         "str": str}.get(str(f.type), str)
        parser.add_argument(f"--{f.name}", type=kind, default=None,
                            help=f"{cls.__name__}.{f.name} (default {f.default})")


def given(cls, args: argparse.Namespace) -> dict:
    """The fields of the config dataclass `cls` that the user set on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def override(config, args: argparse.Namespace):
    """`config` with the fields the user set on the command line replaced."""
    return dataclasses.replace(config, **given(config, args))


def _quiet_closed_event_loop(unraisable) -> None:
    """Drop one known-harmless report, pass on the rest.

    After a failed checkpoint read, TensorStore's callbacks keep arriving on an asyncio
    loop that Orbax has closed, and each would print "Event loop is closed"; the failure
    itself is reported once, as our own error.
    """
    if not (unraisable.exc_type is RuntimeError
            and str(unraisable.exc_value) == "Event loop is closed"):
        sys.__unraisablehook__(unraisable)


def main(run: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser) -> None:
    """Parse flags and run; a user mistake or a diverged run exits 2 with its message only."""
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    multi = parser.add_argument_group(
        "multi-host (run the same command on every host; see README)")
    multi.add_argument("--distributed", action="store_true",
                       help="join a multi-host run (jax.distributed.initialize); without the "
                            "three flags below, SLURM / Open MPI / Cloud TPU are auto-detected")
    multi.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    multi.add_argument("--num_processes", type=int, default=None)
    multi.add_argument("--process_id", type=int, default=None)
    args = parser.parse_args()
    sys.unraisablehook = _quiet_closed_event_loop
    if not jax.config.jax_compilation_cache_dir:
        # Compiled XLA programs persist between runs (JAX's own cache): on CPU the
        # solver's programs take seconds to compile, as long as many of its steps.
        jax.config.update("jax_compilation_cache_dir", str(CACHE))
    try:
        hosts = (args.coordinator_address, args.num_processes, args.process_id)
        if args.distributed or any(v is not None for v in hosts):
            parallel.initialize(*hosts)
        run(args)
    except (ValueError, OSError, DivergedError) as e:
        if args.debug:
            raise
        message = " ".join(str(e).split())  # one line, even for multi-line library messages
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
