"""Email over SMTP (the standard library's ``smtplib``): one connection per message.

Incident emails are rare (once per incident, not per failed call), so a connection per
message costs nothing worth pooling, and a server that dropped an idle connection never
fails a send. Errors name the server and its answer, never the password: an answer that
quotes it anyway has it replaced.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from authprofiles.notify.errors import DeliveryFailed
from authprofiles.settings import Settings

#: How long one exchange with the server may take (AUTHPROFILES_SMTP_TIMEOUT_SECONDS): an
#: unreachable server holds up only the email worker, for this long per message.
TIMEOUT_SECONDS = 10.0
#: The longest error kept, once the password is out of it.
MAX_ERROR_LENGTH = 500
Security = Literal["none", "starttls", "tls"]


class SmtpEmailSender:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.sender = sender
        self.username = username
        self._password = password
        self.timeout = timeout

    def __repr__(self) -> str:  # the password stays out of tracebacks and debuggers
        return f"SmtpEmailSender({self.host}:{self.port}, {self.security})"

    def message(self, to: str, subject: str, text: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        domain = self.sender.rpartition("@")[2] or "localhost"
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(text)
        return message

    def send(self, to: str, subject: str, text: str) -> None:
        """Send one plain-text email to ``to``; :class:`DeliveryFailed` when the server
        cannot be reached or refuses it."""
        try:
            message = self.message(to, subject, text)
        except ValueError as exc:
            raise DeliveryFailed(f"the email cannot be written: {exc}") from None
        where = f"the SMTP server {self.host}:{self.port}"
        try:
            with self._connect() as smtp:
                if self.security == "starttls":
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise DeliveryFailed(
                            f"{where} does not offer STARTTLS; set AUTHPROFILES_SMTP_SECURITY "
                            "to tls (port 465) or, on a trusted network only, none"
                        )
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self._password or "")
                smtp.send_message(message)
        except DeliveryFailed:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(
                self._scrub(
                    f"{where} refused the login of {self.username!r}: {exc.smtp_code} "
                    f"{self._text(exc.smtp_error)}"
                )
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            answers = "; ".join(
                f"{address}: {code} {self._text(reason)}"
                for address, (code, reason) in exc.recipients.items()
            )
            raise DeliveryFailed(
                self._scrub(f"{where} refused the recipient ({answers})")
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(
                self._scrub(f"{where} answered {exc.smtp_code} {self._text(exc.smtp_error)}")
            ) from None
        except ssl.SSLError as exc:
            raise DeliveryFailed(
                self._scrub(f"TLS with {where} failed: {exc.reason or exc}")
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise DeliveryFailed(self._scrub(f"could not send through {where}: {reason}")) from None

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _scrub(self, message: str) -> str:
        """``message`` without the password, then cut short: replaced first, so a password
        the cut would straddle cannot leave its beginning behind."""
        if self._password:
            message = message.replace(self._password, "[redacted]")
        return message[:MAX_ERROR_LENGTH]

    def _text(self, value: bytes | str) -> str:
        """A server's answer on one line, without the password, at most 300 characters
        (scrubbed before it is cut, as in :meth:`_scrub`)."""
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return self._scrub(" ".join(self._scrub(text).split()))[:300]


def smtp_sender(settings: Settings) -> SmtpEmailSender | None:
    """The sender the settings describe; None when no SMTP server is set."""
    if not settings.smtp_host:
        return None
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpEmailSender(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        sender=settings.smtp_from,
        username=settings.smtp_username or None,
        password=password,
        timeout=settings.smtp_timeout_seconds,
    )


__all__ = ["SmtpEmailSender", "smtp_sender"]
