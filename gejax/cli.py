"""What every command shares: flags generated from its settings dataclass by tyro (field
docstrings are the help), the multi-host flags, and user mistakes as one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import jax
import tyro

from gejax import parallel
from gejax.validate import DivergedError

# Where compiled programs are kept between runs, unless JAX_COMPILATION_CACHE_DIR says.
CACHE = Path.home() / ".cache" / "gejax" / "xla"

S = TypeVar("S")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Flags of every command: tracebacks, and joining a multi-host run (see README)."""

    debug: bool = False
    """show full tracebacks"""
    distributed: bool = False
    """join a multi-host run (jax.distributed.initialize); without the three flags below,
    SLURM / Open MPI / Cloud TPU are auto-detected"""
    coordinator_address: str | None = None
    """host:port of process 0"""
    num_processes: int | None = None
    process_id: int | None = None


def peek(settings: type, argv: list[str]) -> dict[str, str | None]:
    """The values of `settings`' top-level str fields on the command line, before parsing
    it all: a command whose defaults depend on its workdir reads them from here."""
    p = argparse.ArgumentParser(add_help=False)
    for f in dataclasses.fields(settings):
        if f.type in (str, "str", "str | None"):
            p.add_argument(f"--{f.name}")
    return vars(p.parse_known_args(argv)[0])


def parse(settings: type[S], argv: list[str], *, prog: str, default: S | None = None
          ) -> tuple[S, Runtime]:
    """(settings, runtime) from argv; `default` replaces the dataclass defaults (a
    field set to tyro.MISSING stays required). Exits 2 with tyro's message on a flag
    that does not parse."""
    args = dataclasses.make_dataclass("Args", [("settings", settings),
                                               ("runtime", Runtime, Runtime())])
    out = tyro.cli(args, args=argv, prog=prog, description=settings.__doc__,
                   default=None if default is None else args(default, Runtime()),
                   use_underscores=True, config=(tyro.conf.OmitArgPrefixes,))
    return out.settings, out.runtime


def _quiet_closed_event_loop(unraisable) -> None:
    """Drop one known-harmless report, pass on the rest.

    After a failed checkpoint read, TensorStore's callbacks keep arriving on an asyncio
    loop that Orbax has closed, and each would print "Event loop is closed"; the failure
    itself is reported once, as our own error.
    """
    if not (unraisable.exc_type is RuntimeError
            and str(unraisable.exc_value) == "Event loop is closed"):
        sys.__unraisablehook__(unraisable)


@dataclasses.dataclass(frozen=True)
class Command:
    """An entry point: flags parsed into `settings`, then `run(settings)`.

    `defaults(peeked)`, if given, builds the default settings from the top-level str
    flags (e.g. a workdir's stored configs).
    """

    prog: str
    run: Callable
    settings: type
    defaults: Callable[[dict], object] | None = None

    def call(self, argv: list[str]) -> None:
        """Parse argv and run; errors propagate (tests, and `main`)."""
        argv = [str(a) for a in argv]
        default = self.defaults(peek(self.settings, argv)) if self.defaults else None
        chosen, runtime = parse(self.settings, argv, prog=self.prog, default=default)
        hosts = (runtime.coordinator_address, runtime.num_processes, runtime.process_id)
        if runtime.distributed or any(v is not None for v in hosts):
            parallel.initialize(*hosts)
        self.run(chosen)

    def main(self, argv: list[str] | None = None) -> None:
        """`call` on sys.argv; a user mistake or a diverged run exits 2 with its message
        on one line (`--debug`: the traceback)."""
        argv = sys.argv[1:] if argv is None else argv
        sys.unraisablehook = _quiet_closed_event_loop
        if not jax.config.jax_compilation_cache_dir:
            # Compiled XLA programs persist between runs (JAX's own cache): on CPU the
            # solver's programs take seconds to compile, as long as many of its steps.
            jax.config.update("jax_compilation_cache_dir", str(CACHE))
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            # Also those under JAX's default 1 s (the starts, the final pick, small ops),
            # which every process otherwise compiles anew, wherever the cache is.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        try:
            self.call(argv)
        except (ValueError, OSError, DivergedError) as e:
            if "--debug" in argv:
                raise
            message = " ".join(str(e).split())  # one line, even for multi-line messages
            print(f"{self.prog}: error: {message}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print(f"{self.prog}: interrupted; rerun the same command to resume", file=sys.stderr)
            sys.exit(130)
