"""Faust's ``loghandlers`` and ``logging_config``: the worker applies them when it sets up logging."""

import logging

import pytest

import detstream
from detstream.errors import ImproperlyConfigured
from detstream.worker import Worker


@pytest.fixture
def restored_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_worker_adds_the_apps_loghandlers_to_the_root_logger(restored_root, tmp_path):
    captured = []

    class Capture(logging.Handler):
        def emit(self, record):
            captured.append(record.getMessage())

    app = detstream.App("logs", broker="kafka://localhost:9092", datadir=str(tmp_path))
    assert app.conf.loghandlers == []  # a list of its own: Faust's sentry setup appends to it
    handler = Capture(level=logging.WARNING)
    app.conf.loghandlers.append(handler)
    Worker(app, loglevel="info").setup_logging()
    assert handler in restored_root.handlers
    logging.getLogger("proj").warning("to the handler")
    assert captured == ["to the handler"]


def test_logging_config_is_applied_after_the_workers_own_set_up(restored_root, tmp_path):
    app = detstream.App(
        "logs-config", broker="kafka://localhost:9092", datadir=str(tmp_path),
        logging_config={"version": 1, "incremental": True,
                        "loggers": {"proj.quiet": {"level": "ERROR"}}},
    )
    Worker(app, loglevel="info").setup_logging()
    assert logging.getLogger("proj.quiet").level == logging.ERROR


def test_a_loghandler_that_is_not_a_handler_is_refused_naming_it():
    with pytest.raises(ImproperlyConfigured, match="loghandlers.*'stderr'"):
        detstream.App("bad-logs", broker="kafka://localhost:9092", loghandlers=["stderr"])
