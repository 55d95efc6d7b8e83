"""How the server logs: plain lines for a person, or one JSON object a line for a collector.

``AUTHPROFILES_LOG_FORMAT`` chooses (``text`` or ``json``). Everything goes to standard
error through the root logger, uvicorn's own loggers included, so each line has the same
shape; standard output is left to what the command prints for the person who ran it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The attributes every LogRecord has; any other one came in through ``extra=``, but for
#: uvicorn's ``color_message`` (the message again, with terminal colour codes).
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ``time`` (ISO 8601 UTC), ``level``, ``logger``,
    ``message``, the record's ``extra`` fields as they are, and ``traceback`` when the
    record carries an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def logging_config(level: str, log_format: LogFormat) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server process and each worker (uvicorn
    applies it in every worker it starts, as its ``log_config``)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # uvicorn sets use_colors on both when asked to; neither is used otherwise.
        "formatters": {"default": formatter, "access": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # uvicorn's loggers hand their records to the root's handler; its access log is
        # off (the app writes its own access lines, see api/access_log.py).
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str, log_format: LogFormat) -> dict[str, Any]:
    """Apply :func:`logging_config` to this process; returns it for uvicorn's workers."""
    import logging.config

    config = logging_config(level, log_format)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)  # a warning is a log line too, in the same format
    return config
