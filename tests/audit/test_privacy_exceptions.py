"""A logged traceback goes through the privacy model too (issue #19: "Python logging goes through the same model"):
an exception's message may hold a query, a username or a path, so the log filter formats the exception itself,
replaces its tagged values and, by default in production, removes every untagged exception message while keeping
the frames. Through real handlers: the one ``settings.LOGGING`` configures, writing to a buffer."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from audit.privacy import DEFAULT_POLICY, REMOVED_MESSAGE, PrivacyLogFilter, Tagged, tag_value


@contextmanager
def logging_to_buffer(settings, logger_name: str) -> Iterator[io.StringIO]:
    """``logger_name`` writes through ``settings.LOGGING``'s console handler (its filter and format) to a buffer."""
    settings.CUSTODIA_PRIVACY_POLICY = dict(DEFAULT_POLICY)
    buffer = io.StringIO()
    config = json.loads(json.dumps(settings.LOGGING))
    config["handlers"] = {
        "buffer": {**config["handlers"]["console"], "class": "logging.StreamHandler", "stream": buffer}
    }
    config["root"] = {"handlers": [], "level": "INFO"}
    config["loggers"] = {logger_name: {"handlers": ["buffer"], "level": "INFO", "propagate": False}}
    logging.config.dictConfig(config)
    try:
        yield buffer
    finally:
        logging.config.dictConfig(settings.LOGGING)


@pytest.fixture
def configured_log(settings):
    """A logger whose handler is ``settings.LOGGING``'s console handler (its filter and format), on a buffer."""
    with logging_to_buffer(settings, "privacy-exceptions") as buffer:
        yield logging.getLogger("privacy-exceptions"), buffer


# The confidential values, named here: a traceback's frames quote the source lines that raised, so the tests
# raise with these names (source code is not confidential; the values at run time are).
USERNAME = "harm"
QUERY = "elephant"
EVIDENCE_PATH = "/cases/harm/suspect-laptop.E01"
HOME_PATH = "/home/harm/secret.txt"


def open_evidence(path: str) -> None:
    raise FileNotFoundError(f"no such file: {path}")


def test_production_removes_an_untagged_exception_message_and_keeps_the_frames(configured_log, settings):
    assert settings.CUSTODIA_PRIVACY_EXCEPTION_MESSAGES == "remove"  # DEBUG is off, as in production
    logger, buffer = configured_log
    try:
        open_evidence(EVIDENCE_PATH)
    except FileNotFoundError:
        logger.exception("opening evidence %s failed", 42)
    text = buffer.getvalue()
    assert "opening evidence 42 failed" in text
    assert "Traceback (most recent call last):" in text
    assert "in open_evidence" in text and "test_privacy_exceptions.py" in text  # the frames stay
    assert f"FileNotFoundError: {REMOVED_MESSAGE}" in text
    assert "suspect-laptop" not in text and "harm" not in text


def test_a_tagged_value_in_an_exception_message_is_replaced(configured_log):
    logger, buffer = configured_log
    try:
        raise ValueError(f"the query {tag_value('query', QUERY)} of {tag_value('user', USERNAME)} failed")
    except ValueError:
        logger.error("search failed", exc_info=True)
    text = buffer.getvalue()
    assert "ValueError: the query [query>" in text  # a tagged message is kept, its values replaced
    assert "elephant" not in text and "[user>harm]" not in text


def test_a_chain_of_causes_loses_every_untagged_message(configured_log):
    logger, buffer = configured_log
    try:
        try:
            open_evidence(HOME_PATH)
        except FileNotFoundError as exc:
            raise RuntimeError(f"import of {USERNAME}'s disk failed") from exc
    except RuntimeError:
        logger.exception("import failed")
    text = buffer.getvalue()
    assert "The above exception was the direct cause of the following exception:" in text
    assert text.count(REMOVED_MESSAGE) == 2
    assert "harm" not in text


def test_keep_mode_keeps_the_message_with_its_tagged_values_replaced(configured_log, settings):
    settings.CUSTODIA_PRIVACY_EXCEPTION_MESSAGES = "keep"
    logger, buffer = configured_log
    try:
        raise KeyError(f"evidence 7 of {Tagged('user', USERNAME)}")
    except KeyError:
        logger.exception("lookup failed")
    text = buffer.getvalue()
    assert "evidence 7 of [user>" in text and "[user>harm]" not in text


def test_an_exception_logged_through_two_handlers_is_formatted_once():
    """Every handler carries the filter; the record is replaced once and every handler writes the same text."""
    first, second = io.StringIO(), io.StringIO()
    logger = logging.getLogger("privacy-exceptions-two")
    logger.propagate = False
    handlers = [logging.StreamHandler(first), logging.StreamHandler(second)]
    for handler in handlers:
        handler.addFilter(PrivacyLogFilter(exception_messages="remove"))
        logger.addHandler(handler)
    try:
        try:
            raise OSError(EVIDENCE_PATH)
        except OSError:
            logger.exception("failed")
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
    assert first.getvalue() == second.getvalue()
    assert EVIDENCE_PATH not in first.getvalue() and f"OSError: {REMOVED_MESSAGE}" in first.getvalue()


def test_an_unknown_mode_is_refused():
    with pytest.raises(Exception, match="exception_messages"):
        PrivacyLogFilter(exception_messages="sometimes")


def test_a_celery_worker_s_own_handlers_get_the_privacy_filter():
    """A worker installs its own handlers on the root and task loggers; Celery's signals give them the filter."""
    from celery import signals

    import custodia.celery  # noqa: F401  (connects the receivers)

    logger = logging.getLogger("privacy-exceptions-worker")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    try:
        for signal in (signals.after_setup_logger, signals.after_setup_task_logger):
            signal.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None, format="", colorize=False)
        assert [type(item) for item in handler.filters] == [PrivacyLogFilter]
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def celery_trace_log(settings):
    """Celery's task tracer's own logger, on a buffer through ``settings.LOGGING``'s console handler."""
    with logging_to_buffer(settings, "celery.app.trace") as buffer:
        yield buffer


def test_celerys_own_task_failure_line_loses_the_exception_message(celery_trace_log):
    """Celery writes "Task … raised unexpected: FileNotFoundError('…')" itself, with the exception's repr as
    an argument of the message and the traceback as text in the record's ``data``: through the real tracer."""
    from celery import Celery

    app = Celery("privacy-exceptions", set_as_current=False)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keeper = Keep()
    keeper.addFilter(PrivacyLogFilter())
    logging.getLogger("celery.app.trace").addHandler(keeper)

    @app.task(name="custodia.test.open_evidence")
    def open_evidence_task() -> None:
        open_evidence(EVIDENCE_PATH)

    try:
        result = open_evidence_task.apply()
    finally:
        logging.getLogger("celery.app.trace").removeHandler(keeper)
    assert result.failed()
    text = celery_trace_log.getvalue()
    assert "custodia.test.open_evidence" in text and "raised unexpected" in text
    assert f"FileNotFoundError('{REMOVED_MESSAGE}')" in text
    assert "Traceback (most recent call last):" in text and "in open_evidence" in text
    assert "suspect-laptop" not in text and "harm" not in text
    failure = [record for record in records if "raised" in record.getMessage()]
    assert failure, "Celery logged no failure line"
    data = failure[0].data  # type: ignore[attr-defined]
    assert "suspect-laptop" not in repr(data) and "harm" not in repr(data)
    assert data["exc"] == f"FileNotFoundError('{REMOVED_MESSAGE}')"
