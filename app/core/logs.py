"""Logging for every process: one format to stderr, and no message content in any log line.

peewee logs each SQL statement with its parameters at DEBUG, and aiosmtpd's "mail.log" each
DATA line: both would write report text and tokens. They never go below INFO, whatever the
root level, so turning on debugging cannot leak a report.
"""

import logging
import sys

CONTENT_LOGGERS = ("peewee", "mail.log")


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    quiet_content_loggers()


def quiet_content_loggers() -> None:
    for name in CONTENT_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).level))
