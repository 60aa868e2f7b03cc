"""Deploy knative-rollout to a Cloud Composer environment: every step of the README's Composer section.

Each step is one ``gcloud`` or ``kubectl`` command, an argv list run without a shell, in order; the first
failure stops the run and says which step failed and how to resume (``--from STEP``). ``--dry-run``
prints the commands, shell-quoted, one per line, and runs none. Both modes first check every input and
then write the two local files the commands read (the PyPI package list and one kustomize overlay per
namespace, under ``--work-dir``), so a printed command can be run by hand as it is. Commands run from the
repository root.

The guardrails go in as the environment variable ``AIRFLOW_VAR_KNATIVE_ROLLOUT_GUARDRAILS`` (which Airflow
reads as the Variable ``knative_rollout_guardrails``, ahead of the metadata database), not with
``gcloud composer environments run ... variables set``: gcloud refuses every Airflow CLI subcommand of
``environments run`` on Airflow 3 (its allow-list ends at 3.0.0, google-cloud-cli 528).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from knative_rollout.resources.guardrails import Guardrails
from knative_rollout.resources.validation import RolloutInputError, check_dns1035, check_namespace, parse_int

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "include" / "manifests"
PLUGIN = "plugins/knative_rollout"
# The DAGs that need nothing but the product. retrain_and_rollout also needs the example model's package
# (include/model) and scikit-learn on the workers, which this script does not install.
DAGS = ("dags/rollout_example.py", "dags/manual_rollout.py", "dags/teardown.py", "dags/fleet_rollout.py")
# What Composer's Airflow 3.3 images already pin; installing them again would fight those pins (the wheel
# test keeps Airflow and both providers where Composer has them). numpy comes with pandas, which the
# google provider needs.
COMPOSER_IMAGE_HAS = frozenset(
    canonicalize_name(name)
    for name in (
        "apache-airflow",
        "apache-airflow-providers-cncf-kubernetes",
        "apache-airflow-providers-google",
        "kubernetes",
        "kubernetes_asyncio",
        "aiohttp",
        "pyyaml",
        "numpy",
    )
)
# Imported only when used, so not a dependency of the wheel: the load test's PNG plot.
OPTIONAL_RUNTIME = ("matplotlib",)
# Airflow 3.3 fails a task resumed from deferral when the supervisor notices late that the deferring
# process exited (README, Troubleshooting); a 1 s check makes that race rare.
AIRFLOW_CONFIGS = {"workers-min_heartbeat_interval": "1"}
# knative_rollout.hooks.GUARDRAILS_VARIABLE (a test holds them equal): the script imports no Airflow, so it
# starts at once and needs no Airflow configuration.
GUARDRAILS_ENV = "AIRFLOW_VAR_" + "knative_rollout_guardrails".upper()
_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
_SERVICE_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9-]*@[a-z0-9-]+\.(iam\.)?gserviceaccount\.com")


@dataclass(frozen=True)
class Step:
    """One command of the deployment.

    :param name: what ``--from`` names to resume here.
    :param argv: the command, run without a shell.
    """

    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """Where to deploy; every field checked by :func:`parse_args`."""

    environment: str
    location: str
    project: str
    cluster: str
    cluster_location: str
    service_account: str
    namespaces: tuple[str, ...]
    guardrails: str
    triggerer_count: int
    work_dir: Path


def pypi_packages(
    pyproject: Path = ROOT / "pyproject.toml", pins: Path = ROOT / "requirements.txt"
) -> list[str]:
    """Return ``name==version`` for what the product needs at run time and Composer's image lacks.

    The names come from the wheel's dependencies (plus :data:`OPTIONAL_RUNTIME`), the versions from the
    pinned ``requirements.txt``, so the environment runs what the tests ran.

    :raises RolloutInputError: when a needed package has no ``==`` pin.
    """
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    wanted = [canonicalize_name(Requirement(line).name) for line in declared]
    wanted += [canonicalize_name(name) for name in OPTIONAL_RUNTIME]
    pinned: dict[str, str] = {}
    for line in pins.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pinned[canonicalize_name(requirement.name)] = str(requirement)
    needed = [name for name in dict.fromkeys(wanted) if name not in COMPOSER_IMAGE_HAS]
    missing = [name for name in needed if "==" not in pinned.get(name, "")]
    if missing:
        raise RolloutInputError(f"{pins.name} pins no version (==) of {', '.join(missing)}; pin them first")
    return [pinned[name] for name in needed]


def overlay(namespace: str, service_account: str, project: str, base: str) -> dict[str, object]:
    """Return a kustomization of ``include/manifests`` for ``namespace``, bound to ``service_account``.

    The RoleBinding's JSON patch tests first that subject 1 is the User, so a reordered ``rbac.yaml``
    fails the build instead of binding the wrong subject.

    :param base: the path of ``include/manifests`` relative to the overlay's directory.
    """
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": [base],
        "patches": [
            {
                "target": {"kind": "RoleBinding", "name": "knative-rollout"},
                "patch": json.dumps(
                    [
                        {"op": "test", "path": "/subjects/1/kind", "value": "User"},
                        {"op": "replace", "path": "/subjects/1/name", "value": service_account},
                    ]
                ),
            },
            {
                "target": {"kind": "ServiceAccount", "name": "model-server"},
                "patch": json.dumps(
                    [
                        {
                            "op": "replace",
                            "path": "/metadata/annotations/iam.gke.io~1gcp-service-account",
                            "value": f"model-server@{project}.iam.gserviceaccount.com",
                        }
                    ]
                ),
            },
        ],
    }


def steps(target: Target) -> list[Step]:
    """Return the deployment's commands, in the order they must run.

    Packages first (the plugin imports them), then the configuration, the guardrails, the account's
    access to the cluster and its RBAC, and the DAGs last, so no DAG runs before its permissions and
    guardrails exist.
    """
    env = (target.environment, f"--location={target.location}", f"--project={target.project}")
    update = ("gcloud", "composer", "environments", "update", *env)
    storage = (f"--environment={target.environment}", f"--location={target.location}")
    storage += (f"--project={target.project}",)
    context = f"gke_{target.project}_{target.cluster_location}_{target.cluster}"
    configs = ",".join(f"{key}={value}" for key, value in AIRFLOW_CONFIGS.items())
    result = [
        Step(
            "pypi-packages", (*update, f"--update-pypi-packages-from-file={_relative(packages_file(target))}")
        ),
        Step("airflow-configs", (*update, f"--update-airflow-configs={configs}")),
        Step("triggerer", (*update, f"--triggerer-count={target.triggerer_count}")),
        Step("guardrails", (*update, f"--update-env-variables=^|^{GUARDRAILS_ENV}={target.guardrails}")),
        # The environment's account reads the cluster's endpoint (GKE connection of the operators);
        # what it may do inside the cluster comes from the RBAC alone.
        Step(
            "cluster-viewer",
            (
                "gcloud",
                "projects",
                "add-iam-policy-binding",
                target.project,
                f"--member=serviceAccount:{target.service_account}",
                "--role=roles/container.clusterViewer",
                "--condition=None",
            ),
        ),
        Step(
            "cluster-credentials",
            (
                "gcloud",
                "container",
                "clusters",
                "get-credentials",
                target.cluster,
                f"--location={target.cluster_location}",
                f"--project={target.project}",
            ),
        ),
    ]
    result += [
        Step(f"rbac-{namespace}", ("kubectl", "apply", f"--context={context}", "-k", _relative(directory)))
        for namespace, directory in overlay_dirs(target).items()
    ]
    plugins = ("gcloud", "composer", "environments", "storage", "plugins", "import", *storage)
    result.append(Step("plugin", (*plugins, f"--source={PLUGIN}")))
    dags = ("gcloud", "composer", "environments", "storage", "dags", "import", *storage)
    result += [Step(f"dag-{Path(dag).stem}", (*dags, f"--source={dag}")) for dag in DAGS]
    return result


def packages_file(target: Target) -> Path:
    return target.work_dir / "pypi-packages.txt"


def overlay_dirs(target: Target) -> dict[str, Path]:
    return {namespace: target.work_dir / f"rbac-{namespace}" for namespace in target.namespaces}


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_inputs(target: Target) -> None:
    """Write the package list and the overlays the commands read."""
    target.work_dir.mkdir(parents=True, exist_ok=True)
    packages_file(target).write_text("".join(f"{line}\n" for line in pypi_packages()))
    for namespace, directory in overlay_dirs(target).items():
        directory.mkdir(exist_ok=True)
        kustomization = overlay(
            namespace, target.service_account, target.project, os.path.relpath(MANIFESTS, directory)
        )
        text = "# Written by include/composer_deploy.py; rerun it rather than editing this file.\n"
        (directory / "kustomization.yaml").write_text(text + yaml.safe_dump(kustomization, sort_keys=False))


def run(plan: Sequence[Step], start: str | None, *, dry_run: bool) -> int:
    """Print (dry run) or run the steps from ``start`` on; return the exit status.

    :param start: the name of the first step to run (``--from``), ``None`` for all.
    """
    names = [step.name for step in plan]
    first = names.index(start) if start else 0
    for number, step in enumerate(plan[first:], start=first + 1):
        command = shlex.join(step.argv)
        if dry_run:
            print(command)
            continue
        print(f"[{number}/{len(plan)}] {step.name}: {command}", file=sys.stderr, flush=True)
        try:
            status = subprocess.run(step.argv, cwd=ROOT, check=False).returncode
        except FileNotFoundError:
            status, command = 127, f"{step.argv[0]} is not installed (not on PATH)"
        if status != 0:
            done = f"steps 1-{number - 1} are done" if number > 1 else "nothing was changed"
            print(
                f"composer_deploy: step {number}/{len(plan)} {step.name!r} failed (exit {status}): "
                f"{command}\n"
                f"{done}. Fix the cause above, then resume from this step: add --from {step.name} "
                f"(make composer ... FROM={step.name}). If gcloud said 'No change in configuration', "
                f"this step was applied before: resume from the next one.",
                file=sys.stderr,
            )
            return 1
    return 0


def parse_args(argv: Sequence[str] | None = None) -> tuple[Target, str | None, bool]:
    """Return the checked target, the step to start at and whether this is a dry run.

    Exits with a message naming the option when an input is wrong, before anything is written.
    """
    parser = argparse.ArgumentParser(prog="composer_deploy", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--environment", required=True, help="the Composer environment's name")
    parser.add_argument("--location", required=True, help="the environment's region, e.g. europe-west1")
    parser.add_argument("--project", required=True, help="the Google Cloud project id")
    parser.add_argument("--cluster", required=True, help="the GKE cluster that runs Knative Serving")
    parser.add_argument("--cluster-location", help="the cluster's region or zone (default: --location)")
    parser.add_argument(
        "--service-account",
        required=True,
        help="the environment's Google service account (gcloud composer environments describe ENV "
        "--location LOC --format='value(config.nodeConfig.serviceAccount)')",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        help="a namespace DAGs deploy to, gets the RBAC (repeatable; default: models)",
    )
    parser.add_argument(
        "--guardrails", help="the guardrails JSON (default: allow the --namespace values only)"
    )
    parser.add_argument("--triggerer-count", default="1", help="triggerers to run (default 1)")
    parser.add_argument("--from", dest="start", help="resume at this step (the name a failure printed)")
    parser.add_argument(
        "--work-dir", help="where the package list and overlays go (default: build/composer/ENV)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    args = parser.parse_args(argv)
    try:
        target = _target(args)
    except RolloutInputError as error:
        parser.error(str(error))
    names = [step.name for step in steps(target)]
    if args.start is not None and args.start not in names:
        parser.error(f"--from {args.start!r} is not a step; the steps are: {', '.join(names)}")
    return target, args.start, args.dry_run


def _target(args: argparse.Namespace) -> Target:
    environment = check_dns1035(args.environment, "--environment")
    cluster = check_dns1035(args.cluster, "--cluster")
    _check(args.location, _REGION, "--location", "a region such as europe-west1")
    _check(args.project, _PROJECT, "--project", "a project id (6-30 lowercase letters, digits, hyphens)")
    cluster_location = args.cluster_location or args.location
    if not (_REGION.fullmatch(cluster_location) or _ZONE.fullmatch(cluster_location)):
        raise RolloutInputError(
            f"--cluster-location {cluster_location!r} must be a region or zone such as europe-west1(-b)"
        )
    _check(args.service_account, _SERVICE_ACCOUNT, "--service-account", "a service account e-mail")
    namespaces = tuple(dict.fromkeys(check_namespace(name) for name in args.namespace or ["models"]))
    text = args.guardrails or json.dumps({"allowed_namespaces": list(namespaces)})
    guardrails = Guardrails.from_config(text, "--guardrails")
    allowed = guardrails.allowed_namespaces
    refused = [name for name in namespaces if allowed and name not in allowed]
    if refused:
        raise RolloutInputError(
            f"--guardrails allow namespaces {list(allowed)} but not {refused}, which "
            "get the RBAC (--namespace): allow them or drop them"
        )
    if "|" in text:
        raise RolloutInputError("--guardrails must not contain '|' (gcloud's list delimiter here)")
    triggerer_count = parse_int(args.triggerer_count, "--triggerer-count", minimum=1)
    work_dir = Path(args.work_dir) if args.work_dir else ROOT / "build" / "composer" / environment
    return Target(
        environment=environment,
        location=args.location,
        project=args.project,
        cluster=cluster,
        cluster_location=cluster_location,
        service_account=args.service_account,
        namespaces=namespaces,
        guardrails=json.dumps(json.loads(text), separators=(",", ":")),
        triggerer_count=triggerer_count,
        work_dir=work_dir.resolve(),
    )


def _check(value: str, pattern: re.Pattern[str], option: str, wanted: str) -> None:
    if not pattern.fullmatch(value):
        raise RolloutInputError(f"{option} {value!r} must be {wanted}")


def main(argv: Sequence[str] | None = None) -> int:
    """Check the inputs, write the local files, then print or run the steps."""
    target, start, dry_run = parse_args(argv)
    write_inputs(target)
    plan = steps(target)
    return run(plan, start, dry_run=dry_run)


if __name__ == "__main__":
    sys.exit(main())
