"""The canary judge benchmark: a few trials in seconds, every cell written, regressions told apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.canary_judge.run import CASES, FLAGGERS, OUTCOMES, Settings, error_ceiling, main


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One small run: regressions gross enough that a few trials separate them from identical revisions."""
    output: Path = tmp_path_factory.mktemp("canary-judge")
    arguments = [
        "--trials",
        "4",
        "--rates",
        "100",
        "--long-window",
        "0",
        "--slower",
        "3",
        "--more-errors",
        "0.2",
    ]
    assert main([*arguments, "--output", str(output)]) == 0
    assert (output / "canary_judge.md").read_text().startswith("# Canary judge benchmark")
    return json.loads((output / "canary_judge.json").read_text())


def test_every_contender_and_case_has_a_cell(result: dict) -> None:
    contenders = {cell["contender"] for cell in result["cells"]}
    assert contenders == {*Settings(long_window=0).judges, *FLAGGERS}
    assert len(result["cells"]) == len(contenders) * len(CASES)
    for cell in result["cells"]:
        assert cell["trials"] == 4
        assert sum(cell[outcome] for outcome in OUTCOMES) == 4
    assert {goal["contender"] for goal in result["goals"]} == contenders
    assert [row["rate"] for row in result["error_ceiling"]] == [100]


def test_the_error_ceiling_grows_with_traffic() -> None:
    settings = Settings()
    ceilings = [error_ceiling(rate, 300, settings) for rate in (5, 20, 100)]
    assert 0 <= ceilings[0] < ceilings[1] < ceilings[2] <= 1
    assert error_ceiling(100, 600, settings) > ceilings[2]


@pytest.mark.parametrize(
    "contender",
    ["requests judge, baseline", "intervals judge, baseline", "intervals judge, stable", "Flagger, tuned"],
)
def test_a_gross_regression_is_rolled_back_more_often_than_an_identical_canary(
    result: dict, contender: str
) -> None:
    rates = {
        cell["case"]: cell["rolled_back_rate"] for cell in result["cells"] if cell["contender"] == contender
    }
    assert rates["slower"] > rates["identical"]
    assert rates["more errors"] > rates["identical"]


def test_bad_settings_are_refused_naming_the_knob() -> None:
    with pytest.raises(ValueError, match="window=45"):
        Settings(window=45)
    with pytest.raises(SystemExit):
        main(["--rates", "0"])
