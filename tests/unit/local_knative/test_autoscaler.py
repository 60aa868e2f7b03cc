"""KPA-like scaling: annotations, Go durations, stable/panic windows, scale-down delay, scale to zero."""

from __future__ import annotations

import pytest

from local_knative.autoscaler import ConcurrencyScaler, ScalingSpec, duration_ns

A = "autoscaling.knative.dev/"
SECOND = 10**9


def _revision(annotations: dict[str, str], container_concurrency: int | None = None) -> dict:
    spec = {"containers": [{"image": "x"}]}
    if container_concurrency is not None:
        spec["containerConcurrency"] = container_concurrency
    return {"metadata": {"annotations": annotations}, "spec": spec}


@pytest.mark.parametrize(
    ("raw", "nanoseconds"),
    [
        ("0", 0),
        ("90s", 90 * SECOND),
        ("2m", 120 * SECOND),
        ("1m30s", 90 * SECOND),
        ("1h", 3600 * SECOND),
        ("500ms", SECOND // 2),
        ("1.5s", 3 * SECOND // 2),
        (".5s", SECOND // 2),
        ("1\u00b5s", 1_000),
        ("-2s", -2 * SECOND),
        ("1.0000000001s", SECOND),  # Go keeps whole nanoseconds
    ],
)
def test_duration_ns_reads_go_durations(raw, nanoseconds):
    assert duration_ns(raw) == nanoseconds


@pytest.mark.parametrize("raw", ["90", "fast", "10x", "5m3", "", "s", ".s", "1 s"])
def test_duration_ns_rejects_what_go_rejects(raw):
    with pytest.raises(ValueError, match="write it like 30s"):
        duration_ns(raw)


@pytest.mark.parametrize(
    ("annotations", "container_concurrency", "expected"),
    [
        ({}, None, ScalingSpec()),
        (
            {A + "min-scale": "1", A + "max-scale": "4", A + "initial-scale": "2", A + "target": "5"},
            None,
            ScalingSpec(min_scale=1, max_scale=4, initial_scale=2, target=5.0),
        ),
        ({}, 3, ScalingSpec(target=3.0, container_concurrency=3)),
        (
            {A + "target-utilization-percentage": "50", A + "window": "10s"},
            None,
            ScalingSpec(utilization=0.5, window=10),
        ),
    ],
)
def test_spec_from_revision(annotations, container_concurrency, expected):
    assert ScalingSpec.from_revision(_revision(annotations, container_concurrency)) == expected


def test_spec_reads_older_spellings_but_prefers_kebab_case():
    annotations = {A + "minScale": "2", A + "maxScale": "5", A + "max-scale": "4"}
    spec = ScalingSpec.from_revision(_revision(annotations))
    assert (spec.min_scale, spec.max_scale) == (2, 4)


def test_scaler_resumes_at_a_given_pod_count():
    spec = ScalingSpec(min_scale=1, max_scale=3, initial_scale=2)
    assert _scaler(spec).desired == 2
    resumed = [
        ConcurrencyScaler(spec, stable_window=10, scale_to_zero_grace=5, now=0, initial=n).desired
        for n in (0, 2, 5)
    ]
    assert resumed == [1, 2, 3]


def _scaler(spec: ScalingSpec, *, window: float = 10.0, grace: float = 5.0) -> ConcurrencyScaler:
    return ConcurrencyScaler(spec, stable_window=window, scale_to_zero_grace=grace, now=0.0)


def _hold(scaler: ConcurrencyScaler, concurrency: int, start: float, end: float, tick: float = 1.0) -> int:
    """Keep ``concurrency`` requests in flight from ``start`` to ``end``, ticking every second."""
    while scaler.in_flight < concurrency:
        scaler.request_started(start)
    while scaler.in_flight > concurrency:
        scaler.request_finished(start)
    now = start
    desired = scaler.desired
    while now < end:
        now += tick
        desired = scaler.tick(now)
    return desired


def test_scales_up_at_once_under_a_burst_through_the_panic_window():
    scaler = _scaler(ScalingSpec(target=1, utilization=1.0))
    assert _hold(scaler, 5, 0.0, 1.0) == 5, "one tick of 5 in flight with target 1 wants 5 pods"


def test_target_utilization_adds_headroom():
    scaler = _scaler(ScalingSpec(target=10, utilization=0.5))
    assert _hold(scaler, 12, 0.0, 12.0) == 3  # 12 / (10 * 0.5) = 2.4 -> 3


def test_scale_down_waits_for_the_stable_window():
    scaler = _scaler(ScalingSpec(target=1, utilization=1.0))
    _hold(scaler, 4, 0.0, 12.0)
    assert _hold(scaler, 1, 12.0, 18.0) == 4, "still inside the stable window of the peak"
    assert _hold(scaler, 1, 18.0, 23.0) == 1, "one stable window after the load fell"


def test_max_scale_caps_and_min_scale_floors():
    scaler = _scaler(ScalingSpec(target=1, utilization=1.0, max_scale=3, min_scale=2))
    assert _hold(scaler, 10, 0.0, 5.0) == 3
    assert _hold(scaler, 0, 5.0, 60.0) == 2


def test_scale_to_zero_after_stable_window_plus_grace():
    scaler = _scaler(ScalingSpec(target=1, utilization=1.0), window=10, grace=5)
    scaler.request_started(0.0)
    scaler.request_finished(1.0)
    assert _hold(scaler, 0, 1.0, 14.0) == 1, "idle for 13 s < 10 s window + 5 s grace keeps one pod"
    assert _hold(scaler, 0, 14.0, 17.0) == 0


def test_activate_asks_for_one_pod_at_zero():
    scaler = _scaler(ScalingSpec(initial_scale=0))
    assert scaler.desired == 0
    assert scaler.activate(1.0) == 1
