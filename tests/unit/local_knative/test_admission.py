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
