"""``python -m local_knative faults --data-dir DIR COMMAND``: script the faults of a running server.

Commands print JSON on stdout: ``status``, ``add`` (flags or ``--json RULE``), ``load FILE [--seed N]``,
``remove ID``, ``clear`` and ``kill --namespace NS --revision REV [--pod POD] [--signal KILL|TERM]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from local_knative.faults.client import FaultClient, FaultClientError
from local_knative.faults.rules import LAYERS


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_fault_commands(parser: argparse.ArgumentParser) -> None:
    """Add the ``faults`` sub-commands to ``parser``."""
    parser.add_argument("--data-dir", required=True, type=Path, help="the --data-dir of the running server")
    commands = parser.add_subparsers(dest="fault_command", required=True)
    commands.add_parser("status", help="print the seed, the rules with their counters and what fired")
    add = commands.add_parser("add", help="add one rule; prints it with its id")
    add.add_argument("--json", dest="rule_json", help="the whole rule as JSON (flags below add to it)")
    add.add_argument("--id")
    add.add_argument("--layer", choices=LAYERS)
    for name in ("verbs", "resources", "namespaces", "names", "revisions", "paths"):
        add.add_argument(f"--{name}", type=_csv, help="comma-separated")
    add.add_argument("--probability", type=float)
    add.add_argument("--after", type=int, help="let the first N matching requests through")
    add.add_argument("--count", type=int, help="fire at most N times")
    add.add_argument("--delay", type=float, help="seconds added before the answer")
    add.add_argument("--error", type=int, help="HTTP status to answer (e.g. 500, 503, 429, 409, 504)")
    add.add_argument("--retry-after", type=int, help="Retry-After seconds (default 1 with --error 429)")
    add.add_argument("--message")
    add.add_argument("--reset", action="store_true", default=None, help="drop the connection, no answer")
    add.add_argument("--watch-events", type=int, help="cut watch streams after N events")
    add.add_argument(
        "--period", type=float, help="layer readiness: seconds NotReady, then as long Ready, ..."
    )
    add.add_argument("--duration", type=float, help="layer readiness: stop flapping after this many seconds")
    load = commands.add_parser("load", help="replace every rule with a YAML/JSON file {seed, rules}")
    load.add_argument("file", type=Path)
    load.add_argument("--seed", type=int)
    remove = commands.add_parser("remove", help="remove one rule")
    remove.add_argument("id")
    commands.add_parser("clear", help="remove every rule")
    kill = commands.add_parser("kill", help="kill the pod processes of a revision")
    kill.add_argument("--namespace", required=True)
    kill.add_argument("--revision", required=True)
    kill.add_argument("--pod")
    kill.add_argument("--signal", default="KILL")


def _rule(args: argparse.Namespace) -> dict[str, Any]:
    rule: dict[str, Any] = json.loads(args.rule_json) if args.rule_json else {}
    for key in ("id", "layer", "verbs", "resources", "namespaces", "names", "revisions", "paths"):
        if getattr(args, key) is not None:
            rule[key] = getattr(args, key)
    for key in (
        "probability",
        "after",
        "count",
        "delay",
        "error",
        "retry_after",
        "message",
        "reset",
        "period",
        "duration",
    ):
        if getattr(args, key) is not None:
            rule[{"retry_after": "retryAfter"}.get(key, key)] = getattr(args, key)
    if args.watch_events is not None:
        rule["watchEvents"] = args.watch_events
    return rule


def run_faults(args: argparse.Namespace) -> int:
    """Run one ``faults`` command; return the exit code (1 when the server refused it)."""
    try:
        client = FaultClient.from_data_dir(args.data_dir)
        command = args.fault_command
        result: Any
        if command == "status":
            result = client.status()
        elif command == "add":
            result = client.add(_rule(args))
        elif command == "load":
            document = yaml.safe_load(args.file.read_text()) or {}
            seed = args.seed if args.seed is not None else document.get("seed")
            result = client.replace(document.get("rules") or [], seed=seed)
        elif command == "remove":
            client.remove(args.id)
            result = client.status()
        elif command == "clear":
            client.clear()
            result = client.status()
        else:
            result = {"killed": client.kill(args.namespace, args.revision, pod=args.pod, signal=args.signal)}
    except (FaultClientError, OSError, ValueError, yaml.YAMLError) as error:
        print(f"python -m local_knative faults: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
