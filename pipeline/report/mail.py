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
from pipeline.report.i18n import aoi_name_in, catalogue, named_reason_args
from pipeline.report.markup import esc, grid_table, page, rows_table
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


def local_aoi_name(alert: Mapping[str, Any], lang: str) -> str:
    """The alert's AOI named for readers of ``lang`` (its ``aoi_names``), else as recorded."""
    return aoi_name_in(
        alert.get("aoi_names"), lang=lang, default=str(alert.get("aoi_name") or alert["aoi_id"])
    )


def _fields(alert: Mapping[str, Any], lang: str) -> dict[str, Any]:
    cat = catalogue(lang)
    # the reason sentence names the AOI as the reader does
    named = {
        **alert,
        "reason_args": named_reason_args(alert.get("reason_args"), aoi_name=local_aoi_name(alert, lang)),
    }
    return {
        cat.t("field.rule"): cat.label("rule", alert["rule_id"]),
        cat.t("field.severity"): cat.label("severity", alert["severity"]),
        cat.t("field.status"): cat.label("status", alert["status"]),
        cat.t("field.reason"): reason_text(named, cat=cat),
        cat.t("field.hectares"): cat.ha(alert.get("area_ha")),
        cat.t("field.first_seen"): alert.get("first_seen"),
        cat.t("field.last_seen"): alert.get("last_seen"),
        cat.t("field.site"): alert.get("site_id"),
        cat.t("field.coordinates"): f"{alert['lon']:.5f}, {alert['lat']:.5f}",
        cat.t("field.clause"): clause_text(alert, cat=cat),
        cat.t("field.flag_id"): alert.get("flag_id"),
        cat.t("field.map_link"): alert.get("map_link"),
    }


def _aoi_names(alerts: Sequence[Mapping[str, Any]], lang: str) -> str:
    """The AOIs of ``alerts`` in ``lang``, each once, in order of appearance."""
    return ", ".join(dict.fromkeys(local_aoi_name(a, lang) for a in alerts))


def build_message(
    alerts: Sequence[Mapping[str, Any]], *, sub: Subscription, sender: str, backlog_days: int | None = None
) -> EmailMessage:
    """One message for ``alerts``: one alert, a digest of one AOI's alerts, or with
    ``backlog_days`` a subscription's backlog (incidents last seen more than that many days
    before their run's newest evidence) as one compact table, oldest first."""
    cat = catalogue(sub.lang)
    first = alerts[0]
    aoi = _aoi_names(alerts, sub.lang)
    if backlog_days is not None:
        alerts = sorted(alerts, key=lambda a: (str(a.get("last_seen") or ""), str(a["alert_id"])))
        days = [str(a.get("last_seen") or "") for a in alerts if a.get("last_seen")]
        subject = cat.t(
            "alert.backlog_subject",
            n=len(alerts),
            aoi=aoi,
            first=min(days, default="?"),
            last=max(days, default="?"),
        )
        intro = cat.t("alert.backlog_intro", days=backlog_days)
    elif len(alerts) == 1:
        subject = cat.t(
            "alert.subject",
            status=cat.label("status", first["status"]),
            rule=cat.label("rule", first["rule_id"]),
            aoi=aoi,
            ha=cat.ha(first.get("area_ha")),
        )
        intro = cat.t("alert.intro")
    else:
        subject, intro = cat.t("alert.digest_subject", n=len(alerts), aoi=aoi), cat.t("alert.intro")
    footer = cat.t("alert.footer", aoi=aoi)
    text_parts = [intro, ""]
    html_parts = [f"<p>{esc(intro)}</p>"]
    if backlog_days is not None:
        text, html = _backlog_table(alerts, sub.lang)
        text_parts += text
        html_parts.append(html)
    for alert in alerts if backlog_days is None else ():
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
    msg["X-ASM-Alert-Ids"] = header_text(", ".join(a["alert_id"] for a in alerts))
    msg.set_content("\n".join(text_parts))
    msg.add_alternative(page(title=subject, body="".join(html_parts), lang=sub.lang), subtype="html")
    return msg


def _backlog_table(alerts: Sequence[Mapping[str, Any]], lang: str) -> tuple[list[str], str]:
    """A backlog as text lines and one HTML table: one row per alert (AOI, rule, severity,
    status, hectares, last seen, site, link to the flag on the map)."""
    cat = catalogue(lang)
    keys = ("aoi", "rule", "severity", "status", "hectares", "last_seen", "site", "map_link")
    rows = []
    for a in alerts:
        rows.append(
            [
                local_aoi_name(a, lang),
                cat.label("rule", a["rule_id"]),
                cat.label("severity", a["severity"]),
                cat.label("status", a["status"]),
                cat.ha(a.get("area_ha")),
                str(a.get("last_seen") or ""),
                str(a.get("site_id") or ""),
                str(a.get("map_link") or ""),
            ]
        )
    text = [" · ".join(v for v in row if v) for row in rows] + [""]
    body = [
        [esc(v) for v in row[:-1]]
        + [f"<a href='{esc(row[-1])}'>{esc(cat.t('field.map_link'))}</a>" if row[-1] else ""]
        for row in rows
    ]
    return text, grid_table([esc(cat.t(f"field.{k}")) for k in keys], body)


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
        p = self._params_for(sub)
        self._send(build_message(alerts, sub=sub, sender=p.smtp_from))

    def send_digest(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None:
        """Send ``alerts`` (a backlog) as one message with one table; raise
        :class:`DeliveryError` on failure."""
        p = self._params_for(sub)
        self._send(build_message(alerts, sub=sub, sender=p.smtp_from, backlog_days=p.max_age_days))

    def _params_for(self, sub: Subscription) -> AlertParams:
        """The settings, refusing (for good) when no SMTP host is set."""
        if not self.params.smtp_host:
            raise DeliveryError(
                f"Subscription '{sub.name}' wants e-mail but [alerts] smtp_host is not set.", retryable=False
            )
        return self.params

    def _send(self, msg: EmailMessage) -> None:
        """One SMTP session that sends ``msg``, within the deadline."""
        p = self.params
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
