"""`dla-perception`: one console script, one module per subcommand.

Each module in SUBCOMMANDS exposes `register(subparsers)`, which adds its parser and sets `handler`
(a function taking the parsed args and returning an exit code). Modules import their heavy dependencies
inside the handler so that `dla-perception --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dla_perception import __version__

SUBCOMMANDS = (
    "dla_perception.tools.build_engine",
    "dla_perception.tools.devices",
    "dla_perception.tools.doctor",
    "dla_perception.tools.detect",
    "dla_perception.tools.dla_check",
    "dla_perception.tools.make_bag",
    "dla_perception.tools.quantize",
    "dla_perception.tools.replay",
    "dla_perception.tools.demo",
    "dla_perception.tools.plan",
)


class UsageError(Exception):
    """A problem the user can fix (bad path, missing dependency): printed without a traceback, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dla-perception",
        description="DLA-first robot perception: engines, models, bags and replay.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"dla-perception {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
