"""Provider metadata follows Airflow's schema and names importable modules; the plugin registers the links."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import airflow
import jsonschema

from knative_rollout.get_provider_info import get_provider_info


def test_provider_info_matches_airflows_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_provider_info_names_real_modules_and_links() -> None:
    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in info["extra-links"]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name).name


def test_provider_info_lists_every_operator_module() -> None:
    import knative_rollout.operators

    folder = Path(knative_rollout.operators.__file__).parent
    shipped = {f"knative_rollout.operators.{path.stem}" for path in folder.glob("*.py")} - {
        "knative_rollout.operators.__init__",
        "knative_rollout.operators.base",
    }
    listed = {module for entry in get_provider_info()["operators"] for module in entry["python-modules"]}
    assert shipped <= listed, f"not in get_provider_info: {sorted(shipped - listed)}"


def test_plugin_registers_the_extra_links() -> None:
    from knative_rollout.plugin import KnativeRolloutPlugin

    assert {type(link).__name__ for link in KnativeRolloutPlugin.operator_extra_links} == {
        "KnativeServiceLink",
        "KnativeTagLink",
    }
