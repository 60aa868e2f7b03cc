"""Command line: ``python -m knative_rollout.loadtest --url URL --rate R --duration 30s --json OUT``.

Exit codes: 0 the gate passed, 1 it failed (a threshold was violated, or no request succeeded), 2 the
command line or a file it names was wrong, 3 the measurement was inconclusive (no request was answered)
and ``--allow-inconclusive`` was not given. A report or plot that cannot be written is a warning on
standard error, not a failure: the verdict on standard output and the exit code stand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from knative_rollout.loadtest.engine import (
    DEFAULT_WARMUP_S,
    IntervalStats,
    LoadTestConfig,
    LoadTestConfigError,
    Warmup,
    run_load_test,
)
from knative_rollout.loadtest.report import judge, render_plot, report_json
from knative_rollout.loadtest.schedule import Stage, parse_duration
from knative_rollout.loadtest.slo import Slo, SloSyntaxError, Verdict

EXIT_PASSED = 0
EXIT_SLO_FAILED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3


class UsageError(Exception):
    """The command line cannot be run as given."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m knative_rollout.loadtest",
        description="Open-model HTTP load test with honest (coordinated-omission-free) percentiles.",
        epilog=(
            "Exit codes: 0 gate passed, 1 gate failed, 2 usage error, 3 inconclusive (no request answered)."
            " SLO latencies (p50 ... p999, max, mean) are of all requests, timeouts counted at no less than"
            " --timeout; ok_p50 ... ok_mean are of successful requests only."
        ),
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
    parser.add_argument(
        "--warmup",
        default=f"{DEFAULT_WARMUP_S:g}s",
        help="before measuring, send one request at a time until one succeeds, for at most this long"
        f" (a revision scaled to zero starts first); 0 turns it off (default {DEFAULT_WARMUP_S:g}s)",
    )
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
    parser.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help="pass the gate (exit 0) when no request was answered; by default that fails it (exit 3)",
    )
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
            warmup_s=parse_duration(args.warmup, allow_zero=True),
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

    def warmed_up(warmup: Warmup) -> None:
        if not (args.quiet and warmup.succeeded):  # running out is worth saying even when quiet
            print(warmup.line(), file=sys.stderr, flush=True)

    result = asyncio.run(
        run_load_test(config, on_progress=None if args.quiet else progress, on_warmup=warmed_up)
    )
    verdict, report = judge(config, result, slo, fail_on_inconclusive=not args.allow_inconclusive)
    headline = {key: report[key] for key in HEADLINE}
    print(json.dumps(headline))
    print(verdict.explain(), flush=True)
    if args.json:
        _write(parser.prog, "report", args.json, lambda: report_json(report).encode())
    if args.plot:
        _write(
            parser.prog, "plot", args.plot, lambda: render_plot(result, f"{config.model} model, {config.url}")
        )
    return exit_code(verdict)


HEADLINE = (
    "requests",
    "completed",
    "succeeded",
    "timeouts",
    "offered_rate",
    "achieved_rate",
    "errors",
    "latency_ms",
    "latency_ms_ok",
    "above_timeout",
    "warmup_s",
    "warmup_requests",
)


def exit_code(verdict: Verdict) -> int:
    """Return the exit code for ``verdict``."""
    if verdict.passed:
        return EXIT_PASSED
    return EXIT_INCONCLUSIVE if verdict.inconclusive is not None else EXIT_SLO_FAILED


def _write(prog: str, what: str, path: Path, content: Callable[[], bytes]) -> None:
    # The verdict is already out; a file that cannot be written, or a plot that cannot be drawn, must not
    # change it, so any failure here is a warning.
    try:
        path.write_bytes(content())
    except Exception as exc:
        print(f"{prog}: warning: cannot write the {what} to {path}: {exc}", file=sys.stderr)
