"""Command line: ``python -m local_knative serve --data-dir DIR [...]``."""

from __future__ import annotations

import argparse
import logging
import sys

from local_knative import server


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(
        prog="python -m local_knative",
        description="A Knative Serving compatible cluster on one machine, with no Docker.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API server, controller, runtime and ingress")
    server.add_serve_arguments(serve)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return server.run(args)


if __name__ == "__main__":
    sys.exit(main())
