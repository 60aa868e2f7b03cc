"""Judge a canary against a baseline, metric by metric, the way Kayenta's NetflixACAJudge does.

Pure: no Airflow, no Kubernetes, no I/O. Input is two samples per metric (canary, baseline: per-interval
p99 latencies, per-interval error rates, load-test latencies, every request's latency, any series) or,
for a rate, two pooled counts; output is a frozen :class:`Judgement` whose :attr:`Judgement.verdict` is a
:class:`knative_rollout.policy.Verdict`.

Per metric (:func:`classify_metric`):

1. NaNs are dropped. A side with no values left is **NoData** (``NODATA_FAIL`` when the metric
   ``must_have_data``): "nothing measured" is never "nothing wrong".
2. Identical samples, or one single value on both sides, **Pass** (Kayenta's special cases).
3. A two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``, reported as ``p_value``) and the
   Hodges-Lehmann estimate of the shift (canary minus baseline) with its distribution-free confidence
   interval at ``confidence`` (0.98). The metric is **High** only when the whole interval lies above the
   tolerance band ``+tolerance * |estimate|`` (0.25), the mean ratio canary/baseline is at least
   ``allowed_increase`` (skipped when the ratio is undefined, i.e. the baseline mean is 0), the estimate
   is at least ``allowed_difference`` and the metric's direction looks at increases; **Low** mirrors it.
   Otherwise **Pass**. When the samples are so small that no interval at that confidence exists (fewer
   than about 5 values a side at 0.98) the metric is NoData too, with that reason: too little data is not
   a pass.

The interval comes from the order statistics of the m*n pairwise differences: listed when there are up
to 4 million, else found by bisection on the value with sorted arrays (O(m log n) per step), so 10,000
load-test latencies a side do not materialise 10^8 differences. Its critical rank uses the normal
approximation of U with the tie correction, as R's ``wilcox.test`` (which Kayenta calls) does for ties
or larger samples; SciPy offers no public quantile of the exact U distribution, and the exact one only
differs for tiny tie-free samples.

A rate counted over the whole window (errors / requests) is classified by :func:`classify_counts`
instead: a one-sided Fisher exact test (``scipy.stats.fisher_exact``) of the canary's pooled count
against the baseline's, at the tail the two-sided interval leaves on each side (1 % at 0.98), so a
false alarm is as rare as with the interval; the same effect floors (rate ratio ``allowed_increase``,
difference ``allowed_difference``) keep a significant but tiny rise a Pass.

Scoring (:func:`judge`, :func:`judge_results`): metrics are grouped; a group scores ``100 * pass /
(pass + high + low + nodata_fail)``, NoData metrics left out; the summary is the weighted mean of the
groups that had data (weights from ``group_weights``, the rest shared equally). A critical metric
classified High/Low beyond its ``critical_increase``/``critical_decrease`` scores 0. The summary is PASS
at ``pass_threshold`` or above, MARGINAL at ``marginal_threshold`` or above, else FAIL; NODATA when every
metric had no data, when ``max_nodata_fraction`` (half) or more had none, or when a critical metric had
none. MARGINAL and NODATA map to ``Verdict.INCONCLUSIVE`` ("measure again"), so the rollout policy
decides what happens next.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from knative_rollout.policy import Verdict

# scipy.stats is imported in the three functions that use it, not here: every task process of a DAG that
# uses the operators imports this module while parsing the DAG file, and scipy.stats was most of that
# import's time (about 1 s on 2 busy cores, once per task instance: 800 of them in a fleet of 100).

DEFAULT_CONFIDENCE = 0.98
DEFAULT_TOLERANCE = 0.25
DEFAULT_PASS_THRESHOLD = 95.0
DEFAULT_MARGINAL_THRESHOLD = 75.0
DEFAULT_MAX_NODATA_FRACTION = 0.5
EXACT_PAIRS = 4_000_000
"""Up to this many pairwise differences are listed for an exact order statistic (32 MB of floats)."""


_Values = Sequence[float] | np.ndarray[Any, np.dtype[np.float64]]


class Direction(StrEnum):
    """Which change of a metric counts against the canary."""

    INCREASE = "increase"  # latency, errors: only a rise is bad
    DECREASE = "decrease"  # throughput, accuracy: only a drop is bad
    EITHER = "either"


class Classification(StrEnum):
    """The outcome of one metric's comparison."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "NoData"
    NODATA_FAIL = "NoDataFailMetric"


class JudgementClass(StrEnum):
    """The outcome of the whole comparison."""

    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    NODATA = "nodata"

    @property
    def verdict(self) -> Verdict:
        """Return the rollout policy's verdict: marginal and no data mean "measure again"."""
        return {
            JudgementClass.PASS: Verdict.PASS,
            JudgementClass.FAIL: Verdict.FAIL,
        }.get(self, Verdict.INCONCLUSIVE)


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is compared.

    :param name: the metric's name in the report.
    :param direction: which change counts against the canary.
    :param group: the scoring group (defaults to the name).
    :param critical: a failure of this metric fails the whole judgement (score 0), and no data for it
        makes the judgement inconclusive.
    :param must_have_data: no data counts as a failure of the metric instead of leaving it out.
    :param confidence: confidence level of the Mann-Whitney interval (Kayenta: 0.98).
    :param tolerance: half-width of the tolerance band, as a fraction of ``|Hodges-Lehmann estimate|``.
    :param allowed_increase: smallest mean ratio canary/baseline classified High (1.0: no effect gate).
    :param allowed_decrease: largest mean ratio classified Low (1.0: no effect gate).
    :param allowed_difference: smallest shift canary - baseline, in the metric's unit (seconds, a rate),
        classified High; its negative is the largest classified Low (0: no effect gate).
    :param critical_increase: for a critical metric, the mean ratio from which High is a critical
        failure (None: any High).
    :param critical_decrease: likewise for Low.
    """

    name: str
    direction: Direction = Direction.EITHER
    group: str = ""
    critical: bool = False
    must_have_data: bool = False
    confidence: float = DEFAULT_CONFIDENCE
    tolerance: float = DEFAULT_TOLERANCE
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    allowed_difference: float = 0.0
    critical_increase: float | None = None
    critical_decrease: float | None = None

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"metric {self.name!r}: confidence={self.confidence}; pass a level in (0.5, 1)")
        if self.tolerance < 0:
            raise ValueError(f"metric {self.name!r}: tolerance={self.tolerance}; pass a fraction >= 0")
        if self.allowed_increase < 1 or not 0 < self.allowed_decrease <= 1:
            raise ValueError(
                f"metric {self.name!r}: allowed_increase={self.allowed_increase}, "
                f"allowed_decrease={self.allowed_decrease}; pass ratios with increase >= 1 >= decrease > 0"
            )
        if not self.allowed_difference >= 0:
            raise ValueError(
                f"metric {self.name!r}: allowed_difference={self.allowed_difference}; pass a shift >= 0"
            )

    @property
    def group_name(self) -> str:
        """Return the scoring group."""
        return self.group or self.name


@dataclass(frozen=True)
class SampleStats:
    """Summary of one side's values after NaNs were dropped."""

    count: int
    mean: float | None
    median: float | None
    minimum: float | None
    maximum: float | None

    @classmethod
    def of(cls, values: np.ndarray[Any, np.dtype[np.float64]]) -> SampleStats:
        """Summarise ``values``."""
        if values.size == 0:
            return cls(0, None, None, None, None)
        return cls(
            int(values.size),
            float(values.mean()),
            float(np.median(values)),
            float(values.min()),
            float(values.max()),
        )


@dataclass(frozen=True)
class MetricResult:
    """One metric's classification and the numbers behind it."""

    spec: MetricSpec
    classification: Classification
    reason: str
    canary: SampleStats
    baseline: SampleStats
    ratio: float | None = None  # mean canary / mean baseline; None when undefined
    estimate: float | None = None  # Hodges-Lehmann shift, canary - baseline
    lower: float | None = None  # confidence interval of the shift
    upper: float | None = None
    p_value: float | None = None

    @property
    def critical_failure(self) -> bool:
        """Return whether this metric alone fails the judgement."""
        if not self.spec.critical:
            return False
        if self.classification is Classification.HIGH:
            limit = self.spec.critical_increase
            return limit is None or self.ratio is None or self.ratio >= limit
        if self.classification is Classification.LOW:
            limit = self.spec.critical_decrease
            return limit is None or self.ratio is None or self.ratio <= limit
        return False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able summary."""
        return {
            "metric": self.spec.name,
            "group": self.spec.group_name,
            "direction": self.spec.direction.value,
            "critical": self.spec.critical,
            "classification": self.classification.value,
            "reason": self.reason,
            "ratio": _finite(self.ratio),
            "estimate": _finite(self.estimate),
            "interval": [_finite(self.lower), _finite(self.upper)],
            "p_value": _finite(self.p_value),
            "canary": vars(self.canary),
            "baseline": vars(self.baseline),
        }


@dataclass(frozen=True)
class ScoreThresholds:
    """Where the summary score passes and where it is marginal (Kayenta's UI defaults: 95 and 75)."""

    pass_threshold: float = DEFAULT_PASS_THRESHOLD
    marginal_threshold: float = DEFAULT_MARGINAL_THRESHOLD
    max_nodata_fraction: float = DEFAULT_MAX_NODATA_FRACTION
    group_weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.marginal_threshold <= self.pass_threshold <= 100:
            raise ValueError(
                f"marginal_threshold={self.marginal_threshold}, pass_threshold={self.pass_threshold}; "
                "pass 0 <= marginal <= pass <= 100"
            )
        if not 0 < self.max_nodata_fraction <= 1:
            raise ValueError(f"max_nodata_fraction={self.max_nodata_fraction}; pass a fraction in (0, 1]")
        if (
            any(weight < 0 for weight in self.group_weights.values())
            or sum(self.group_weights.values()) > 100
        ):
            raise ValueError(
                f"group_weights={dict(self.group_weights)}; pass weights >= 0 that sum to 100 at most"
            )


@dataclass(frozen=True)
class Judgement:
    """The comparison of a canary with its baseline."""

    classification: JudgementClass
    score: float | None  # None when no group had data
    reason: str
    metrics: tuple[MetricResult, ...]
    group_scores: Mapping[str, float]

    @property
    def verdict(self) -> Verdict:
        """Return the verdict for :mod:`knative_rollout.policy`."""
        return self.classification.verdict

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able summary."""
        return {
            "classification": self.classification.value,
            "verdict": self.verdict.value,
            "score": self.score,
            "reason": self.reason,
            "group_scores": dict(self.group_scores),
            "metrics": [metric.to_dict() for metric in self.metrics],
        }


def classify_metric(spec: MetricSpec, canary: _Values, baseline: _Values) -> MetricResult:
    """Classify one metric's canary values against the baseline's (see the module docstring).

    :param spec: how the metric is compared.
    :param canary: the canary's values (NaN = not measured).
    :param baseline: the baseline's values.
    """
    x = _clean(canary)
    y = _clean(baseline)
    result = _Partial(spec, SampleStats.of(x), SampleStats.of(y))
    if x.size == 0 or y.size == 0:
        missing = " and ".join(side for side, values in (("canary", x), ("baseline", y)) if values.size == 0)
        return result.no_data(f"no values for the {missing}")
    ratio = _mean_ratio(x, y)
    if np.array_equal(x, y) or (np.unique(np.concatenate([x, y])).size == 1):
        return result.done(Classification.PASS, "the canary's and the baseline's values are identical", ratio)
    from scipy import stats  # imported where used: see the note at the top

    p_value = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    interval = shift_interval(x, y, spec.confidence)
    if interval is None:
        return result.no_data(
            f"{x.size} canary and {y.size} baseline values are too few for a "
            f"{spec.confidence:.0%} confidence interval",
            ratio=ratio,
            p_value=p_value,
        )
    estimate, lower, upper = interval
    band = spec.tolerance * abs(estimate)
    numbers = dict(ratio=ratio, estimate=estimate, lower=lower, upper=upper, p_value=p_value)
    looks_up = spec.direction in (Direction.INCREASE, Direction.EITHER)
    looks_down = spec.direction in (Direction.DECREASE, Direction.EITHER)
    interval_text = f"shift {estimate:.6g} ({spec.confidence:.0%} interval {lower:.6g} .. {upper:.6g})"
    if looks_up and lower > band:
        small = _small_effect(spec, ratio, estimate, up=True, what="mean ratio")
        if small:
            return result.done(Classification.PASS, f"{interval_text} is significant, but {small}", **numbers)
        return result.done(Classification.HIGH, f"canary higher: {interval_text}", **numbers)
    if looks_down and upper < -band:
        small = _small_effect(spec, ratio, estimate, up=False, what="mean ratio")
        if small:
            return result.done(Classification.PASS, f"{interval_text} is significant, but {small}", **numbers)
        return result.done(Classification.LOW, f"canary lower: {interval_text}", **numbers)
    return result.done(
        Classification.PASS, f"no significant {spec.direction.value}: {interval_text}", **numbers
    )


def classify_counts(
    spec: MetricSpec,
    canary: tuple[float, float],
    baseline: tuple[float, float],
) -> MetricResult:
    """Classify a rate pooled over the window, e.g. 5xx answers / requests (see the module docstring).

    Per-interval rates are mostly 0 at low traffic, so a rank test on them sees nothing; the counts of
    the whole window carry every request. The result's ``ratio`` is the rate ratio, ``estimate`` the
    difference of the rates, ``p_value`` that of the test in the metric's direction(s); ``canary`` and
    ``baseline`` hold the requests as ``count`` and the rate as ``mean``.

    :param spec: how the metric is compared (``confidence``, ``allowed_increase``/``decrease``,
        ``allowed_difference``; ``tolerance`` belongs to the interval test and is not used).
    :param canary: the canary's (events, requests), e.g. (errors, answers).
    :param baseline: the baseline's (events, requests).
    :raises ValueError: when a count is negative or events exceed requests.
    """
    (x_events, x_requests), (y_events, y_requests) = (
        _counts(spec, side, pair) for side, pair in (("canary", canary), ("baseline", baseline))
    )
    x_rate = x_events / x_requests if x_requests else None
    y_rate = y_events / y_requests if y_requests else None
    result = _Partial(
        spec,
        SampleStats(x_requests, x_rate, None, None, None),
        SampleStats(y_requests, y_rate, None, None, None),
    )
    if x_rate is None or y_rate is None:
        missing = " and ".join(
            side for side, rate in (("canary", x_rate), ("baseline", y_rate)) if rate is None
        )
        return result.no_data(f"no requests for the {missing}")
    ratio = x_rate / y_rate if y_rate else None
    difference = x_rate - y_rate
    counts_text = (
        f"canary {x_events}/{x_requests} ({x_rate:.3%}) vs baseline {y_events}/{y_requests} ({y_rate:.3%})"
    )
    if x_events == y_events == 0:
        return result.done(Classification.PASS, f"no events on either side: {counts_text}", ratio)
    table = [[x_events, x_requests - x_events], [y_events, y_requests - y_events]]
    from scipy import stats  # imported where used: see the note at the top

    p_up = float(stats.fisher_exact(table, alternative="greater").pvalue)
    p_down = float(stats.fisher_exact(table, alternative="less").pvalue)
    tail = (1 - spec.confidence) / 2
    looks_up = spec.direction in (Direction.INCREASE, Direction.EITHER)
    looks_down = spec.direction in (Direction.DECREASE, Direction.EITHER)
    p_value = {
        Direction.INCREASE: p_up,
        Direction.DECREASE: p_down,
        Direction.EITHER: min(1.0, 2 * min(p_up, p_down)),
    }[spec.direction]
    numbers = dict(estimate=difference, p_value=p_value)
    for up, p_one, kind, word in (
        (True, p_up, Classification.HIGH, "higher"),
        (False, p_down, Classification.LOW, "lower"),
    ):
        if (looks_up if up else looks_down) and p_one < tail:
            text = f"{counts_text}, one-sided Fisher p={p_one:.3g} < {tail:.3g}"
            small = _small_effect(spec, ratio, difference, up=up, what="rate ratio")
            if small:
                return result.done(
                    Classification.PASS, f"{text} is significant, but {small}", ratio, **numbers
                )
            return result.done(kind, f"canary {word}: {text}", ratio, **numbers)
    return result.done(
        Classification.PASS,
        f"no significant {spec.direction.value}: {counts_text} (p={p_value:.3g})",
        ratio,
        **numbers,
    )


def judge(
    metrics: Sequence[tuple[MetricSpec, Sequence[float], Sequence[float]]],
    thresholds: ScoreThresholds | None = None,
) -> Judgement:
    """Classify every metric and score the canary.

    :param metrics: (spec, canary values, baseline values) per metric.
    :param thresholds: score thresholds and group weights (Kayenta's defaults when None).
    """
    return judge_results(
        [classify_metric(spec, canary, baseline) for spec, canary, baseline in metrics], thresholds
    )


def judge_results(results: Sequence[MetricResult], thresholds: ScoreThresholds | None = None) -> Judgement:
    """Score metrics already classified (by :func:`classify_metric` or :func:`classify_counts`).

    :param results: one per metric.
    :param thresholds: score thresholds and group weights (Kayenta's defaults when None).
    """
    thresholds = thresholds or ScoreThresholds()
    names = [result.spec.name for result in results]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names {names} repeat; give every metric its own name")
    results = tuple(results)
    group_scores = _group_scores(results)
    score = _summary_score(group_scores, thresholds.group_weights)
    if not results:
        return Judgement(JudgementClass.NODATA, None, "no metrics to compare", results, group_scores)
    critical = [r.spec.name for r in results if r.critical_failure]
    if critical:
        return Judgement(
            JudgementClass.FAIL, 0.0, f"critical metric failed: {', '.join(critical)}", results, group_scores
        )
    nodata = [r.spec.name for r in results if r.classification is Classification.NODATA]
    critical_nodata = [
        r.spec.name for r in results if r.spec.critical and r.classification is Classification.NODATA
    ]
    if critical_nodata:
        return Judgement(
            JudgementClass.NODATA,
            score,
            f"no data for critical metric: {', '.join(critical_nodata)}",
            results,
            group_scores,
        )
    if score is None or len(nodata) >= thresholds.max_nodata_fraction * len(results):
        return Judgement(
            JudgementClass.NODATA,
            score,
            f"no data for {len(nodata)} of {len(results)} metrics: {', '.join(nodata)}",
            results,
            group_scores,
        )
    failed = [
        r.spec.name for r in results if r.classification not in (Classification.PASS, Classification.NODATA)
    ]
    detail = f"score {score:.1f}" + (f" ({', '.join(failed)} failed)" if failed else "")
    if score >= thresholds.pass_threshold:
        return Judgement(JudgementClass.PASS, score, detail, results, group_scores)
    if score >= thresholds.marginal_threshold:
        return Judgement(
            JudgementClass.MARGINAL,
            score,
            f"{detail} is marginal (pass at {thresholds.pass_threshold:g})",
            results,
            group_scores,
        )
    return Judgement(
        JudgementClass.FAIL,
        score,
        f"{detail} is under the marginal threshold {thresholds.marginal_threshold:g}",
        results,
        group_scores,
    )


def shift_interval(
    canary: Sequence[float] | np.ndarray[Any, np.dtype[np.float64]],
    baseline: Sequence[float] | np.ndarray[Any, np.dtype[np.float64]],
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float, float] | None:
    """Return the Hodges-Lehmann shift canary - baseline and its confidence interval, or None.

    None when the samples are too small for any interval at ``confidence``.

    :param canary: the canary's values (no NaNs).
    :param baseline: the baseline's values (no NaNs).
    :param confidence: the two-sided confidence level.
    """
    x = np.sort(np.asarray(canary, dtype=np.float64))
    y = np.sort(np.asarray(baseline, dtype=np.float64))
    m, n = x.size, y.size
    pairs = m * n
    if pairs == 0:
        return None
    mid = (pairs + 1) // 2
    estimate = pairwise_difference_rank(x, y, mid)
    if pairs % 2 == 0:
        estimate = (estimate + pairwise_difference_rank(x, y, mid + 1)) / 2
    from scipy import stats  # imported where used: see the note at the top

    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    _, tie_counts = np.unique(np.concatenate([x, y]), return_counts=True)
    total = m + n
    tie_term = float(np.sum(tie_counts.astype(np.float64) ** 3 - tie_counts)) / (total * (total - 1))
    sigma = math.sqrt(pairs / 12 * ((total + 1) - tie_term))
    # The k-th smallest and the k-th largest difference bound the interval; k < 1 means none exists.
    rank = math.floor(pairs / 2 - z * sigma)
    if rank < 1:
        return None
    lower = pairwise_difference_rank(x, y, rank)
    upper = pairwise_difference_rank(x, y, pairs - rank + 1)
    return float(estimate), float(lower), float(upper)


def pairwise_difference_rank(
    x_sorted: np.ndarray[Any, np.dtype[np.float64]],
    y_sorted: np.ndarray[Any, np.dtype[np.float64]],
    rank: int,
    *,
    exact_pairs: int = EXACT_PAIRS,
) -> float:
    """Return the ``rank``-th smallest (1-based) of all differences ``x_i - y_j``.

    Up to ``exact_pairs`` differences are listed and partitioned (exact). Past that, a bisection on the
    value counts the differences at most a value with sorted arrays; it ends on adjacent floats, so the
    result can be off by the rounding of one subtraction, far below any effect the judge looks at.

    :param x_sorted: ascending values.
    :param y_sorted: ascending values.
    :param rank: 1 .. len(x) * len(y).
    :param exact_pairs: the most differences listed for an exact answer.
    """
    m, n = x_sorted.size, y_sorted.size
    if not 1 <= rank <= m * n:
        raise ValueError(f"rank {rank} is outside 1..{m * n}")
    if m * n <= exact_pairs:
        differences = np.subtract.outer(x_sorted, y_sorted).ravel()
        return float(np.partition(differences, rank - 1)[rank - 1])

    def at_most(value: float) -> int:
        # pairs with x_i - y_j <= value, i.e. y_j >= x_i - value
        return int(n * m - np.searchsorted(y_sorted, x_sorted - value, side="left").sum())

    low = float(x_sorted[0] - y_sorted[-1])  # the smallest difference
    high = float(x_sorted[-1] - y_sorted[0])  # the largest
    if at_most(low) >= rank:
        return low
    # Invariant: at_most(low) < rank <= at_most(high).
    while True:
        middle = low + (high - low) / 2
        if middle <= low or middle >= high:
            return high
        if at_most(middle) >= rank:
            high = middle
        else:
            low = middle


@dataclass(frozen=True)
class _Partial:
    spec: MetricSpec
    canary: SampleStats
    baseline: SampleStats

    def no_data(self, reason: str, **numbers: Any) -> MetricResult:
        kind = Classification.NODATA_FAIL if self.spec.must_have_data else Classification.NODATA
        return MetricResult(self.spec, kind, reason, self.canary, self.baseline, **numbers)

    def done(self, kind: Classification, reason: str, ratio: float | None, **numbers: Any) -> MetricResult:
        return MetricResult(self.spec, kind, reason, self.canary, self.baseline, ratio=ratio, **numbers)


def _small_effect(spec: MetricSpec, ratio: float | None, difference: float, *, up: bool, what: str) -> str:
    """Return why a significant change is too small to count ("" when it counts)."""
    if up and ratio is not None and ratio < spec.allowed_increase:
        return f"the {what} {ratio:.3f} is under the allowed increase {spec.allowed_increase:g}"
    if not up and ratio is not None and ratio > spec.allowed_decrease:
        return f"the {what} {ratio:.3f} is above the allowed decrease {spec.allowed_decrease:g}"
    if spec.allowed_difference and abs(difference) < spec.allowed_difference:
        return f"the difference {difference:.6g} is within the allowed difference {spec.allowed_difference:g}"
    return ""


def _counts(spec: MetricSpec, side: str, pair: tuple[float, float]) -> tuple[int, int]:
    events, requests = (round(value) for value in pair)
    if not 0 <= events <= requests:
        raise ValueError(
            f"metric {spec.name!r}: the {side}'s counts {pair[0]:g} events of {pair[1]:g} requests; "
            "pass 0 <= events <= requests"
        )
    return events, requests


def _clean(values: _Values) -> np.ndarray[Any, np.dtype[np.float64]]:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]


def _mean_ratio(
    x: np.ndarray[Any, np.dtype[np.float64]], y: np.ndarray[Any, np.dtype[np.float64]]
) -> float | None:
    baseline_mean = float(y.mean())
    return float(x.mean()) / baseline_mean if baseline_mean != 0 else None


def _group_scores(results: Sequence[MetricResult]) -> dict[str, float]:
    counted: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        if result.classification is not Classification.NODATA:
            counted[result.spec.group_name].append(result.classification is Classification.PASS)
    return {group: 100.0 * sum(passes) / len(passes) for group, passes in counted.items()}


def _summary_score(group_scores: Mapping[str, float], weights: Mapping[str, float]) -> float | None:
    if not group_scores:
        return None
    unweighted = [group for group in group_scores if group not in weights]
    share = (100 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    # Only groups with data carry weight, so a group with no data neither helps nor hurts.
    pairs = [(score, weights.get(group, share)) for group, score in group_scores.items()]
    total_weight = sum(weight for _, weight in pairs)
    if total_weight <= 0:
        return None
    return sum(score * weight for score, weight in pairs) / total_weight


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
