"""The GKE connection path, with the Google Cloud APIs mocked (no GKE cluster or Google account here)."""

from __future__ import annotations

import base64
import datetime
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from knative_rollout.hooks import AsyncKnativeServingHook, KnativeServingHook
from knative_rollout.operators import KnativeSetTrafficOperator, LoadTestGateOperator
from knative_rollout.sensors import KnativeRevisionReadySensor, KnativeServiceReadySensor

GKE_HOOKS = "airflow.providers.google.cloud.hooks.kubernetes_engine"


def _self_signed_ca() -> str:
    """Return a real CA certificate, base64-encoded as GKE reports ``masterAuth.clusterCaCertificate``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-gke-ca")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.PEM)).decode()


CA_PEM = _self_signed_ca()
CLUSTER = SimpleNamespace(endpoint="203.0.113.7", master_auth=SimpleNamespace(cluster_ca_certificate=CA_PEM))


@pytest.fixture(autouse=True)
def google_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Define the Google Cloud connection (its credentials are mocked in each test)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        '{"conn_type": "google_cloud_platform", "extra": {"project": "p"}}',
    )


def _credentials() -> SimpleNamespace:
    return SimpleNamespace(token="ya29.test-token", expired=False)


def test_sync_hook_reaches_gke_through_the_google_provider() -> None:
    # Mocked: the GKE cluster lookup (Cluster Manager API) and the Google credentials.
    with (
        mock.patch(f"{GKE_HOOKS}.GKEHook.get_cluster", return_value=CLUSTER) as get_cluster,
        mock.patch(f"{GKE_HOOKS}.GKEKubernetesHook.get_credentials", return_value=_credentials()),
    ):
        hook = KnativeServingHook(
            gcp_conn_id="google_cloud_default",
            project_id="my-project",
            location="europe-west1",
            cluster_name="ml",
        )
        api_client = hook.get_conn()
    get_cluster.assert_called_once_with(name="ml", project_id="my-project")
    configuration = api_client.configuration
    assert configuration.host == "https://203.0.113.7"
    assert configuration.api_key["BearerToken"] == "ya29.test-token"
    assert configuration.api_key_prefix["BearerToken"] == "Bearer"
    with open(configuration.ssl_ca_cert, "rb") as ca_file:
        assert ca_file.read() == base64.b64decode(CA_PEM)


GKE_TARGET = {"cluster_name": "ml", "project_id": "p", "location": "l"}


@pytest.mark.parametrize(
    "build",
    [
        lambda: KnativeSetTrafficOperator(
            task_id="t", service_name="iris", traffic={"@stable": 100}, **GKE_TARGET
        ).trigger_hook_params(),
        lambda: (
            KnativeServiceReadySensor(task_id="s", service_name="iris", **GKE_TARGET).trigger().hook_params
        ),
        lambda: (
            KnativeRevisionReadySensor(task_id="r", revision_name="iris-1", **GKE_TARGET)
            .trigger()
            .hook_params
        ),
    ],
    ids=["operator", "service sensor", "revision sensor"],
)
def test_operators_and_sensors_hand_the_gke_endpoint_to_their_triggers(build: Any) -> None:
    # Mocked: the GKE cluster lookup (Cluster Manager API).
    with mock.patch(f"{GKE_HOOKS}.GKEHook.get_cluster", return_value=CLUSTER):
        params = build()
    assert params == {
        "cluster_url": "https://203.0.113.7",
        "ssl_ca_cert": CA_PEM,
        "gcp_conn_id": "google_cloud_default",
        "impersonation_chain": None,
    }


def test_the_load_test_gate_reads_the_service_on_gke_too() -> None:
    gate = LoadTestGateOperator(task_id="g", service_name="iris", tag="candidate", rate=1, **GKE_TARGET)
    hook = gate.hook
    assert (hook.cluster_name, hook.project_id, hook.location) == ("ml", "p", "l")


async def test_async_hook_authenticates_to_gke_with_a_google_token() -> None:
    # Mocked: the Google token the async GKE hook fetches.
    token = mock.AsyncMock()
    token.get.return_value = "ya29.async-token"
    with mock.patch(f"{GKE_HOOKS}.GKEKubernetesAsyncHook.get_token", return_value=token):
        hook = AsyncKnativeServingHook(cluster_url="https://203.0.113.7", ssl_ca_cert=CA_PEM)
        async with hook.get_conn() as api_client:
            assert api_client.configuration.host == "https://203.0.113.7"
            assert api_client.default_headers["Authorization"] == "Bearer ya29.async-token"
