"""E-mail channel: SMTP (smtplib), optional STARTTLS, plain text + HTML with the map link.

Header values built from data (an AOI name in the Subject, alert ids) have line breaks and
other control characters replaced by spaces, so no text can start a header of its own; the
message is encoded by :data:`email.policy.default` (RFC 2047 for non-ASCII). Each message
carries a ``Message-ID`` made from its alert ids and subscriber (:func:`message_id`), the
same on every resend, so a copy sent twice (a reply lost, a kill during DATA) is
recognisable. One SMTP session is bounded by the delivery deadline, not only a socket
timeout.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from pipeline.core.config import AlertParams, secret_from_env
from pipeline.report.i18n import catalogue
from pipeline.report.markup import esc, page, rows_table
from pipeline.report.reasons import clause_text, reason_text
from pipeline.report.subscriptions import Subscription
from pipeline.report.transport import DELIVERY_DEADLINE_S, Deadline, DeliveryError

#: Line breaks (also U+0085, U+2028, U+2029) and other control characters, kept out of headers.
_HEADER_BREAKERS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ID_PART = re.compile(r"[^A-Za-z0-9_-]+")


def header_text(value: object) -> str:
    """``value`` as one header line: control characters and line breaks become spaces."""
    return " ".join(_HEADER_BREAKERS.sub(" ", str(value)).split())


def message_id(alert_ids: Sequence[str], subscriber: str) -> str:
    """``<alert-id.subscriber@asm-monitor>`` for one alert, ``<digest-<24 hex>.subscriber@
    asm-monitor>`` for a digest (hash of its sorted alert ids): the same on every resend, and
    distinct per subscriber, as RFC 5322 wants one id per message."""
    sub = _ID_PART.sub("_", subscriber)
    if len(alert_ids) == 1:
        return f"<{_ID_PART.sub('_', alert_ids[0])}.{sub}@asm-monitor>"
    digest = hashlib.sha256("\n".join(sorted(alert_ids)).encode()).hexdigest()[:24]
    return f"<digest-{digest}.{sub}@asm-monitor>"


def _fields(alert: Mapping[str, Any], lang: str) -> dict[str, Any]:
    cat = catalogue(lang)
    return {
        cat.t("field.rule"): cat.label("rule", alert["rule_id"]),
        cat.t("field.severity"): cat.label("severity", alert["severity"]),
        cat.t("field.status"): cat.label("status", alert["status"]),
        cat.t("field.reason"): reason_text(alert, cat=cat),
        cat.t("field.hectares"): cat.ha(alert.get("area_ha")),
        cat.t("field.first_seen"): alert.get("first_seen"),
        cat.t("field.last_seen"): alert.get("last_seen"),
        cat.t("field.site"): alert.get("site_id"),
        cat.t("field.coordinates"): f"{alert['lon']:.5f}, {alert['lat']:.5f}",
        cat.t("field.clause"): clause_text(alert, cat=cat),
        cat.t("field.flag_id"): alert.get("flag_id"),
        cat.t("field.map_link"): alert.get("map_link"),
    }


def build_message(alerts: Sequence[Mapping[str, Any]], *, sub: Subscription, sender: str) -> EmailMessage:
    """One message for ``alerts`` (one alert, or a digest of one AOI's alerts)."""
    cat = catalogue(sub.lang)
    first = alerts[0]
    if len(alerts) == 1:
        subject = cat.t(
            "alert.subject",
            status=cat.label("status", first["status"]),
            rule=cat.label("rule", first["rule_id"]),
            aoi=first.get("aoi_name", first["aoi_id"]),
            ha=cat.ha(first.get("area_ha")),
        )
    else:
        subject = cat.t("alert.digest_subject", n=len(alerts), aoi=first.get("aoi_name", first["aoi_id"]))
    footer = cat.t("alert.footer", aoi=first.get("aoi_name", first["aoi_id"]))
    text_parts = [cat.t("alert.intro"), ""]
    html_parts = [f"<p>{esc(cat.t('alert.intro'))}</p>"]
    for alert in alerts:
        fields = _fields(alert, sub.lang)
        text_parts += [f"{k}: {v}" for k, v in fields.items() if v not in (None, "")] + [""]
        link = alert.get("map_link", "")
        html_parts.append(
            rows_table({k: v for k, v in fields.items() if k != cat.t("field.map_link")})
            + (f"<p><a href='{esc(link)}'>{esc(cat.t('scorecard.open_map'))}</a></p>" if link else "")
        )
    text_parts.append(footer)
    html_parts.append(f"<p class='muted'>{esc(footer)}</p>")
    msg = EmailMessage()
    msg["Subject"] = header_text(subject)
    msg["From"] = header_text(sender)
    msg["To"] = ", ".join(sub.email)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id([a["alert_id"] for a in alerts], sub.name)
    msg["X-ASM-Alert-Ids"] = header_text(",".join(a["alert_id"] for a in alerts))
    msg.set_content("\n".join(text_parts))
    msg.add_alternative(page(title=subject, body="".join(html_parts), lang=sub.lang), subtype="html")
    return msg


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP whose socket (also after STARTTLS) the deadline can shut down."""

    def __init__(self, *, deadline: Deadline, timeout: float) -> None:
        super().__init__(timeout=timeout)
        deadline.watch(self._current)

    def _current(self) -> socket.socket | None:
        return getattr(self, "sock", None)


class EmailChannel:
    """Send alerts by SMTP; password only from ``ASM_SMTP_PASSWORD``.

    ``deadline_s`` bounds one SMTP session in all (s); default
    :data:`~pipeline.report.transport.DELIVERY_DEADLINE_S`.
    """

    name = "email"

    def __init__(self, params: AlertParams, *, deadline_s: float | None = None) -> None:
        self.params = params
        self.deadline_s = DELIVERY_DEADLINE_S if deadline_s is None else deadline_s

    def send(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None:
        """Send one message for ``alerts``; raise :class:`DeliveryError` on failure."""
        p = self.params
        if not p.smtp_host:
            raise DeliveryError(
                f"Subscription '{sub.name}' wants e-mail but [alerts] smtp_host is not set.", retryable=False
            )
        msg = build_message(alerts, sub=sub, sender=p.smtp_from)
        try:
            with Deadline(self.deadline_s) as deadline, _SMTP(deadline=deadline, timeout=p.timeout_s) as smtp:
                smtp.connect(p.smtp_host, p.smtp_port)
                smtp.ehlo()
                if p.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if p.smtp_user:
                    smtp.login(p.smtp_user, secret_from_env("ASM_SMTP_PASSWORD").reveal())
                deadline.check()
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"SMTP refused every recipient: {sorted(exc.recipients)}", retryable=False
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            if deadline.expired.is_set():
                raise DeliveryError(
                    f"SMTP {p.smtp_host}:{p.smtp_port} failed: no complete answer within the delivery "
                    f"deadline of {self.deadline_s:g} s (the server is too slow; it is tried again later)."
                ) from None
            raise DeliveryError(
                f"SMTP {p.smtp_host}:{p.smtp_port} failed: {type(exc).__name__}: {exc}"
            ) from None
