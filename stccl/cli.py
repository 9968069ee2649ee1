"""`stccl` command line: one sub-command per task, each defined beside its code.

Every module in `_COMMAND_MODULES` exposes `add_cli(subparsers)`, which adds its
sub-command(s) with `set_defaults(func=handler)`; a handler takes the parsed
args and returns an exit status (or None for 0). A StcclError becomes a one-line
message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stccl.io import StcclError

_COMMAND_MODULES = [
    "stccl.synth",        # stccl synth
    "stccl.data",         # stccl pairs
    "stccl.train_metric", # stccl train-metric
    "stccl.diagnose",     # stccl diagnose
    "stccl.train_spfem",  # stccl train-spfem
    "stccl.evaluate",     # stccl evaluate, stccl compare
    "stccl.prep",         # stccl prep-video, stccl prep-mead, stccl align
    "stccl.real_eval",    # stccl eval-clips
    "stccl.reproduce",    # stccl reproduce
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stccl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # module not written yet: its commands are simply absent
                continue
            raise
        module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        status = args.func(args)
    except StcclError as exc:
        print(f"stccl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stccl {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
