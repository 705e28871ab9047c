"""Webhook channel: POST JSON signed per the Standard Webhooks spec.

Headers: ``webhook-id`` (stable per alert and subscriber: the receiver's idempotency key, so
a retry after a lost response is recognised), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``. The secret is
``whsec_<base64>`` from the environment and is never logged.

Each POST (issue 15): the URL is checked again and its host resolved, every address
checked, and the connection made to a checked one (:mod:`pipeline.report.webhook_url`);
redirects are never followed (a 3xx fails the alert, naming the new address); at most
:data:`~pipeline.report.transport.MAX_RESPONSE_BYTES` of the answer are read; the whole
exchange is bounded by a deadline; ``Retry-After`` on 429/503 is passed on to the delivery
pass. URLs in messages and logs have their credentials and tokens redacted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

from pipeline.core.config import Secret, secret_from_env
from pipeline.core.errors import ConfigError
from pipeline.core.version import __version__
from pipeline.report.http_post import HttpAnswer, post
from pipeline.report.i18n import aoi_name_in, catalogue, named_reason_args
from pipeline.report.reasons import clause_text, reason_text
from pipeline.report.subscriptions import Subscription
from pipeline.report.transport import (
    DELIVERY_DEADLINE_S,
    MAX_RESPONSE_BYTES,
    Deadline,
    DeadlineExceeded,
    DeliveryError,
    retry_after_s,
)
from pipeline.report.webhook_url import (
    Network,
    UrlPolicyError,
    WebhookUrl,
    parse_networks,
    parse_webhook_url,
    redact_url,
    resolve,
    scrub,
)

__all__ = ["DeliveryError", "WebhookChannel", "body_for", "digest_body", "digest_id", "sign", "webhook_id"]

log = logging.getLogger(__name__)


def webhook_id(alert_id: str, subscriber: str) -> str:
    """Stable message id of one alert for one subscriber (``msg_<24 hex>``)."""
    return "msg_" + hashlib.sha256(f"{alert_id}|{subscriber}".encode()).hexdigest()[:24]


def digest_id(alert_ids: Sequence[str], subscriber: str) -> str:
    """Stable message id of one backlog digest for one subscriber (``msg_digest_<24 hex>`` of
    its sorted alert ids): the same on every retry of the same digest."""
    blob = "\n".join(sorted(alert_ids)) + f"|{subscriber}"
    return "msg_digest_" + hashlib.sha256(blob.encode()).hexdigest()[:24]


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
    ``data.reason_en`` keeps the English sentence of record, ``data.aoi_name`` the AOI's name
    of record and ``data.aoi_name_local`` its name in ``data.lang``.
    """
    data = _data(alert, lang=lang)
    doc = {"type": f"flag.{alert['status']}", "timestamp": alert.get("created", ""), "data": data}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _data(alert: Mapping[str, Any], *, lang: str) -> dict[str, Any]:
    """An alert as a webhook's ``data``: reason and clause in ``lang``, ``aoi_name`` kept as
    recorded, ``aoi_name_local`` the AOI's name in ``lang`` (its ``aoi_names``)."""
    cat = catalogue(lang)
    local = aoi_name_in(
        alert.get("aoi_names"), lang=lang, default=str(alert.get("aoi_name") or alert["aoi_id"])
    )
    named = dict(alert) | {"reason_args": named_reason_args(alert.get("reason_args"), aoi_name=local)}
    return dict(alert) | {
        "lang": lang,
        "aoi_name_local": local,
        "reason": reason_text(named, cat=cat),
        "reason_en": alert.get("reason"),
        "clause": clause_text(alert, cat=cat),
    }


def digest_body(alerts: Sequence[Mapping[str, Any]], *, lang: str = "en") -> bytes:
    """The JSON body of a backlog digest: ``{"type": "flag.digest", "timestamp", "data":
    {"count", "lang", "alert_ids", "alerts": [<data of each alert, as in body_for>]}}``, oldest
    ``last_seen`` first; the same bytes on every retry."""
    ordered = sorted(alerts, key=lambda a: (str(a.get("last_seen") or ""), str(a["alert_id"])))
    data = {
        "count": len(ordered),
        "lang": lang,
        "alert_ids": [a["alert_id"] for a in ordered],
        "alerts": [_data(a, lang=lang) for a in ordered],
    }
    stamp = max((str(a.get("created") or "") for a in ordered), default="")
    doc = {"type": "flag.digest", "timestamp": stamp, "data": data}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class WebhookChannel:
    """POST one alert per request to a subscription's ``webhook_url``.

    Parameters
    ----------
    timeout_s
        Socket timeout of each connect and read (s).
    deadline_s
        Longest one POST may take in all (s); default
        :data:`~pipeline.report.transport.DELIVERY_DEADLINE_S`.
    max_response_bytes
        Most answer bytes read; default :data:`~pipeline.report.transport.MAX_RESPONSE_BYTES`.
    ssl_context
        Trust store and TLS settings (default: the system's, hostname checked).
    """

    name = "webhook"

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        deadline_s: float | None = None,
        max_response_bytes: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.deadline_s = DELIVERY_DEADLINE_S if deadline_s is None else deadline_s
        self.max_response_bytes = MAX_RESPONSE_BYTES if max_response_bytes is None else max_response_bytes
        self.ssl_context = ssl_context or ssl.create_default_context()

    def send(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None:
        """Deliver ``alerts`` (one request each); raise :class:`DeliveryError` on failure."""
        secret, url, allow = self._target(sub)
        for alert in alerts:
            msg_id, body = webhook_id(alert["alert_id"], sub.name), body_for(alert, lang=sub.lang)
            self._deliver(msg_id, body, secret=secret, url=url, allow=allow, sub=sub)

    def send_digest(self, alerts: Sequence[Mapping[str, Any]], *, sub: Subscription) -> None:
        """Deliver ``alerts`` as one request (:func:`digest_body`, ``webhook-id``
        :func:`digest_id`); raise :class:`DeliveryError` on failure."""
        secret, url, allow = self._target(sub)
        msg_id = digest_id([a["alert_id"] for a in alerts], sub.name)
        self._deliver(
            msg_id, digest_body(alerts, lang=sub.lang), secret=secret, url=url, allow=allow, sub=sub
        )

    def _target(self, sub: Subscription) -> tuple[Secret, WebhookUrl, list[Network]]:
        """The signing secret and the checked URL of ``sub``'s endpoint."""
        secret = secret_from_env(sub.secret_env)
        if not secret:
            raise ConfigError(
                f"Subscription '{sub.name}' has a webhook but {sub.secret_env} is not set. "
                f"Export {sub.secret_env}=whsec_<base64 secret shared with the receiver>."
            )
        try:
            allow = parse_networks(sub.allow_networks)
            url = parse_webhook_url(sub.webhook_url, allow_networks=allow)
        except UrlPolicyError as exc:
            raise DeliveryError(f"{exc} (subscription '{sub.name}')", retryable=False) from None
        return secret, url, list(allow)

    def _deliver(
        self,
        msg_id: str,
        body: bytes,
        *,
        secret: Secret,
        url: WebhookUrl,
        allow: Sequence[Network],
        sub: Subscription,
    ) -> None:
        """Sign and POST one message; raise :class:`DeliveryError` unless a 2xx answers."""
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": f"asm-monitor/{__version__}",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(msg_id, ts, body, secret=secret),
        }
        answer = self._post(url, body, headers, sub=sub, allow=allow)
        _judge(answer, url=url, sub=sub)
        log.debug(
            "webhook %s -> %s: HTTP %d in %.2f s, %d bytes of the answer read%s",
            msg_id,
            sub.name,
            answer.status,
            answer.seconds,
            answer.body_read,
            " (the rest left unread)" if answer.truncated else "",
        )

    def _post(
        self,
        url: WebhookUrl,
        body: bytes,
        headers: Mapping[str, str],
        *,
        sub: Subscription,
        allow: Sequence[Network],
    ) -> HttpAnswer:
        """Resolve and check ``url``'s addresses, then POST within the deadline."""
        where = f"POST {url.display}"
        try:
            addresses = resolve(url, allow_networks=allow)
        except UrlPolicyError as exc:
            raise DeliveryError(f"{exc} (subscription '{sub.name}')", retryable=False) from None
        except OSError as exc:
            raise DeliveryError(f"{where} failed: cannot resolve {url.host} ({exc}).") from None
        try:
            with Deadline(self.deadline_s) as deadline:
                return post(
                    url,
                    addresses,
                    body,
                    headers,
                    timeout_s=self.timeout_s,
                    deadline=deadline,
                    max_body=self.max_response_bytes,
                    context=self.ssl_context,
                )
        except DeadlineExceeded as exc:
            raise DeliveryError(
                f"{where} failed: {exc} (the receiver is too slow; it is tried again later)."
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"{where} failed: the TLS certificate was not accepted ({exc.verify_message}). Fix the "
                f"receiver's certificate, then run `asm-monitor alerts --run DIR --retry`.",
                retryable=False,
            ) from None
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, garbled
            detail = scrub(str(exc), sub.webhook_url)
            raise DeliveryError(f"{where} failed: {type(exc).__name__}: {detail}") from None


def _judge(answer: HttpAnswer, *, url: WebhookUrl, sub: Subscription) -> None:
    """Raise :class:`DeliveryError` unless ``answer`` is a 2xx."""
    code = answer.status
    if code // 100 == 2:
        return
    where = f"POST {url.display} -> HTTP {code}"
    if code // 100 == 3:
        target = redact_url(urljoin(sub.webhook_url, answer.location or ""))
        raise DeliveryError(
            f"{where} redirect to {target if answer.location else '(no Location)'}: not followed (it "
            f"would carry the signed alert elsewhere). If the receiver has moved, set webhook_url of "
            f"subscription '{sub.name}' to its new address, then run `asm-monitor alerts --run DIR --retry`.",
            retryable=False,
        )
    wait = retry_after_s(answer.retry_after) if code in (429, 503) else None
    # 408 / 429 / 5xx are transient; other 4xx mean the request itself is refused
    transient = code in (408, 429) or code >= 500
    raise DeliveryError(
        where + (f" (Retry-After {wait:g} s)" if wait is not None else ""),
        retryable=transient,
        retry_after_s=wait,
    )
