"""include/composer_deploy.py: its dry run against the gcloud and kubectl on this machine, inputs, failures.

Every command of the dry run is checked against ``--help`` of the installed gcloud / kubectl: the command
exists, each flag is one it accepts (taking a value or not, as used), and one ``environments update`` sets
one update type only. No Google Cloud API is reachable here, so the real run is exercised with a recording
stand-in for ``gcloud`` (the only mock: Google Cloud).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import composer_deploy
import pytest

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "include" / "composer_deploy.py"
ACCOUNT = "composer-env@my-project.iam.gserviceaccount.com"
GUARDRAILS = {"allowed_namespaces": ["models", "team-a"], "allowed_registries": ["europe-docker.pkg.dev/p"]}
ARGS = [
    *("--environment", "rollout-prod", "--location", "europe-west1", "--project", "my-project"),
    *("--cluster", "models-gke", "--cluster-location", "europe-west1-b", "--service-account", ACCOUNT),
    *("--namespace", "models", "--namespace", "team-a", "--guardrails", json.dumps(GUARDRAILS)),
]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A flag's own line in FLAGS: the flag, its value's name, maybe a short form; nothing else on the line.
_GCLOUD_FLAG = re.compile(r"^\s+(--[a-z0-9-]+)(=\S+)?(, -[a-zA-Z]( \S+)?)?$")
_KUBECTL_FLAG = re.compile(r"^\s+(?:-([a-zA-Z]), )?--([a-z0-9-]+)=('[^']*'|\S*):")


def dry_run(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> list[list[str]]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *ARGS, "--work-dir", str(tmp_path), "--dry-run", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return [shlex.split(line) for line in out.stdout.splitlines()]


@cache
def gcloud_help(positionals: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """Return the command path gcloud resolves ``positionals`` to, and its help text without colours."""
    out = subprocess.run(
        [require_binary("gcloud"), *positionals, "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"gcloud {' '.join(positionals)}: {out.stderr}"
    text = _ANSI.sub("", out.stdout)
    name = text.split("\n", 2)[1].split(" - ", 1)[0].split()
    return tuple(name), text


def gcloud_flags(text: str) -> tuple[dict[str, bool], set[str], dict[str, int]]:
    """Return the command's flags (name -> takes a value), the gcloud-wide flags, and for the flags of
    an "Exactly one of these must be specified" group, which of its alternatives each belongs to."""
    flags: dict[str, bool] = {}
    alternatives: dict[str, int] = {}
    section, alternative, in_exactly_one = "", -1, False
    wide: set[str] = set()
    for line in text.splitlines():
        if line and not line[0].isspace():
            section, in_exactly_one = line.strip(), False
            continue
        if section == "GCLOUD WIDE FLAGS":
            wide.update(re.findall(r"--[a-z0-9-]+", line))
        elif section.endswith("FLAGS") or section == "POSITIONAL ARGUMENTS":
            if line.strip() == "Exactly one of these must be specified:":
                in_exactly_one = True
            elif in_exactly_one and line.strip() and len(line) - len(line.lstrip()) <= 7:
                alternative += 1
            match = _GCLOUD_FLAG.match(line)
            if match:
                flags[match.group(1)] = match.group(2) is not None
                if in_exactly_one:
                    alternatives[match.group(1)] = alternative
    return flags, wide, alternatives


@cache
def kubectl_flags(command: str) -> dict[str, bool]:
    """Return kubectl's flags for ``command`` and the global ones (long and short name -> takes a value)."""
    kubectl = require_binary("kubectl")
    texts = [
        subprocess.run([kubectl, *args], capture_output=True, text=True, timeout=60, check=True).stdout
        for args in ([command, "--help"], ["options"])
    ]
    flags: dict[str, bool] = {}
    for line in "\n".join(texts).splitlines():
        match = _KUBECTL_FLAG.match(line)
        if match:
            takes_value = match.group(3) not in ("true", "false")
            flags["--" + match.group(2)] = takes_value
            if match.group(1):
                flags["-" + match.group(1)] = takes_value
    return flags


def check_gcloud(argv: list[str]) -> None:
    words = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
    positionals = tuple(word for word in words if not word.startswith("-"))
    path, text = gcloud_help(positionals)
    assert path[0] == "gcloud" and positionals[: len(path) - 1] == path[1:], (path, argv)
    flags, wide, alternatives = gcloud_flags(text)
    chosen = set()
    for word in words:
        if not word.startswith("--"):
            continue
        name, _, _ = word.partition("=")
        if name in wide:
            continue
        assert name in flags, f"{' '.join(path)} does not accept {name}"
        assert flags[name] == ("=" in word), f"{' '.join(path)} {name}: value given {'=' in word}"
        if name in alternatives:
            chosen.add(alternatives[name])
    assert len(chosen) <= 1, f"{' '.join(path)} accepts only one update type at a time: {argv}"


def check_kubectl(argv: list[str]) -> None:
    flags = kubectl_flags(argv[1])
    for word in argv[2:]:
        if word.startswith("-"):
            name = word.partition("=")[0]
            assert name in flags, f"kubectl {argv[1]} does not accept {name}"
            assert flags[name] or "=" not in word, f"kubectl {argv[1]} {name} takes no value"


def test_every_command_of_the_dry_run_is_one_gcloud_and_kubectl_accept(tmp_path: Path) -> None:
    commands = dry_run(tmp_path)
    assert [argv[0] for argv in commands].count("kubectl") == 2  # one apply per namespace
    for argv in commands:
        {"gcloud": check_gcloud, "kubectl": check_kubectl}[argv[0]](argv)


def test_the_dry_run_covers_every_step_in_order_and_runs_nothing(tmp_path: Path) -> None:
    stand_in = recording_gcloud(tmp_path, fail_on=None)
    commands = dry_run(tmp_path, env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"})
    assert not stand_in.exists(), "the dry run ran a command"
    update = [argv[4:] for argv in commands if argv[:4] == ["gcloud", "composer", "environments", "update"]]
    assert [
        next(w for w in words if w.startswith("--update") or w.startswith("--trig")) for words in update
    ] == [
        "--update-pypi-packages-from-file=" + str(tmp_path / "pypi-packages.txt"),
        "--update-airflow-configs=workers-min_heartbeat_interval=1",
        "--triggerer-count=1",
        "--update-env-variables=^|^AIRFLOW_VAR_KNATIVE_ROLLOUT_GUARDRAILS="
        + json.dumps(GUARDRAILS, separators=(",", ":")),
    ]
    kinds = [" ".join(argv[:6]) for argv in commands]
    # Packages before the plugin that imports them; RBAC and guardrails before any DAG.
    assert kinds.index(
        "gcloud container clusters get-credentials models-gke --location=europe-west1-b"
    ) < kinds.index(
        "kubectl apply --context=gke_my-project_europe-west1-b_models-gke -k " + str(tmp_path / "rbac-models")
    )
    plugin = next(i for i, argv in enumerate(commands) if "plugins" in argv)
    first_dag = next(i for i, argv in enumerate(commands) if "dags" in argv)
    assert plugin > max(i for i, argv in enumerate(commands) if argv[0] == "kubectl")
    assert first_dag > plugin
    sources = [argv[-1] for argv in commands if "dags" in argv]
    assert sources == [f"--source={dag}" for dag in composer_deploy.DAGS]
    # --from starts at a step.
    assert dry_run(tmp_path, "--from", "plugin") == commands[plugin:]


def test_the_guardrails_value_parses_as_gcloud_parses_it(tmp_path: Path) -> None:
    """gcloud's own ArgDict (its bundled Python) reads the one env variable with the JSON intact."""
    sdk = Path(os.path.realpath(require_binary("gcloud"))).parent.parent
    python = sdk / "platform" / "bundledpythonunix" / "bin" / "python3"
    (guardrails,) = [w for argv in dry_run(tmp_path) for w in argv if w.startswith("--update-env-variables=")]
    code = (
        "import json, sys; sys.path[:0] = [sys.argv[1] + '/lib', sys.argv[1] + '/lib/third_party']\n"
        "from googlecloudsdk.calliope import arg_parsers\n"
        "print(json.dumps(arg_parsers.ArgDict()(sys.argv[2])))"
    )
    out = subprocess.run(
        [
            str(python) if python.exists() else sys.executable,
            "-c",
            code,
            str(sdk),
            guardrails.partition("=")[2],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    parsed = json.loads(out.stdout)
    assert list(parsed) == [composer_deploy.GUARDRAILS_ENV]
    assert json.loads(parsed[composer_deploy.GUARDRAILS_ENV]) == GUARDRAILS


def test_the_guardrails_env_variable_is_the_variable_the_hook_reads() -> None:
    from knative_rollout.hooks import GUARDRAILS_VARIABLE

    assert "AIRFLOW_VAR_" + GUARDRAILS_VARIABLE.upper() == composer_deploy.GUARDRAILS_ENV


def test_the_pypi_packages_are_pinned_runtime_needs_composer_lacks(tmp_path: Path) -> None:
    dry_run(tmp_path)
    lines = (tmp_path / "pypi-packages.txt").read_text().splitlines()
    pins = set((ROOT / "requirements.txt").read_text().splitlines())
    assert lines and all(line in pins for line in lines), lines
    names = {line.split("==")[0] for line in lines}
    assert {"hdrhistogram", "scipy", "matplotlib"} <= names
    assert not names & {"apache-airflow", "kubernetes", "numpy", "scikit-learn", "pyjwt"}


def test_an_unpinned_runtime_dependency_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["scipy>=1.13", "hdrhistogram"]\n')
    (tmp_path / "requirements.txt").write_text("scipy==1.17.1\nhdrhistogram>=0.10\n")
    with pytest.raises(
        ValueError, match=r"requirements.txt pins no version \(==\) of hdrhistogram, matplotlib"
    ):
        composer_deploy.pypi_packages(tmp_path / "pyproject.toml", tmp_path / "requirements.txt")


def test_every_example_dag_is_deployed_or_needs_the_example_model() -> None:
    dags = {f"dags/{path.name}" for path in (ROOT / "dags").glob("*.py")}
    assert dags - set(composer_deploy.DAGS) == {"dags/retrain_and_rollout.py"}, (
        "a new DAG in dags/: add it to composer_deploy.DAGS, or say there why Composer does not get it"
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--environment", "Rollout_Prod", "--environment 'Rollout_Prod' is not a valid DNS-1035 label"),
        ("--location", "europe-west1-b", "--location 'europe-west1-b' must be a region"),
        ("--project", "My Project", "--project 'My Project' must be a project id"),
        ("--cluster", "gke.1", "--cluster 'gke.1' is not a valid DNS-1035 label"),
        ("--cluster-location", "eu", "--cluster-location 'eu' must be a region or zone"),
        ("--service-account", "someone@example.com", "--service-account 'someone@example.com' must be"),
        ("--namespace", "Models", "namespace"),
        ("--guardrails", "{not json", "guardrails in --guardrails are not valid JSON"),
        ("--guardrails", '{"allowed_namespaces": ["other"]}', "but not ['models', 'team-a']"),
        ("--guardrails", '{"allowed_registries": ["a|b"]}', "must not contain '|'"),
        ("--triggerer-count", "0", "--triggerer-count must be an integer of 1 or more, got 0"),
        ("--from", "everything", "--from 'everything' is not a step; the steps are: pypi-packages,"),
    ],
)
def test_bad_input_is_refused_naming_the_option_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    args = [*ARGS, "--work-dir", str(tmp_path / "work"), "--dry-run"]
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    with pytest.raises(SystemExit) as exit_info:
        composer_deploy.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def recording_gcloud(tmp_path: Path, fail_on: str | None) -> Path:
    """Write a ``gcloud`` (and ``kubectl``) for PATH that logs its argv and fails on one with ``fail_on``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "gcloud.log"
    fail = f'case "$*" in *{fail_on}*) echo "ERROR: (gcloud) boom" >&2; exit 1;; esac\n' if fail_on else ""
    for name in ("gcloud", "kubectl"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\n{fail}')
        (bin_dir / name).chmod(0o755)
    return log


def test_a_failed_step_stops_the_run_and_says_how_to_resume(tmp_path: Path) -> None:
    log = recording_gcloud(tmp_path, fail_on="--triggerer-count")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    command = [sys.executable, str(SCRIPT), *ARGS, "--work-dir", str(tmp_path / "work")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1
    assert "step 3/13 'triggerer' failed (exit 1)" in out.stderr
    assert "steps 1-2 are done" in out.stderr and "--from triggerer" in out.stderr
    assert [line.split()[2] for line in log.read_text().splitlines()] == ["update"] * 3  # nothing after it
    # Resumed at the plugin: only the storage imports run, in order.
    log.unlink()
    out = subprocess.run([*command, "--from", "plugin"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert [line.split()[3] for line in log.read_text().splitlines()] == ["plugins"] + ["dags"] * 4
