"""Handing a finished message (bytes) to the outgoing relay, or to a Maildir in development."""

import mailbox
import smtplib
import threading
from dataclasses import dataclass
from pathlib import Path


class TemporaryFailure(Exception):
    """Try again later (4xx, 552, connection problems)."""


class PermanentFailure(Exception):
    """The relay refused for good (5xx other than 552)."""


@dataclass(frozen=True)
class Sent:
    answer: str


class MaildirTransport:
    """Writes each message as bytes (never a Message object, which Maildir would regenerate)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def send(self, message: bytes, envelope_from: str, recipient: str) -> Sent:
        for folder in ("tmp", "new", "cur"):  # also when the folder exists but is empty
            (self.path / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
        box = mailbox.Maildir(str(self.path), create=False)
        key = box.add(message)
        return Sent(f"written to {self.path} as {key}")


class SmtpTransport:
    """The relay over SMTP. One connection is kept between messages (a worker sends many in a
    row) and checked with RSET before each: if the relay closed it, a new one is opened, which
    is safe because nothing of that message was sent yet."""

    def __init__(self, host: str, port: int, timeout: float = 60.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def send(self, message: bytes, envelope_from: str, recipient: str) -> Sent:
        with self._lock:
            try:
                smtp = self._session()
                refused = smtp.sendmail(envelope_from, [recipient], message)
            except smtplib.SMTPRecipientsRefused as exc:
                self._reset_after_refusal()
                code, text = next(iter(exc.recipients.values()))
                raise _classify(code, text) from None
            except smtplib.SMTPResponseException as exc:
                self.close()
                raise _classify(exc.smtp_code, exc.smtp_error) from None
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                raise TemporaryFailure(
                    f"relay {self.host}:{self.port} unreachable: {exc}"
                ) from None
        if refused:
            code, text = refused[recipient]
            raise _classify(code, text)
        return Sent(f"250 accepted by {self.host}:{self.port}")

    def _session(self) -> smtplib.SMTP:
        if self._smtp is not None:
            try:
                if self._smtp.rset()[0] == 250:
                    return self._smtp
            except (OSError, smtplib.SMTPException):
                pass
            self.close()
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
        except BaseException:
            _quietly_close(smtp)
            raise
        self._smtp = smtp
        return smtp

    def _reset_after_refusal(self) -> None:
        """The relay refused the recipient; the connection itself is fine for the next one."""
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _quietly_close(smtp)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _classify(code: int, text: bytes | str) -> Exception:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    answer = f"{code} {detail}".strip()
    if 500 <= code < 600 and code != 552:
        return PermanentFailure(answer)
    return TemporaryFailure(answer)
