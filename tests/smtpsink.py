"""A real SMTP server on loopback for tests: records what it receives, answers as told."""

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    data: bytes


class LoopServer:
    """An asyncio server on a free loopback port, run by a loop in a thread of its own."""

    def __init__(self, factory):
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(self.loop.create_server(factory, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class SmtpSink(LoopServer):
    """Answers each DATA with the next scripted reply (default 250) and keeps what it accepted."""

    def __init__(self):
        self.received: list[Received] = []
        self.replies: deque[str] = deque()
        super().__init__(lambda: SMTP(self, hostname="sink"))

    async def handle_DATA(self, server, session, envelope):
        reply = self.replies.popleft() if self.replies else "250 2.0.0 OK"
        if reply.startswith("250"):
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return reply
