"""What every command shares: config flags, and user mistakes as one line, not a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable

from gejax.training import DivergedError


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, *, skip=()) -> None:
    """One `--field` flag per field of the config dataclass `cls`, default None (= keep)."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = f.type if isinstance(f.type, type) else {"int": int, "float": float,
                                                         "str": str}.get(str(f.type), str)
        parser.add_argument(f"--{f.name}", type=kind, default=None,
                            help=f"{cls.__name__}.{f.name} (default {f.default})")


def override(config, args: argparse.Namespace):
    """`config` with the fields the user set on the command line replaced."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(config)
             if getattr(args, f.name, None) is not None}
    return dataclasses.replace(config, **given)


def main(run: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser) -> None:
    """Parse flags and run; a user mistake or a diverged run exits 2 with its message only."""
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args()
    try:
        run(args)
    except (ValueError, OSError, DivergedError) as e:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
