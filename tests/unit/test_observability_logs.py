"""JSON log lines, their context ids, and the access-log filter."""

import contextvars
import json
import logging
import sys

from garrison.observability import logs

THREAD = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
RUN = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a6c"


def _record(
    name: str = "garrison.test", msg: str = "hello %s", args: tuple[object, ...] = ("world",)
) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def _json(record: logging.LogRecord) -> dict[str, object]:
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def test_a_line_has_time_level_logger_and_message_only_when_nothing_is_bound() -> None:
    line = _json(_record())
    assert line.keys() == {"time", "level", "logger", "message"}
    assert line["level"] == "warning" and line["logger"] == "garrison.test"
    assert line["message"] == "hello world"
    assert isinstance(line["time"], str) and line["time"].endswith("Z")


def test_a_request_binds_its_id_and_the_ids_its_path_names_until_it_ends() -> None:
    with logs.bind_request("req-1", f"/threads/{THREAD}/runs/{RUN}/join"):
        line = _json(_record())
        assert line["request_id"] == "req-1"
        assert line["thread_id"] == THREAD and line["run_id"] == RUN
    assert "request_id" not in _json(_record())
    with logs.bind_request("req-2", "/assistants/search"):
        line = _json(_record())
        assert line["request_id"] == "req-2" and "thread_id" not in line


def test_a_run_binds_its_ids_and_tenant() -> None:
    def in_task() -> dict[str, object]:
        logs.bind_run(RUN, THREAD, "acme")
        return _json(_record())

    line = contextvars.copy_context().run(in_task)
    assert (line["run_id"], line["thread_id"], line["tenant"]) == (RUN, THREAD, "acme")
    assert "run_id" not in _json(_record())  # bound in that context only


def test_exceptions_and_extra_fields_are_kept() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord(
            "garrison", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    record.attempt = 2
    line = _json(record)
    assert line["attempt"] == 2
    assert isinstance(line["exception"], str) and "ValueError: bad" in line["exception"]


def test_access_lines_are_structured_and_probes_are_dropped() -> None:
    def access(path: str) -> logging.LogRecord:
        args = ("127.0.0.1:5000", "GET", path, "1.1", 200)
        return _record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', args)

    probe_filter = logs.ProbeAccessFilter()
    for probe in ("/ok", "/health", "/ready", "/metrics", "/ok?check_db=1"):
        assert not probe_filter.filter(access(probe))
    kept = access("/threads/search")
    assert probe_filter.filter(kept)
    line = _json(kept)
    assert (line["method"], line["path"], line["status"]) == ("GET", "/threads/search", 200)
    assert probe_filter.filter(_record())  # other loggers' lines pass untouched


def test_the_config_routes_uvicorn_through_one_handler_in_the_chosen_format() -> None:
    config = logs.log_config("json", "debug")
    assert config["formatters"]["garrison"] == {"()": "garrison.observability.logs.JsonFormatter"}
    assert config["root"] == {"handlers": ["garrison"], "level": "DEBUG"}
    assert config["loggers"]["uvicorn.access"]["filters"] == ["probes"]
    assert config["disable_existing_loggers"] is False
    text = logs.log_config("text", "info")
    assert text["formatters"]["garrison"] == {"format": logs.TEXT_FORMAT}
    json.dumps(config)  # plain data: uvicorn hands it to the processes of --workers N
