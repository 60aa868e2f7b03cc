"""Table tests of resources.guardrails: allow-lists and maximums, and errors naming the config source."""

from __future__ import annotations

import pytest

from knative_rollout.resources import Guardrails, GuardrailViolation, RolloutInputError

GUARDRAILS = Guardrails.from_config(
    {
        "allowed_namespaces": ["models"],
        "allowed_registries": ["registry.example.com/knative-rollout", "gcr.io"],
        "max_cpu": "2",
        "max_memory": "4Gi",
        "max_gpu": "1",
    },
    "test",
)


def test_guardrails_allow_what_is_inside() -> None:
    GUARDRAILS.check_namespace("models")
    GUARDRAILS.check_image("registry.example.com/knative-rollout/echo:v1")
    GUARDRAILS.check_image("gcr.io/p/app:v1")
    GUARDRAILS.check_resources({"requests": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}})


@pytest.mark.parametrize(
    ("check", "argument", "message"),
    [
        ("check_namespace", "default", "namespace 'default' is not allowed"),
        ("check_image", "docker.io/evil/app:v1", "registry 'docker.io'"),
        ("check_image", "registry.example.com/other/app:v1", "registry 'registry.example.com'"),
        ("check_resources", {"requests": {"cpu": "2500m"}}, "cpu of 2500m is above the guardrail limit of 2"),
        ("check_resources", {"limits": {"memory": "5Gi"}}, "memory of 5Gi is above"),
        ("check_resources", {"limits": {"nvidia.com/gpu": "2"}}, "nvidia.com/gpu of 2 is above"),
    ],
)
def test_guardrails_refuse_what_is_outside(check: str, argument: object, message: str) -> None:
    with pytest.raises(GuardrailViolation, match=message):
        getattr(GUARDRAILS, check)(argument)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "not valid JSON"),
        ([1], "must be a JSON object"),
        ({"max_cpus": "1"}, "unknown keys"),
        ({"allowed_namespaces": "models"}, "list of strings"),
        ({"max_memory": "lots"}, "not a Kubernetes quantity"),
    ],
)
def test_guardrails_config_errors_name_the_source(config: object, message: str) -> None:
    with pytest.raises(RolloutInputError, match=message) as error:
        Guardrails.from_config(config, "Variable X")
    assert "Variable X" in str(error.value)


def test_empty_guardrails_allow_everything() -> None:
    guardrails = Guardrails.from_config(None, "nowhere")
    guardrails.check_namespace("anything")
    guardrails.check_image("docker.io/x/y:z")
    guardrails.check_resources({"requests": {"cpu": "64"}})
