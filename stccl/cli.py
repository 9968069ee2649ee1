"""`stccl` command line: one sub-command per task, each defined beside its code.

Each module listed in `COMMANDS` exposes `add_cli(subparsers)`, which adds its
sub-command(s) with `set_defaults(func=handler)`; a handler takes the parsed
args and returns an exit status (or None for 0). Only the module of the command
being run is imported, so `stccl pairs` does not pay for torch-heavy modules it
never uses. A StcclError becomes a one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from stccl.io import StcclError

# command -> (module that defines it, one-line help shown by `stccl --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("stccl.data.synth", "render the embedded synthetic paired talking-face dataset"),
    "pairs": ("stccl.data.mead", "summarise an alignment file (actors, pairs, windows per split)"),
    "train-metric": ("stccl.core.train_metric", "train the STCCL metric network"),
    "pretrain-backbone": ("stccl.core.pretrain", "pretrain the metric's IResNet on identity classification (ArcFace margin)"),
    "diagnose": ("stccl.core.diagnose", "pos/neg cosine similarity of spatial and temporal correlations"),
    "train-spfem": ("stccl.spfem.train", "train the SPFEM generator, with or without STCCL"),
    "aux-nets": ("stccl.spfem.aux_nets", "train the frozen auxiliary nets (emotion, identity, mouth) ahead of time"),
    "evaluate": ("stccl.spfem.evaluate", "evaluate an SPFEM run against synthetic ground truth"),
    "compare": ("stccl.spfem.evaluate", "compare evaluated SPFEM runs (mean and std over seeds)"),
    "prep-video": ("stccl.real.prep", "detect, align and crop faces of one video into the MEAD layout"),
    "prep-mead": ("stccl.real.prep", "prepare a raw MEAD-style tree of videos"),
    "align": ("stccl.real.pairing", "DTW alignment file (official format) for a prepared root"),
    "eval-clips": ("stccl.real.published_clips", "evaluate published SPFEM outputs on real side-by-side clips"),
    "calibrate": ("stccl.real.calibration", "landmark statistics of real vs synthetic clips (renderer calibration)"),
    "reproduce": ("stccl.pipeline.runner", "run the notebooks with papermill from a params file"),
    "publish-checkpoint": ("stccl.checkpoints", "copy a finished run's weights into checkpoints/ with a model card"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser for `command`, or an overview parser listing every command."""
    parser = argparse.ArgumentParser(prog="stccl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command in COMMANDS:
        importlib.import_module(COMMANDS[command][0]).add_cli(sub)
    else:
        for name, (_, help_text) in COMMANDS.items():
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        status = args.func(args)
    except StcclError as exc:
        one_line = " ".join(str(exc).split())  # a message is one line, even a YAML parser's
        print(f"stccl {args.command}: error: {one_line}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print(f"stccl {args.command}: interrupted", file=sys.stderr)
        status = 130
    else:
        status = int(status or 0)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a torchrun worker (torch is loaded by now)
        from stccl.distributed import exit_without_teardown

        exit_without_teardown(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
