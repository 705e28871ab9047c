"""Webhook channel: POST JSON signed per the Standard Webhooks spec.

Headers: ``webhook-id`` (stable per alert and subscriber: the receiver's idempotency key, so
a retry after a lost response is recognised), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``. The secret is
``whsec_<base64>`` from the environment and is never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from pipeline.core.config import Secret, secret_from_env
from pipeline.core.errors import ConfigError
from pipeline.core.version import __version__
from pipeline.report.i18n import catalogue
from pipeline.report.reasons import clause_text, reason_text
from pipeline.report.subscriptions import Subscription

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """One attempt failed; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def webhook_id(alert_id: str, subscriber: str) -> str:
    """Stable message id of one alert for one subscriber (``msg_<24 hex>``)."""
    return "msg_" + hashlib.sha256(f"{alert_id}|{subscriber}".encode()).hexdigest()[:24]


def _key(secret: Secret) -> bytes:
    raw = secret.reveal()
    body = raw[len("whsec_") :] if raw.startswith("whsec_") else raw
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise ConfigError(
            "The webhook secret is not base64. Use the 'whsec_<base64>' secret the receiver issued."
        ) from None


def sign(msg_id: str, timestamp: int, body: bytes, *, secret: Secret) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def body_for(alert: Mapping[str, Any], *, lang: str = "en") -> bytes:
    """The JSON body: ``{"type": "flag.<status>", "timestamp", "data": <alert>}``; the same
    bytes on every retry.

    ``data.reason`` and ``data.clause`` are in the subscriber's language (``data.lang``);
    ``data.reason_en`` keeps the English sentence of record.
    """
    cat = catalogue(lang)
    data = dict(alert) | {
        "lang": lang,
        "reason": reason_text(alert, cat=cat),
        "reason_en": alert.get("reason"),
        "clause": clause_text(alert, cat=cat),
    }
    doc = {"type": f"flag.{alert['status']}", "timestamp": alert.get("created", ""), "data": data}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class WebhookChannel:
    """POST one alert per request to a subscription's ``webhook_url``."""

    name = "webhook"

    def __init__(self, *, timeout_s: float = 10.0, session: requests.Session | None = None) -> None:
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    def send(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None:
        """Deliver ``alerts`` (one request each); raise :class:`DeliveryError` on failure."""
        secret = secret_from_env(sub.secret_env)
        if not secret:
            raise ConfigError(
                f"Subscription '{sub.name}' has a webhook but {sub.secret_env} is not set. "
                f"Export {sub.secret_env}=whsec_<base64 secret shared with the receiver>."
            )
        for alert in alerts:
            msg_id = webhook_id(alert["alert_id"], sub.name)
            body = body_for(alert, lang=sub.lang)
            ts = int(time.time())
            headers = {
                "content-type": "application/json",
                "user-agent": f"asm-monitor/{__version__}",
                "webhook-id": msg_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": sign(msg_id, ts, body, secret=secret),
            }
            try:
                resp = self.session.post(sub.webhook_url, data=body, headers=headers, timeout=self.timeout_s)
            except requests.RequestException as exc:
                raise DeliveryError(f"POST {sub.webhook_url} failed: {type(exc).__name__}") from None
            if resp.status_code // 100 != 2:
                # 408 / 429 / 5xx are transient; other 4xx mean the request itself is refused
                transient = resp.status_code in (408, 429) or resp.status_code >= 500
                raise DeliveryError(f"POST {sub.webhook_url} -> HTTP {resp.status_code}", retryable=transient)
            log.debug("webhook %s -> %s: %s", msg_id, sub.name, resp.status_code)
