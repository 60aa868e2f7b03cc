"""Command line: ``python -m local_knative serve --data-dir DIR [...]`` and ``... faults --data-dir DIR ...``.

Bad input ends the process with exit code 2 and one line on stderr (``PROG: error: WHAT; WHAT TO DO``),
never a traceback, whether argparse or :func:`local_knative.server.prepare` finds it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from local_knative import server
from local_knative.faults import cli as faults_cli

USAGE_ERROR = 2  # argparse's exit code for bad input
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points to ``--help``, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line and exit with :data:`USAGE_ERROR`."""
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = _OneLineErrorParser(
        prog="python -m local_knative",
        description="A Knative Serving compatible cluster on one machine, with no Docker.",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="logging level (default INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API server, controller, runtime and ingress")
    server.add_serve_arguments(serve)
    faults = commands.add_parser(
        "faults", help="script the faults of a running server (needs --fault-injection)"
    )
    faults_cli.add_fault_commands(faults)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "faults":
        return faults_cli.run_faults(args)
    try:
        return server.run(args)
    except server.ServeError as error:
        # Some causes (a YAML parser's report) span lines; the error stays one line.
        print(f"{serve.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
