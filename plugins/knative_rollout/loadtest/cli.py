"""Command line: ``python -m knative_rollout.loadtest --url URL --rate R --duration 30s --json OUT``.

Exit codes: 0 the SLO held, 1 it was violated, 2 the command line or a file it names was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from knative_rollout.loadtest.engine import IntervalStats, LoadTestConfig, LoadTestConfigError, run_load_test
from knative_rollout.loadtest.report import judge, render_plot, report_json
from knative_rollout.loadtest.schedule import Stage, parse_duration
from knative_rollout.loadtest.slo import Slo, SloSyntaxError

EXIT_PASSED = 0
EXIT_SLO_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The command line cannot be run as given."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m knative_rollout.loadtest",
        description="Open-model HTTP load test with honest (coordinated-omission-free) percentiles.",
        epilog="Exit codes: 0 SLO passed, 1 SLO failed, 2 usage error.",
    )
    parser.add_argument("--url", required=True, help="URL to send requests to")
    parser.add_argument(
        "--rate", type=float, help="requests per second (open model: required unless --stage)"
    )
    parser.add_argument("--duration", default="30s", help="how long to send, e.g. 30s, 2m (default 30s)")
    parser.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="DUR:RATE[..RATE]",
        help="a profile stage instead of --rate/--duration, repeatable: 30s:100 holds, 1m:10..200 ramps",
    )
    parser.add_argument(
        "--model",
        choices=("open", "closed"),
        default="open",
        help="open: fixed schedule (default); closed: --concurrency workers in a loop",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=100,
        help="most connections at once (open) or number of workers (closed); default 100",
    )
    parser.add_argument("--timeout", default="10s", help="per-request timeout from its scheduled start")
    parser.add_argument("--method", help="HTTP method (default GET, or POST with --body/--payloads)")
    parser.add_argument(
        "--host", help="Host header, e.g. a Knative tag host when --connect-to is the ingress"
    )
    parser.add_argument("--connect-to", metavar="HOST:PORT", help="connect here instead of the URL's host")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="extra header")
    parser.add_argument("--body", type=Path, help="file holding the request body")
    parser.add_argument(
        "--payloads", type=Path, help="JSON Lines file: one request body per line, used in turn"
    )
    parser.add_argument(
        "--expect-status", help="comma-separated statuses that count as success (default <400)"
    )
    parser.add_argument("--expect-json-field", help="top-level field every JSON response must contain")
    parser.add_argument("--slo", help="thresholds, e.g. p99<=200ms,error_rate<=0.01,achieved_rate>=95")
    parser.add_argument("--json", type=Path, help="write the JSON report here")
    parser.add_argument("--plot", type=Path, help="write the PNG latency plot here")
    parser.add_argument("--progress-interval", default="1s", help="progress line period (default 1s)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _read_bodies(args: argparse.Namespace) -> tuple[bytes, ...]:
    if args.body and args.payloads:
        raise UsageError("give --body or --payloads, not both")
    try:
        if args.body:
            return (args.body.read_bytes(),)
        if args.payloads:
            lines = [line for line in args.payloads.read_bytes().splitlines() if line.strip()]
            if not lines:
                raise UsageError(f"--payloads file {args.payloads} has no lines")
            return tuple(lines)
    except OSError as exc:
        raise UsageError(f"cannot read request bodies: {exc}") from exc
    return ()


def config_from_args(args: argparse.Namespace) -> LoadTestConfig:
    """Return the load test the command line describes (raises UsageError with what to fix)."""
    headers = []
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {header!r} is not NAME:VALUE")
        headers.append((name.strip(), value.strip()))
    try:
        expect_status = (
            tuple(int(code) for code in args.expect_status.split(",")) if args.expect_status else ()
        )
    except ValueError:
        raise UsageError(
            f"--expect-status {args.expect_status!r} is not a comma-separated list of codes"
        ) from None
    try:
        return LoadTestConfig(
            url=args.url,
            rate=args.rate,
            duration_s=parse_duration(args.duration),
            stages=tuple(Stage.parse(stage) for stage in args.stage),
            model=args.model,
            concurrency=args.concurrency,
            timeout_s=parse_duration(args.timeout),
            method=args.method.upper() if args.method else None,
            host=args.host,
            connect_to=args.connect_to,
            headers=tuple(headers),
            bodies=_read_bodies(args),
            expect_status=expect_status,
            expect_json_field=args.expect_json_field,
            progress_interval_s=parse_duration(args.progress_interval),
        )
    except (LoadTestConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        slo = Slo.parse(args.slo)
    except (UsageError, SloSyntaxError) as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def progress(stats: IntervalStats) -> None:
        print(stats.line(), file=sys.stderr, flush=True)

    result = asyncio.run(run_load_test(config, on_progress=None if args.quiet else progress))
    verdict, report = judge(config, result, slo)
    try:
        if args.json:
            args.json.write_text(report_json(report))
        if args.plot:
            args.plot.write_bytes(render_plot(result, f"{config.model} model, {config.url}"))
    except OSError as exc:
        print(f"{parser.prog}: error: cannot write the report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    headline = {
        key: report[key] for key in ("requests", "completed", "achieved_rate", "errors", "latency_ms")
    }
    print(json.dumps(headline))
    print(verdict.explain())
    return EXIT_PASSED if verdict.passed else EXIT_SLO_FAILED
