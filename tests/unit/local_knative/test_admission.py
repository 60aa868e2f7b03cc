"""Knative defaulting and validation webhook semantics of local_knative.admission.admit, as a table."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from local_knative import kinds
from local_knative.admission import admit
from local_knative.errors import ApiError

WEBHOOK_PREFIX = (
    'admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: '
)
DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def service(
    name: str = "iris",
    *,
    traffic: list[dict[str, Any]] | None = None,
    containers: Any = None,
    template_name: str | None = None,
    **template_spec: Any,
) -> dict[str, Any]:
    """Return a Knative Service body with one container unless told otherwise."""
    template: dict[str, Any] = {
        "spec": {
            "containers": containers if containers is not None else [{"image": "registry.example.com/m:1"}],
            **template_spec,
        }
    }
    if template_name is not None:
        template["metadata"] = {"name": template_name}
    spec: dict[str, Any] = {"template": template}
    if traffic is not None:
        spec["traffic"] = traffic
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def route(traffic: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a standalone Knative Route body."""
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": "iris", "namespace": "default"},
        "spec": {"traffic": traffic},
    }


def revision(image: str = "registry.example.com/m:1") -> dict[str, Any]:
    """Return a Knative Revision body."""
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": "iris-00001", "namespace": "default"},
        "spec": {"containers": [{"image": image}]},
    }


def with_traffic(*targets: dict[str, Any]) -> dict[str, Any]:
    return service(traffic=list(targets))


DEFAULT_CASES = [
    pytest.param(
        service(),
        lambda o: o["spec"]["traffic"],
        [{"latestRevision": True, "percent": 100}],
        id="empty-service-traffic-goes-to-latest",
    ),
    pytest.param(
        with_traffic({"revisionName": "iris-00001", "percent": 60}, {"percent": 40}),
        lambda o: [t["latestRevision"] for t in o["spec"]["traffic"]],
        [False, True],
        id="latestRevision-defaults-to-revisionName-empty",
    ),
    pytest.param(
        with_traffic({"revisionName": "iris-00001", "percent": 100}, {"tag": "canary"}),
        lambda o: o["spec"]["traffic"][1],
        {"tag": "canary", "latestRevision": True},
        id="missing-percent-counts-as-zero",
    ),
    pytest.param(
        service(),
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["name"],
        "user-container",
        id="container-name",
    ),
    pytest.param(
        service(containers=[{"image": "a", "ports": [{"containerPort": 8080}]}, {"image": "b"}]),
        lambda o: [c["name"] for c in o["spec"]["template"]["spec"]["containers"]],
        ["user-container-0", "user-container-1"],
        id="container-names-when-several",
    ),
    pytest.param(
        service(),
        lambda o: o["spec"]["template"]["spec"]["containerConcurrency"],
        0,
        id="containerConcurrency",
    ),
    pytest.param(
        service(),
        lambda o: o["spec"]["template"]["spec"]["timeoutSeconds"],
        300,
        id="timeoutSeconds",
    ),
    pytest.param(
        service(),
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["readinessProbe"],
        {"tcpSocket": {"port": 0}, "successThreshold": 1},
        id="default-tcp-readiness-probe",
    ),
    pytest.param(
        service(containers=[{"image": "a", "readinessProbe": {"httpGet": {"path": "/v1/models/iris"}}}]),
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["readinessProbe"],
        {"httpGet": {"path": "/v1/models/iris"}, "successThreshold": 1},
        id="user-probe-kept",
    ),
    pytest.param(
        service(containers=[{"image": "a", "ports": [{"containerPort": 8080}]}, {"image": "b"}]),
        lambda o: ["readinessProbe" in c for c in o["spec"]["template"]["spec"]["containers"]],
        [True, False],
        id="only-serving-container-probed",
    ),
    pytest.param(
        route([{"configurationName": "iris", "percent": 100}]),
        lambda o: o["spec"]["traffic"],
        [{"configurationName": "iris", "percent": 100, "latestRevision": True}],
        id="route-target-latestRevision",
    ),
    pytest.param(
        revision(),
        lambda o: (o["spec"]["containers"][0]["name"], o["spec"]["timeoutSeconds"]),
        ("user-container", 300),
        id="revision-spec",
    ),
]


@pytest.mark.parametrize(("obj", "pick", "expected"), DEFAULT_CASES)
def test_defaults(obj: dict[str, Any], pick: Any, expected: Any) -> None:
    kind = kinds.by_kind(obj["apiVersion"], obj["kind"])
    assert kind is not None
    sent = copy.deepcopy(obj)
    assert pick(admit(kind, "CREATE", obj, None)) == expected
    assert obj == sent, "admit must not modify the object it was given"


def test_other_kinds_pass_through_unchanged() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert admit(kinds.CONFIGMAP, "CREATE", config_map, None) is config_map


VALIDATION_CASES = [
    pytest.param(
        with_traffic({"latestRevision": True, "percent": 90}),
        "Traffic targets sum to 90, want 100: spec.traffic",
        id="percent-sum",
    ),
    pytest.param(
        with_traffic({"percent": 110}, {"revisionName": "iris-00001", "percent": -10}),
        "expected 0 <= -10 <= 100: spec.traffic[1].percent\n"
        "expected 0 <= 110 <= 100: spec.traffic[0].percent",
        id="percent-out-of-range",
    ),
    pytest.param(
        with_traffic({"revisionName": "iris-00001", "latestRevision": True, "percent": 100}),
        'may not set revisionName "iris-00001" when latestRevision is true: spec.traffic[0].latestRevision',
        id="latestRevision-true-with-revisionName",
    ),
    pytest.param(
        with_traffic({"latestRevision": False, "percent": 100}),
        'may not set revisionName "" when latestRevision is false: spec.traffic[0].latestRevision',
        id="latestRevision-false-without-revisionName",
    ),
    pytest.param(
        with_traffic({"percent": 100}, {"tag": "Canary_1", "revisionName": "iris-00001"}),
        f"invalid value: not a DNS 1035 label: [{DNS1035}]: spec.traffic.tag[1]",
        id="tag-not-dns1035",
    ),
    pytest.param(
        with_traffic(
            {"percent": 100},
            {"tag": "canary", "revisionName": "iris-00001"},
            {"tag": "canary", "revisionName": "iris-00002"},
        ),
        'Multiple definitions for "canary": spec.traffic[1].tag, spec.traffic[2].tag',
        id="duplicate-tags",
    ),
    pytest.param(
        with_traffic({"percent": 100, "tag": "a", "url": "http://a-iris.default.example.com"}),
        "must not set the field(s): spec.traffic[0].url",
        id="url-in-spec",
    ),
    pytest.param(
        with_traffic({"configurationName": "other", "percent": 100}),
        "must not set the field(s): spec.traffic[0].configurationName",
        id="configurationName-in-service",
    ),
    pytest.param(
        route([{"percent": 100, "latestRevision": True}]),
        "expected exactly one, got neither: spec.traffic[0].configurationName, spec.traffic[0].revisionName",
        id="route-target-without-revision-or-configuration",
    ),
    pytest.param(
        service(template_name="other-v1"),
        'invalid value: "other-v1" must have prefix "iris-": spec.template.metadata.name',
        id="template-prefix",
    ),
    pytest.param(
        service(containers=[]),
        "missing field(s): spec.template.spec.containers",
        id="no-containers",
    ),
    pytest.param(
        service(
            containers=[
                {"image": "a", "ports": [{"containerPort": 8080}]},
                {"image": "b", "ports": [{"containerPort": 9090}]},
            ]
        ),
        "expected exactly one, got both: spec.template.spec.containers.ports",
        id="two-serving-containers",
    ),
    pytest.param(
        service(containers=[{"image": "a"}, {"image": "b"}]),
        "missing field(s): spec.template.spec.containers.ports",
        id="several-containers-none-serving",
    ),
    pytest.param(
        service(containers=[{"name": "model"}]),
        "missing field(s): spec.template.spec.containers[0].image",
        id="missing-image",
    ),
    pytest.param(
        service(timeoutSeconds=601),
        "expected 0 <= 601 <= 600: spec.template.spec.timeoutSeconds",
        id="timeout-too-long",
    ),
    pytest.param(
        service(containerConcurrency=1001),
        "expected 0 <= 1001 <= 1000: spec.template.spec.containerConcurrency",
        id="concurrency-too-high",
    ),
    pytest.param(
        service("Iris_Svc"),
        f"not a DNS 1035 label: [{DNS1035}]: metadata.name",
        id="name-not-dns1035",
    ),
    pytest.param(
        service("a" * 64),
        "not a DNS 1035 label: [must be no more than 63 characters]: metadata.name",
        id="name-too-long",
    ),
    pytest.param(
        with_traffic({"latestRevision": True, "percent": 50}, {"tag": "x", "url": "http://u", "percent": 10}),
        "Traffic targets sum to 60, want 100: spec.traffic\nmust not set the field(s): spec.traffic[1].url",
        id="several-problems-sorted",
    ),
]


@pytest.mark.parametrize(("obj", "message"), VALIDATION_CASES)
def test_validation_denies_with_knative_message(obj: dict[str, Any], message: str) -> None:
    kind = kinds.by_kind(obj["apiVersion"], obj["kind"])
    assert kind is not None
    with pytest.raises(ApiError) as raised:
        admit(kind, "CREATE", obj, None)
    assert raised.value.code == 400
    assert raised.value.reason == "BadRequest"
    assert raised.value.message == WEBHOOK_PREFIX + message


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """Return ``obj`` as the store holds it after a successful CREATE."""
    kind = kinds.by_kind(obj["apiVersion"], obj["kind"])
    assert kind is not None
    return admit(kind, "CREATE", obj, None)


def test_template_change_without_name_change_is_denied() -> None:
    old = stored(service(template_name="iris-v1"))
    new = service(template_name="iris-v1", containers=[{"image": "registry.example.com/m:2"}])
    with pytest.raises(ApiError) as raised:
        admit(kinds.KSVC, "UPDATE", new, old)
    first_line, details = raised.value.message.split("\n", 1)
    assert first_line == (
        WEBHOOK_PREFIX + "Saw the following changes without a name change (-old +new): "
        "spec.template.metadata.name"
    )
    assert "registry.example.com/m:1" in details and "registry.example.com/m:2" in details


@pytest.mark.parametrize(
    "new",
    [
        pytest.param(
            service(template_name="iris-v2", containers=[{"image": "registry.example.com/m:2"}]),
            id="template-change-with-new-name",
        ),
        pytest.param(
            service(template_name="iris-v1", traffic=[{"revisionName": "iris-v1", "percent": 100}]),
            id="traffic-only-change-keeps-name",
        ),
        pytest.param(
            service(containers=[{"image": "registry.example.com/m:2"}]), id="unnamed-template-change"
        ),
    ],
)
def test_updates_that_are_allowed(new: dict[str, Any]) -> None:
    old = stored(service(template_name="iris-v1"))
    assert admit(kinds.KSVC, "UPDATE", new, old)["spec"]["template"]["spec"]["containers"]


def test_revision_spec_is_immutable() -> None:
    old = stored(revision())
    with pytest.raises(ApiError) as raised:
        admit(kinds.REVISION, "UPDATE", revision("registry.example.com/m:2"), old)
    assert raised.value.message.startswith(WEBHOOK_PREFIX + "Immutable fields changed (-old +new): spec\n")
    relabelled = stored(revision())
    relabelled["metadata"]["labels"] = {"team": "ml"}
    assert admit(kinds.REVISION, "UPDATE", relabelled, old)["metadata"]["labels"] == {"team": "ml"}


def test_configuration_is_defaulted_and_validated() -> None:
    config = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Configuration",
        "metadata": {"name": "iris", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}},
    }
    admitted = admit(kinds.CONFIGURATION, "CREATE", config, None)
    assert admitted["spec"]["template"]["spec"]["containers"][0]["name"] == "user-container"
    assert "traffic" not in admitted["spec"]
    config["spec"]["template"]["spec"]["containers"] = []
    with pytest.raises(ApiError, match=r"missing field\(s\): spec.template.spec.containers$"):
        admit(kinds.CONFIGURATION, "CREATE", config, None)


@pytest.mark.parametrize(
    ("generate_name", "template_name", "message"),
    [
        pytest.param("iris-", None, None, id="prefix-ending-in-dash"),
        pytest.param(
            "Iris-", None, f"not a DNS 1035 label prefix: [{DNS1035}]: metadata.generateName", id="bad-prefix"
        ),
        pytest.param(
            "iris-", "iris-v1", "must not set the field(s): spec.template.metadata.name", id="named-template"
        ),
    ],
)
def test_generate_name(generate_name: str, template_name: str | None, message: str | None) -> None:
    body = service(template_name=template_name)
    body["metadata"] = {"generateName": generate_name, "namespace": "default"}
    if message is None:
        assert admit(kinds.KSVC, "CREATE", body, None)["metadata"]["generateName"] == generate_name
        return
    with pytest.raises(ApiError) as raised:
        admit(kinds.KSVC, "CREATE", body, None)
    assert raised.value.message == WEBHOOK_PREFIX + message


AS = "autoscaling.knative.dev/"
AT = "spec.template.metadata.annotations." + AS


def scaled(**annotations: str) -> dict[str, Any]:
    """Return a Service with autoscaling annotations on its template (``min_scale`` means ``min-scale``)."""
    body = service()
    keys = {name.replace("_", "-"): value for name, value in annotations.items()}
    body["spec"]["template"]["metadata"] = {"annotations": {AS + key: value for key, value in keys.items()}}
    return body


ANNOTATION_CASES = [
    pytest.param(
        scaled(min_scale="3", max_scale="1"),
        f"max-scale=1 is less than min-scale=3: {AT}max-scale, {AT}min-scale",
        id="min-scale-above-max-scale",
    ),
    pytest.param(
        scaled(min_scale="many"), f"invalid value: many: {AT}min-scale", id="min-scale-not-a-number"
    ),
    pytest.param(
        scaled(min_scale="1.5"), f"invalid value: 1.5: {AT}min-scale", id="min-scale-not-an-integer"
    ),
    pytest.param(
        scaled(max_scale="-1"), f"expected 0 <= -1 <= 2147483647: {AT}max-scale", id="negative-max-scale"
    ),
    pytest.param(scaled(target="0"), f"target 0 should be at least 0.01: {AT}target", id="target-zero"),
    pytest.param(scaled(target="-5"), f"target -5 should be at least 0.01: {AT}target", id="target-negative"),
    pytest.param(scaled(target="fast"), f"invalid value: fast: {AT}target", id="target-not-a-number"),
    pytest.param(scaled(target="NaN"), f"invalid value: NaN: {AT}target", id="target-not-finite"),
    pytest.param(
        scaled(target_utilization_percentage="150"),
        f"expected 1 <= 150 <= 100: {AT}target-utilization-percentage",
        id="utilization-above-100",
    ),
    pytest.param(
        scaled(panic_threshold_percentage="100"),
        f"expected 110 <= 100 <= 1000: {AT}panic-threshold-percentage",
        id="panic-threshold-too-low",
    ),
    pytest.param(
        scaled(target_burst_capacity="-2"),
        f"invalid value: -2: {AT}target-burst-capacity",
        id="burst-capacity",
    ),
    pytest.param(
        scaled(**{"class": "foo.knative.dev"}),
        f"invalid value: foo.knative.dev: {AT}class",
        id="unknown-class",
    ),
    pytest.param(scaled(metric="cpu"), f"invalid value: cpu: {AT}metric", id="kpa-cannot-scale-on-cpu"),
    pytest.param(
        scaled(**{"class": "kpa.autoscaling.knative.dev"}, metric_aggregation_algorithm="median"),
        f"invalid value: median: {AT}metric-aggregation-algorithm",
        id="unknown-aggregation-algorithm",
    ),
    pytest.param(scaled(window="5s"), f"expected 6s <= 5s <= 1h0m0s: {AT}window", id="window-too-short"),
    pytest.param(scaled(window="60"), f"invalid value: 60: {AT}window", id="window-without-unit"),
    pytest.param(
        scaled(window="6500ms"),
        f"must be specified with at most second precision: {AT}window",
        id="window-sub-second",
    ),
    pytest.param(
        scaled(scale_down_delay="2h"),
        f"expected 0s <= 2h <= 1h0m0s: {AT}scale-down-delay",
        id="delay-too-long",
    ),
    pytest.param(
        scaled(initial_scale="0"),
        f"invalid value: 0: {AT}initial-scale=0 not allowed by cluster",
        id="initial-scale-zero",
    ),
    pytest.param(
        scaled(initial_scale="-1"),
        f"invalid value: -1: {AT}initial-scale must be greater than 0",
        id="initial-scale-negative",
    ),
    pytest.param(scaled(minScale="x"), f"invalid value: x: {AT}minScale", id="older-spelling-checked-too"),
    pytest.param(
        scaled(activation_scale="1"),
        f"min-activate-scale=1 must be greater than 1: {AT}activation-scale",
        id="activation-scale-one",
    ),
    pytest.param(
        scaled(min_scale="2", max_scale="1", target="0"),
        f"max-scale=1 is less than min-scale=2: {AT}max-scale, {AT}min-scale\n"
        f"target 0 should be at least 0.01: {AT}target",
        id="several-problems-sorted",
    ),
]


@pytest.mark.parametrize(("obj", "message"), ANNOTATION_CASES)
def test_invalid_autoscaling_annotations_are_denied(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as raised:
        admit(kinds.KSVC, "CREATE", obj, None)
    assert (raised.value.code, raised.value.reason) == (400, "BadRequest")
    assert raised.value.message == WEBHOOK_PREFIX + message


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(
            scaled(
                **{"class": "kpa.autoscaling.knative.dev"},
                metric="concurrency",
                target="10",
                target_utilization_percentage="70",
                min_scale="1",
                max_scale="10",
                initial_scale="1",
                window="60s",
                scale_down_delay="0",
                metric_aggregation_algorithm="weighted-exponential",
            ),
            id="the-example-manifest-settings",
        ),
        pytest.param(scaled(**{"class": "hpa.autoscaling.knative.dev"}, metric="cpu"), id="hpa-on-cpu"),
        pytest.param(scaled(**{"class": "custom.example.com"}, metric="anything"), id="other-autoscaler"),
        pytest.param(scaled(target="0.5", max_scale="0", window="1m30s"), id="fractions-and-unlimited"),
    ],
)
def test_valid_autoscaling_annotations_are_admitted(obj: dict[str, Any]) -> None:
    assert admit(kinds.KSVC, "CREATE", obj, None)["spec"]["template"]["metadata"]["annotations"]


def test_autoscaling_annotations_on_the_service_itself_are_denied() -> None:
    body = service()
    body["metadata"]["annotations"] = {AS + "min-scale": "1"}
    with pytest.raises(ApiError) as raised:
        admit(kinds.KSVC, "CREATE", body, None)
    assert raised.value.message == (
        WEBHOOK_PREFIX + f'invalid key name "{AS}min-scale": metadata.annotations\n'
        'autoscaling annotations must be put under "spec.template.metadata.annotations" to work'
    )


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        pytest.param(
            {AS + "target": "0"}, f"target 0 should be at least 0.01: metadata.annotations.{AS}target"
        ),
        pytest.param(
            {"serving.knative.dev/progress-deadline": "1.5s"},
            "progress-deadline=1.5s is not at second precision: "
            "metadata.annotations.serving.knative.dev/progress-deadline",
        ),
        pytest.param(
            {"serving.knative.dev/progress-deadline": "soon"},
            "invalid value: soon: metadata.annotations.serving.knative.dev/progress-deadline",
        ),
    ],
)
def test_revision_annotations_are_validated_on_create_and_update(
    annotations: dict[str, str], message: str
) -> None:
    body = revision()
    body["metadata"]["annotations"] = annotations
    with pytest.raises(ApiError) as raised:
        admit(kinds.REVISION, "CREATE", body, None)
    assert raised.value.message == WEBHOOK_PREFIX + message
    with pytest.raises(ApiError) as raised:
        admit(kinds.REVISION, "UPDATE", body, stored(revision()))
    assert raised.value.message == WEBHOOK_PREFIX + message
