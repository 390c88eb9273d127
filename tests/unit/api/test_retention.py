"""Retention after scheduled detection (``POST /drift/check``, the embedded schedule) and the
``drift-monitor prune`` command, on the embedded wiring (SQLite, no servers)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from importlib import resources
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from api_support import API, NOW, Api
from drift_monitor.adapters.sql import SqlRepository
from drift_monitor.cli import main

MODEL = "org/encoder"


def seed(api: Api) -> None:
    """Vectors 60 days, 10 days and 1 day old (4, 3 and 2 rows)."""
    rng = np.random.default_rng(1)
    for days, rows in ((60, 4), (10, 3), (1, 2)):
        api.send(MODEL, rng.normal(size=(rows, 8)), NOW - timedelta(days=days))


def stored(api: Api) -> int:
    repository = api.container.repository
    assert isinstance(repository, SqlRepository)
    return repository.count_vectors(MODEL)


def check_schema(payload: Any) -> None:
    spec = yaml.safe_load(resources.files("drift_monitor").joinpath("openapi.yaml").read_text())
    schema = {"$ref": "#/components/schemas/CheckResponse", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(payload)


def test_check_all_prunes_batches_past_retention(make_api: Callable[..., Api]) -> None:
    api = make_api(batch_retention_days=30)
    seed(api)

    response = api.client.post("/drift/check", headers=API)

    assert response.status_code == 200
    retention = response.json["retention"]
    assert (retention["parts"], retention["vectors"], retention["models"]) == (1, 4, 1)
    assert retention["complete"] is True and retention["dry_run"] is False
    assert retention["before"] == (NOW - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    check_schema(response.json)
    assert stored(api) == 3 + 2
    # the next run finds nothing more to delete
    again = api.client.post("/drift/check", headers=API).json["retention"]
    assert again["parts"] == 0 and stored(api) == 5


def test_checking_one_model_does_not_prune(make_api: Callable[..., Api]) -> None:
    api = make_api(batch_retention_days=8)
    seed(api)
    response = api.client.post(f"/drift/check/{MODEL}", headers=API)
    assert response.status_code == 200
    assert "retention" not in response.json
    assert stored(api) == 9


def test_retention_zero_keeps_everything(make_api: Callable[..., Api]) -> None:
    api = make_api(batch_retention_days=0)
    seed(api)
    response = api.client.post("/drift/check", headers=API)
    assert response.status_code == 200 and response.json["retention"] is None
    check_schema(response.json)
    assert stored(api) == 9


def test_a_failing_prune_never_fails_detection(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api()
    seed(api)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api.container.repository, "prune_report", broken)
    response = api.client.post("/drift/check", headers=API)
    assert response.status_code == 200
    assert response.json["counts"] == {"insufficient_data": 1}
    assert "disk on fire" in response.json["retention"]["error"]
    check_schema(response.json)
    assert stored(api) == 9


def test_embedded_schedule_prunes_after_each_run(make_api: Callable[..., Api]) -> None:
    from drift_monitor.entrypoints.detect_http import Schedule

    api = make_api(batch_retention_days=8)
    seed(api)
    schedule = Schedule(api.container, every=0.05).start()
    deadline = time.monotonic() + 10
    while stored(api) != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    schedule.stop()
    assert stored(api) == 2, "the 60- and 10-day-old batches should be gone"


# ---- drift-monitor prune -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_log_handlers() -> Iterator[None]:
    # The command installs a JSON handler on pytest's captured stderr, which is closed after
    # the test; later tests must not log into it.
    logger = logging.getLogger("drift_monitor")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture
def cli_api(make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Api]:
    """A seeded embedded database and the environment that makes the CLI use it."""

    def make(**env: str) -> Api:
        api = make_api()
        seed(api)
        monkeypatch.setenv("DRIFT_MONITOR_DATA_DIR", str(api.container.settings.data_dir))
        monkeypatch.delenv("DATABASE_URL", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return api

    return make


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status = main(["prune", *args])
    out = capsys.readouterr().out.strip().splitlines()
    return status, json.loads(out[-1])


def test_cli_dry_run_then_prune(
    cli_api: Callable[..., Api], capsys: pytest.CaptureFixture[str]
) -> None:
    api = cli_api(BATCH_RETENTION_DAYS="8")
    status, dry = run_cli(capsys, "--dry-run")
    assert status == 0 and dry["dry_run"] is True
    assert (dry["parts"], dry["vectors"]) == (2, 7)
    assert stored(api) == 9

    status, done = run_cli(capsys)
    assert status == 0 and (done["parts"], done["vectors"], done["dry_run"]) == (2, 7, False)
    assert done["retention_days"] == 8
    assert stored(api) == 2


def test_cli_before_overrides_the_retention_period(
    cli_api: Callable[..., Api], capsys: pytest.CaptureFixture[str]
) -> None:
    api = cli_api(BATCH_RETENTION_DAYS="0")
    before = (NOW - timedelta(days=30)).isoformat()
    status, done = run_cli(capsys, "--before", before, "--batch-size", "1")
    assert status == 0 and (done["parts"], done["vectors"]) == (1, 4)
    assert stored(api) == 5


def test_cli_retention_zero_without_before_deletes_nothing(
    cli_api: Callable[..., Api], capsys: pytest.CaptureFixture[str]
) -> None:
    api = cli_api(BATCH_RETENTION_DAYS="0")
    status, answer = run_cli(capsys)
    assert status == 0 and answer["retention_days"] == 0
    assert stored(api) == 9


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--before", "2025-01-01T00:00:00"], "time zone"),
        (["--before", "yesterday"], "ISO-8601"),
        (["--batch-size", "0"], "between 1 and"),
    ],
)
def test_cli_refuses_bad_arguments(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["prune", *args])
    assert raised.value.code == 2
    assert error in capsys.readouterr().err


def test_cli_refuses_a_future_cutoff(
    cli_api: Callable[..., Api], capsys: pytest.CaptureFixture[str]
) -> None:
    api = cli_api()
    assert main(["prune", "--before", "2999-01-01T00:00:00Z"]) == 2
    assert "future" in capsys.readouterr().err
    assert stored(api) == 9


def test_cli_reports_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCH_RETENTION_DAYS", "3")
    assert main(["prune"]) == 2
    err = capsys.readouterr().err
    assert "BATCH_RETENTION_DAYS" in err and "HISTORICAL_WINDOW_DAYS" in err


def test_cli_logs_one_json_line_with_the_counts(
    cli_api: Callable[..., Api], capsys: pytest.CaptureFixture[str]
) -> None:
    cli_api(BATCH_RETENTION_DAYS="8")
    assert main(["prune"]) == 0
    err = capsys.readouterr().err
    (line,) = [json.loads(x) for x in err.splitlines() if "batch retention" in x]
    assert line["severity"] == "INFO" and line["message"] == "batch retention: deleted"
    assert (line["parts"], line["vectors"], line["retention_days"]) == (2, 7, 8)
