"""The SMTP intake at FOREWARN_INTAKE_LISTEN.

Until report intake is built, this skeleton answers EHLO and refuses every recipient with a
temporary 451, so that senders keep their messages and retry later: nothing is accepted that
could be lost.
"""

import asyncio
import logging
import signal

from aiosmtpd.smtp import SMTP

log = logging.getLogger("forewarn.intake")

NOT_READY = "451 4.3.2 Report intake is not open yet; please try again later"


class IntakeHandler:
    def __init__(self, security_address: str):
        self.security_address = security_address

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return NOT_READY

    async def handle_DATA(self, server, session, envelope):
        return NOT_READY

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default answers 500 with internal text; we keep the sender retrying.
        log.error("intake error: %s", type(error).__name__)
        return "451 4.3.0 Temporary local problem; please try again later"


class IntakeSMTP(SMTP):
    # Real mail has lines longer than RFC 5321's 1000 octets.
    line_length_limit = 64 * 1024


def build_server(handler: IntakeHandler, hostname: str) -> IntakeSMTP:
    return IntakeSMTP(handler, hostname=hostname, ident="Forewarn intake", timeout=300)


async def serve(host: str, port: int, handler: IntakeHandler, hostname: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    # aiosmtpd logs every command (addresses included) at INFO: keep only its problems.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: build_server(handler, hostname), host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("intake listening on %s:%d", host, port)
    async with server:
        await stop.wait()
    log.info("intake stopped")
