"""Benchmark the canary judge: detection and false rollbacks vs fixed thresholds as Flagger applies them.

Run: ``.venv/bin/python benchmarks/canary_judge/run.py [--trials 200] [--rates 5,20,100] [--seed 1]``
(four to five minutes on 2 shared cores, no cluster; ``calibrate.py`` made the latency model it draws from).

**Where the data comes from.** Each trial draws per-request latencies and errors from the model of
:mod:`benchmarks.canary_judge.model` (two lognormals, a body and a tail, fitted to the latency
histogram Knative's metrics recorded for the example model server on a real local_knative; errors
independent at ``--error-rate``) at a total request rate, 10 % of it to the canary and, "with a
baseline", 10 % to a baseline revision of the stable's spec; the stable takes the rest. The draws are
counted into Knative's latency buckets per ``--interval``, the per-interval series the metric
providers produce, and judged by the product's own code: :func:`knative_rollout.analysis.checks.evaluate`
(the judge), :func:`knative_rollout.analysis.checks.check_slo` (the fixed thresholds) and
:meth:`knative_rollout.policy.RolloutPlan.next_action` (what a verdict does). Drawing instead of
deploying is what makes 100+ trials per case fit in minutes; live, one table would take days.

**Cold start** (``--cold-start``, default 0.05): a new revision is that much slower than the warm stable
(fewer pods, cold caches), so the canary and the baseline share it and the stable does not. It is the
effect a baseline exists for; set 0 to see the judge against the stable without it.

**Cases.** ``identical`` (the canary is the stable's spec again), ``slower`` (every latency of the
canary x ``--slower`` 1.2: p99 +20 %), ``more errors`` (``--error-rate`` + ``--more-errors``: 0.5 % ->
1.5 %), and ``identical, warm``: identical without the cold start, to show what the knob does. The goal
counts ``identical`` (with the cold start) for false rollbacks.

**Contenders**, each on the same draws of a trial:

* ``requests judge, baseline``: our judge as the product runs it by default (``samples: "requests"``):
  its default metrics (latency, error rate critical) and Kayenta's confidence and tolerance on every
  request of the window, the latencies read back from the window's buckets and the errors pooled
  (Fisher's exact test, 0.2-point floor), canary vs the baseline, one verdict per ``--window`` (60 s,
  the product's default); an inconclusive window is measured again as the rollout does, up to
  ``--max-inconclusive`` (1, the product's default) times, then it is an inconclusive outcome.
* ``requests judge, stable``: the same against the stable revision (90 % of the traffic, warm); and both
  with ``--long-window`` (300 s; 0 leaves the long windows out).
* ``intervals judge, ...``: Kayenta's way (``samples: "intervals"``), one sample per ``--interval``
  (10 s) and revision: the p99 of the interval's buckets and its error rate; against the baseline, the
  stable, and the baseline with 300 s windows, to show what the window buys; and ``..., loose``: that
  with 90 % confidence, no tolerance band and no minimum p99 ratio (not the product's defaults; a DAG
  can set them in ``analysis={"metrics": [...]}``), to show what the judge's own knobs can reach; the
  same against the stable shows what the baseline is for once the judge is sensitive enough to see the
  cold start.
* ``Flagger, docs``: Flagger's builtin checks as its docs and Knative tutorial set them: every
  ``interval`` (1 m) request success rate >= 99 % and request duration p99 <= 500 ms over that minute
  (``histogram_quantile`` on the buckets; "no values found" is a failed check), rollback at
  ``threshold`` (5) failed checks, promotion after 5 passed ones (``stepWeight`` 10 up to
  ``maxWeight`` 50); here the weight stays at 10 %. Sources: https://docs.flagger.app/usage/metrics
  (the builtin checks and their example limits), the Canary examples of Flagger's docs (``interval: 1m``,
  ``threshold: 5``, ``maxWeight: 50``, ``stepWeight: 10``; the Knative tutorial analyses for five minutes,
  checking every minute) and fluxcd/flagger ``pkg/controller/scheduler_metrics.go`` (a query with no
  values fails the check).
* ``Flagger, tuned``: the same with the p99 limit at 1.1 x the stable's p99 as ``histogram_quantile``
  reads it from the buckets over a long time (in whole ms, as Flagger takes it): the best a fixed
  threshold can do when its author knows the service's p99 and the size of the regression to catch.

**Metrics** per contender, case and rate: rolled back (a failed verdict: detection for a regression,
a false rollback for ``identical``), promoted, inconclusive (no decision within the budget; the product
rolls back on it, as "inconclusive N times", which is not a judgement that the canary is worse), and
seconds of traffic to a decision (median, p90). Goal: at least 95 % detection with at most 5 % false
rollbacks. Results: ``benchmarks/results/canary_judge.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "include"), str(REPO / "plugins")]

from benchmarks.canary_judge.model import (  # noqa: E402
    BUCKETS_S,
    CALIBRATION,
    LatencyModel,
    Revision,
    draw_window,
)
from knative_rollout.analysis.checks import DEFAULT_METRICS, SLO, Samples, check_slo, evaluate  # noqa: E402
from knative_rollout.analysis.judge import MetricSpec  # noqa: E402
from knative_rollout.analysis.series import RevisionWindow, histogram_quantile  # noqa: E402
from knative_rollout.policy import ActionKind, RolloutPlan, Verdict  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
STEP = 10  # the canary's traffic percent
CASES = ("identical", "slower", "more errors", "identical, warm")
FLAGGERS = ("Flagger, docs", "Flagger, tuned")
OUTCOMES = ("rolled_back", "promoted", "inconclusive")
# The default metrics with a wider net, all of it settable in a DAG's analysis={"metrics": [...]}: 90 %
# confidence instead of Kayenta's 98 %, no tolerance band, no minimum p99 ratio.
LOOSE_METRICS = tuple(
    replace(spec, confidence=0.9, tolerance=0.0, allowed_increase=1.0) for spec in DEFAULT_METRICS
)
GOAL_DETECTION = 0.95
GOAL_FALSE_ROLLBACKS = 0.05


@dataclass(frozen=True)
class Settings:
    """One run's knobs (see the module docstring)."""

    trials: int = 200
    rates: tuple[float, ...] = (5.0, 20.0, 100.0)
    seed: int = 1
    canary_share: float = STEP / 100
    error_rate: float = 0.005
    cold_start: float = 0.05
    slower: float = 1.2
    more_errors: float = 0.01
    window: float = 60.0
    long_window: float = 300.0
    interval: float = 10.0
    max_inconclusive: int = 1
    schema: str = "opencensus"
    flagger_interval: float = 60.0
    flagger_threshold: int = 5
    flagger_passes: int = 5
    flagger_success_rate: float = 99.0
    flagger_p99_ms: float = 500.0
    tuned_factor: float = 1.1

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"interval={self.interval}; pass seconds above 0")
        for name in ("window", "long_window", "flagger_interval"):
            value = getattr(self, name)
            if value < 0 or (value == 0 and name != "long_window") or value % self.interval:
                raise ValueError(f"{name}={value}; pass a whole number of intervals of {self.interval:g} s")
        if self.trials < 1 or self.max_inconclusive < 0 or not self.rates or min(self.rates) <= 0:
            raise ValueError("pass trials >= 1, max_inconclusive >= 0 and rates above 0")
        if not 0 <= self.error_rate <= self.error_rate + self.more_errors <= 1:
            raise ValueError(
                f"error_rate={self.error_rate}, more_errors={self.more_errors}; pass rates in 0..1"
            )
        if self.cold_start < 0 or self.slower < 1 or self.schema not in BUCKETS_S:
            raise ValueError(f"pass cold_start >= 0, slower >= 1 and a schema in {sorted(BUCKETS_S)}")

    @property
    def judges(self) -> dict[str, tuple[str, float, tuple[MetricSpec, ...], Samples]]:
        """Return the judge contenders: name -> (compared with, window seconds, metrics, samples)."""
        requests, intervals = Samples.REQUESTS, Samples.INTERVALS
        long = f"{self.long_window:g} s windows"
        judges = {
            "requests judge, baseline": ("baseline", self.window, DEFAULT_METRICS, requests),
            "requests judge, stable": ("stable", self.window, DEFAULT_METRICS, requests),
        }
        if self.long_window:
            judges[f"requests judge, baseline, {long}"] = (
                "baseline",
                self.long_window,
                DEFAULT_METRICS,
                requests,
            )
            judges[f"requests judge, stable, {long}"] = (
                "stable",
                self.long_window,
                DEFAULT_METRICS,
                requests,
            )
        judges["intervals judge, baseline"] = ("baseline", self.window, DEFAULT_METRICS, intervals)
        judges["intervals judge, stable"] = ("stable", self.window, DEFAULT_METRICS, intervals)
        if self.long_window:
            name = f"intervals judge, baseline, {long}"
            judges[name] = ("baseline", self.long_window, DEFAULT_METRICS, intervals)
            judges[f"{name}, loose"] = ("baseline", self.long_window, LOOSE_METRICS, intervals)
            judges[f"intervals judge, stable, {long}, loose"] = (
                "stable",
                self.long_window,
                LOOSE_METRICS,
                intervals,
            )
        return judges

    @property
    def per_flagger_interval(self) -> int:
        """Return the intervals in one Flagger check."""
        return round(self.flagger_interval / self.interval)

    @property
    def intervals(self) -> int:
        """Return the intervals a trial draws: enough for the longest contender."""
        flagger = (self.flagger_threshold + self.flagger_passes - 1) * self.flagger_interval
        judge = (self.max_inconclusive + 1) * max(self.window, self.long_window)
        return round(max(flagger, judge) / self.interval)


def revisions(case: str, settings: Settings) -> dict[str, Revision]:
    """Return the canary, baseline and stable of ``case``."""
    cold = 1.0 if case == "identical, warm" else 1 + settings.cold_start
    slower = settings.slower if case == "slower" else 1.0
    errors = settings.error_rate + (settings.more_errors if case == "more errors" else 0.0)
    share = settings.canary_share
    return {
        "canary": Revision("canary", share, cold * slower, errors),
        "baseline": Revision("baseline", share, cold, settings.error_rate),
        # Without a baseline the stable serves all but the canary's share (with one it serves one share
        # less, but then nothing judges it).
        "stable": Revision("stable", 1 - share, 1.0, settings.error_rate),
    }


def part(window: RevisionWindow, start: int, count: int) -> RevisionWindow:
    """Return ``count`` intervals of ``window`` from ``start``."""
    return RevisionWindow(
        window.namespace, window.revision, window.schema, window.intervals[start : start + count]
    )


def judge_verdicts(
    canary: RevisionWindow,
    other: RevisionWindow,
    size: int,
    metrics: Sequence[MetricSpec],
    samples: Samples,
) -> Iterator[Verdict]:
    """Yield the judge's verdict of each consecutive window of ``size`` intervals, canary vs ``other``."""
    for start in range(0, len(canary.intervals) - size + 1, size):
        yield evaluate(
            part(canary, start, size), part(other, start, size), metrics=metrics, samples=samples
        ).verdict


def decide(verdicts: Iterator[Verdict], max_inconclusive: int) -> tuple[str, int]:
    """Return the rollout's outcome at the canary's step and the windows it took, as the policy decides."""
    plan = RolloutPlan.of([STEP], max_inconclusive=max_inconclusive)
    inconclusive = 0
    for used, verdict in enumerate(verdicts, start=1):
        action = plan.next_action(STEP, verdict, inconclusive)
        if action.kind is ActionKind.RETRY_GATE:
            inconclusive += 1
            continue
        if action.kind is ActionKind.ROLLBACK:
            return ("rolled_back" if verdict is Verdict.FAIL else "inconclusive", used)
        return "promoted", used
    raise AssertionError("unreachable: the verdicts end with a decisive one or at the last window")


def flagger(canary: RevisionWindow, slo: SLO, settings: Settings) -> tuple[str, int]:
    """Return Flagger's outcome and the checks it ran: rollback at ``threshold`` failed checks."""
    size = settings.per_flagger_interval
    failed = passed = 0
    for index in range(settings.flagger_threshold + settings.flagger_passes - 1):
        checks = check_slo(part(canary, index * size, size), slo)
        if all(check.verdict is Verdict.PASS for check in checks):
            passed += 1
        else:
            failed += 1
        if failed >= settings.flagger_threshold:
            return "rolled_back", index + 1
        if passed >= settings.flagger_passes:
            return "promoted", index + 1
    raise AssertionError("unreachable: threshold + passes - 1 checks always decide")


def trial(
    rng: np.random.Generator,
    case: str,
    rate: float,
    latency: LatencyModel,
    slos: dict[str, SLO],
    settings: Settings,
) -> dict[str, tuple[str, float]]:
    """Draw one trial of ``case`` and return each contender's (outcome, seconds of traffic)."""
    buckets = BUCKETS_S[settings.schema]
    windows = {
        name: draw_window(
            rng,
            revision,
            latency,
            total_rate=rate,
            interval=settings.interval,
            intervals=settings.intervals,
            buckets=buckets,
        )
        for name, revision in revisions(case, settings).items()
    }
    outcomes: dict[str, tuple[str, float]] = {}
    for contender, (other, window, metrics, samples) in settings.judges.items():
        size = round(window / settings.interval)
        outcome, used = decide(
            judge_verdicts(windows["canary"], windows[other], size, metrics, samples),
            settings.max_inconclusive,
        )
        outcomes[contender] = (outcome, used * window)
    for contender in FLAGGERS:
        outcome, used = flagger(windows["canary"], slos[contender], settings)
        outcomes[contender] = (outcome, used * settings.flagger_interval)
    return outcomes


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson score interval (95 %) of a proportion."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(results: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """Return the outcome counts, rates with intervals, and seconds to a decision of one cell."""
    counts = Counter(outcome for outcome, _ in results)
    decided = sorted(seconds for outcome, seconds in results if outcome != "inconclusive")
    trials = len(results)
    return {
        "trials": trials,
        **{outcome: counts[outcome] for outcome in OUTCOMES},
        **{f"{outcome}_rate": counts[outcome] / trials for outcome in OUTCOMES},
        "rolled_back_ci95": wilson(counts["rolled_back"], trials),
        "seconds_to_decision": {
            "median": float(np.median(decided)) if decided else None,
            "p90": float(np.quantile(decided, 0.9, method="higher")) if decided else None,
        },
    }


def run(settings: Settings, latency: LatencyModel) -> dict[str, Any]:
    """Run every trial; return the per-cell summaries and the goal per contender and rate."""
    true_p99 = latency.quantile(0.99)
    # What a dashboard's histogram_quantile shows for the stable over a long time: the p99 of its expected
    # bucket counts, not the true p99 (a wide bucket moves it), is what an operator would tune the limit to.
    bounds = np.array(BUCKETS_S[settings.schema])
    expected = [*zip(bounds.tolist(), latency.cdf(bounds).tolist(), strict=True), (math.inf, 1.0)]
    bucketed_p99 = histogram_quantile(0.99, expected) or true_p99
    tuned_ms = max(1.0, round(bucketed_p99 * settings.tuned_factor * 1000))
    slos = {
        contender: SLO(
            max_p99_latency=limit_ms / 1000,
            max_error_rate=1 - settings.flagger_success_rate / 100,
            min_requests=1,
            on_no_data=Verdict.FAIL,
        )
        for contender, limit_ms in zip(FLAGGERS, (settings.flagger_p99_ms, tuned_ms), strict=True)
    }
    cells: list[dict[str, Any]] = []
    goals: list[dict[str, Any]] = []
    for rate_index, rate in enumerate(settings.rates):
        per_cell: dict[tuple[str, str], list[tuple[str, float]]] = {}
        for case_index, case in enumerate(CASES):
            for number in range(settings.trials):
                rng = np.random.default_rng([settings.seed, rate_index, case_index, number])
                for contender, result in trial(rng, case, rate, latency, slos, settings).items():
                    per_cell.setdefault((contender, case), []).append(result)
        contenders = list(dict.fromkeys(contender for contender, _ in per_cell))
        for contender in contenders:
            row = {case: summarise(per_cell[(contender, case)]) for case in CASES}
            for case in CASES:
                cells.append({"rate": rate, "contender": contender, "case": case, **row[case]})
            detection = min(row["slower"]["rolled_back_rate"], row["more errors"]["rolled_back_rate"])
            false_rollbacks = row["identical"]["rolled_back_rate"]
            goals.append(
                {
                    "rate": rate,
                    "contender": contender,
                    "detection_slower": row["slower"]["rolled_back_rate"],
                    "detection_errors": row["more errors"]["rolled_back_rate"],
                    "false_rollbacks": false_rollbacks,
                    "met": detection >= GOAL_DETECTION and false_rollbacks <= GOAL_FALSE_ROLLBACKS,
                }
            )
    return {
        "cells": cells,
        "goals": goals,
        "true_p99_ms": true_p99 * 1000,
        "bucketed_p99_ms": bucketed_p99 * 1000,
        "tuned_p99_ms": tuned_ms,
    }


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def seconds(cell: dict[str, Any]) -> str:
    spread = cell["seconds_to_decision"]
    return "-" if spread["median"] is None else f"{spread['median']:.0f} / {spread['p90']:.0f}"


def render_markdown(result: dict[str, Any]) -> str:
    """Return the results as the Markdown page ``canary_judge.md``."""
    s = result["settings"]
    model = result["model"]
    knative, drawn = model["knative"], model["model"]

    def spread(side: dict[str, Any]) -> str:
        return f"{side['interval_p99_ms']['p10']:.1f} .. {side['interval_p99_ms']['p90']:.1f} ms"

    lines = [
        "# Canary judge benchmark",
        "",
        f"Run {result['date']} by `benchmarks/canary_judge/run.py` in {result['duration_s']:.0f} s: "
        f"{s['trials']} seeded trials (seed {s['seed']}) per case, contender and rate, the canary at "
        f"{100 * s['canary_share']:.0f} % of the traffic (a baseline another {100 * s['canary_share']:.0f} % "
        f"when there is one), errors {100 * s['error_rate']:.1f} % at base, cold start "
        f"+{100 * s['cold_start']:.0f} % latency on new revisions (canary and baseline; not the stable), "
        f"{s['schema']} buckets. Judge windows of {s['window']:.0f} s in {s['interval']:.0f} s samples, "
        f"max_inconclusive {s['max_inconclusive']}; Flagger "
        f"checks every {s['flagger_interval']:.0f} s, rollback at {s['flagger_threshold']} failed checks, "
        f"promotion after {s['flagger_passes']}.",
        "",
        f"Latency model (`benchmarks/canary_judge/calibration.json`): fitted {model['date']} to the "
        f"{knative['requests']:.0f} answers Knative's histogram counted for the example model on "
        f"local_knative at {model['rate']:g} requests/s. From the buckets, p50 / p99 "
        f"{knative['p50_ms']:.1f} / {knative['p99_ms']:.1f} ms measured, "
        f"{drawn['p50_ms']:.1f} / {drawn['p99_ms']:.1f} ms drawn; "
        f"per-{model['interval_s']:g} s-interval p99, p10 .. p90: {spread(knative)} measured "
        f"({knative['intervals']} intervals), {spread(drawn)} drawn (not fitted: the sanity check). The "
        f"fit's true p99 is {result['true_p99_ms']:.1f} ms, {result['bucketed_p99_ms']:.1f} ms as "
        f"`histogram_quantile` reads it from the buckets; Flagger's tuned p99 limit "
        f"{result['tuned_p99_ms']:.0f} ms (docs: {s['flagger_p99_ms']:.0f} ms). The client saw p50 / p99 "
        f"{model['client_ms']['0.5']:.1f} / {model['client_ms']['0.99']:.1f} ms, its own wait for a core "
        "included (not fitted).",
        "",
        "Each cell: share of trials rolled back (for the regressions: detected; for identical revisions: a "
        "false rollback) and, after `|`, inconclusive; then seconds of traffic to a decision, median / p90.",
        "",
    ]
    cells = {(c["rate"], c["contender"], c["case"]): c for c in result["cells"]}
    goals = {(g["rate"], g["contender"]): g for g in result["goals"]}
    for rate in s["rates"]:
        lines += [
            f"## {rate:g} requests/s in total ({rate * s['canary_share']:g}/s to the canary)",
            "",
            f"| contender | p99 +{100 * (s['slower'] - 1):.0f} % detected | s "
            f"| errors +{100 * s['more_errors']:g} pt detected | s | identical rolled back | s "
            "| identical, no cold start, rolled back | s | goal |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for contender in dict.fromkeys(c for r, c, _ in cells if r == rate):
            row = [contender]
            for case in ("slower", "more errors", "identical", "identical, warm"):
                cell = cells[(rate, contender, case)]
                row += [
                    f"{percent(cell['rolled_back_rate'])} \\| {percent(cell['inconclusive_rate'])}",
                    seconds(cell),
                ]
            row.append("met" if goals[(rate, contender)]["met"] else "not met")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Where it stands", "", *result["verdict"], ""]
    return "\n".join(lines)


def error_ceiling(rate: float, seconds: float, settings: Settings) -> float:
    """Return the detection rate of the best canary-vs-baseline test of ``more errors`` at 5 % false alarms.

    The reference no comparison can beat with these counts: an exact one-sided test of the canary's share
    of both revisions' errors in ``seconds`` (equal weights: half under no change), computed exactly over
    the Poisson number of errors. It bounds what more analysis can buy for errors; more traffic (synthetic
    load, a higher weight, a longer window) is what moves it. (An absolute limit that knows the base rate,
    as Flagger's check does, is a one-sample test and can do better over its longer run.)
    """
    exposure = rate * settings.canary_share * seconds
    base, worse = settings.error_rate, settings.error_rate + settings.more_errors
    mean = exposure * (base + worse)
    totals = np.arange(int(mean + 12 * math.sqrt(mean) + 12) + 1)
    power = 0.0
    for total, weight in zip(totals, stats.poisson.pmf(totals, mean), strict=True):
        if total == 0:
            continue
        # The fewest canary errors out of ``total`` that an exact 5 % test calls high.
        critical = int(stats.binom.isf(0.05, total, 0.5)) + 1
        power += weight * float(stats.binom.sf(critical - 1, total, worse / (base + worse)))
    return float(power)


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """Return the plain-language summary: which contenders meet the goal at which rates."""
    lines = []
    for contender in dict.fromkeys(g["contender"] for g in result["goals"]):
        rows = [g for g in result["goals"] if g["contender"] == contender]
        met = [f"{g['rate']:g}/s" for g in rows if g["met"]]
        detail = "; ".join(
            f"{g['rate']:g}/s: detects {percent(g['detection_slower'])} / {percent(g['detection_errors'])}, "
            f"false rollbacks {percent(g['false_rollbacks'])}"
            for g in rows
        )
        lines.append(f"- {contender}: goal {'met at ' + ', '.join(met) if met else 'not met'} ({detail}).")
    ceiling = result["error_ceiling"]
    windows = sorted({row["seconds"] for row in ceiling})
    lines.append(
        "- The ceiling for errors +1 pt when the canary is compared with a baseline in one window (the best "
        "exact test of the canary's share of both revisions' errors at 5 % false alarms; no comparison can "
        "do better with these counts, only more traffic or a longer window can): "
        + "; ".join(
            f"{seconds:g} s: "
            + ", ".join(
                f"{percent(r['detection'])} at {r['rate']:g}/s" for r in ceiling if r["seconds"] == seconds
            )
            for seconds in windows
        )
        + "."
    )
    return lines


def load_model() -> tuple[LatencyModel, dict[str, Any]]:
    """Return the calibrated latency model and a summary of its calibration."""
    if not CALIBRATION.exists():
        raise SystemExit(
            f"{CALIBRATION} is missing: run .venv/bin/python benchmarks/canary_judge/calibrate.py"
        )
    data = json.loads(CALIBRATION.read_text())
    summary = {
        key: data[key] for key in ("date", "rate", "duration_s", "interval_s", "knative", "model", "fit")
    }
    return LatencyModel.from_dict(data["fit"]), {**summary, "client_ms": data["client"]["quantiles_ms"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=Settings.trials)
    parser.add_argument(
        "--rates",
        default=",".join(f"{r:g}" for r in Settings.rates),
        help="total requests/s, comma-separated",
    )
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument(
        "--cold-start", type=float, default=Settings.cold_start, help="latency added to new revisions"
    )
    parser.add_argument("--error-rate", type=float, default=Settings.error_rate, help="base error rate")
    parser.add_argument("--slower", type=float, default=Settings.slower, help="latency factor of 'slower'")
    parser.add_argument("--more-errors", type=float, default=Settings.more_errors, help="added error rate")
    parser.add_argument("--window", type=float, default=Settings.window, help="seconds per judge window")
    parser.add_argument(
        "--long-window", type=float, default=Settings.long_window, help="0: no long-window judge"
    )
    parser.add_argument("--interval", type=float, default=Settings.interval, help="seconds per sample")
    parser.add_argument("--max-inconclusive", type=int, default=Settings.max_inconclusive)
    parser.add_argument("--schema", default=Settings.schema, choices=sorted(BUCKETS_S))
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for canary_judge.json / .md")
    args = parser.parse_args(argv)
    try:
        settings = Settings(
            trials=args.trials,
            rates=tuple(float(rate) for rate in args.rates.split(",")),
            seed=args.seed,
            cold_start=args.cold_start,
            slower=args.slower,
            more_errors=args.more_errors,
            error_rate=args.error_rate,
            window=args.window,
            long_window=args.long_window,
            interval=args.interval,
            max_inconclusive=args.max_inconclusive,
            schema=args.schema,
        )
    except ValueError as error:
        parser.error(str(error))
    latency, model = load_model()
    started = time.monotonic()
    outcome = run(settings, latency)
    result = {
        "benchmark": "canary_judge",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": time.monotonic() - started,
        "settings": {**vars(settings), "rates": list(settings.rates)},
        "environment": {"python": platform.python_version(), "numpy": np.__version__},
        "model": model,
        **outcome,
    }
    result["error_ceiling"] = [
        {"rate": rate, "seconds": seconds, "detection": error_ceiling(rate, seconds, settings)}
        for seconds in dict.fromkeys((settings.window, settings.long_window or settings.window))
        for rate in settings.rates
    ]
    result["verdict"] = verdict_lines(result)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "canary_judge.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output / "canary_judge.md").write_text(render_markdown(result))
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
