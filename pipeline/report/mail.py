"""E-mail channel: SMTP (smtplib), optional STARTTLS, plain text + HTML with the map link."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from pipeline.core.config import AlertParams, secret_from_env
from pipeline.report.i18n import catalogue
from pipeline.report.markup import esc, page, rows_table
from pipeline.report.reasons import clause_text, reason_text
from pipeline.report.subscriptions import Subscription
from pipeline.report.webhook import DeliveryError


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
    msg["Subject"] = subject.replace("\n", " ")
    msg["From"] = sender
    msg["To"] = ", ".join(sub.email)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="asm-monitor")
    msg["X-ASM-Alert-Ids"] = ",".join(a["alert_id"] for a in alerts)
    msg.set_content("\n".join(text_parts))
    msg.add_alternative(page(title=subject, body="".join(html_parts), lang=sub.lang), subtype="html")
    return msg


class EmailChannel:
    """Send alerts by SMTP; password only from ``ASM_SMTP_PASSWORD``."""

    name = "email"

    def __init__(self, params: AlertParams) -> None:
        self.params = params

    def send(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None:
        """Send one message for ``alerts``; raise :class:`DeliveryError` on failure."""
        p = self.params
        if not p.smtp_host:
            raise DeliveryError(
                f"Subscription '{sub.name}' wants e-mail but [alerts] smtp_host is not set.", retryable=False
            )
        msg = build_message(alerts, sub=sub, sender=p.smtp_from)
        try:
            with smtplib.SMTP(p.smtp_host, p.smtp_port, timeout=p.timeout_s) as smtp:
                smtp.ehlo()
                if p.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if p.smtp_user:
                    smtp.login(p.smtp_user, secret_from_env("ASM_SMTP_PASSWORD").reveal())
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"SMTP refused every recipient: {sorted(exc.recipients)}", retryable=False
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"SMTP {p.smtp_host}:{p.smtp_port} failed: {type(exc).__name__}: {exc}"
            ) from None
