"""NGO subscriptions: who receives which alerts, how, and in which language.

Configured as ``[[alerts.subscriptions]]`` tables (see :class:`pipeline.core.config.AlertParams`)::

    [[alerts.subscriptions]]
    name = "rede-xingu"
    webhook_url = "https://ngo.example/hooks/asm"
    aois = ["munduruku"]
    min_severity = "high"
    lang = "pt"

    [[alerts.subscriptions]]
    name = "peru-watch"                       # every AOI in Peru, and one collection
    webhook_url = "https://ngo.example/hooks/peru"
    countries = ["Peru"]
    collections = ["amazon-indigenous-territories"]

    [[alerts.subscriptions]]
    name = "on-premise"                       # a receiver inside the NGO's own network
    webhook_url = "http://10.20.0.5:9000/asm"
    allow_networks = ["10.20.0.0/16"]         # else private addresses are refused

    [[alerts.subscriptions]]
    name = "amapa-watch"
    email = ["alerts@ngo.example"]
    rules = ["activity_without_valid_licence", "unregistered_mining"]
    digest = true
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from typing import Any

from pipeline.comply.flags import SEVERITY_ORDER
from pipeline.core.errors import ConfigError
from pipeline.report.i18n import LANGUAGES
from pipeline.report.webhook_url import UrlPolicyError, parse_networks, parse_webhook_url

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEYS = {
    "name",
    "webhook_url",
    "secret_env",
    "email",
    "aois",
    "countries",
    "collections",
    "rules",
    "min_severity",
    "lang",
    "digest",
    "allow_networks",
}


@dataclass(frozen=True, kw_only=True)
class Subscription:
    """One NGO's subscription."""

    name: str
    """Stable id of the subscriber; part of the delivery ledger key, so do not rename lightly."""
    webhook_url: str = ""
    """Endpoint for Standard Webhooks POSTs; empty = no webhook."""
    secret_env: str = "ASM_WEBHOOK_SECRET"
    """Environment variable holding this endpoint's signing secret (``whsec_<base64>``)."""
    email: tuple[str, ...] = ()
    """Recipients; empty = no e-mail."""
    aois: tuple[str, ...] = ()
    """AOI ids. With ``countries`` and ``collections``: an alert matches when its AOI is
    named by any of the three; all three empty = every AOI."""
    countries: tuple[str, ...] = ()
    """Countries of the AOIs (as the AOI files name them, e.g. ``"Peru"``; case-insensitive)."""
    collections: tuple[str, ...] = ()
    """AOI collection ids (e.g. ``"amazon-indigenous-territories"``)."""
    rules: tuple[str, ...] = ()
    """Rule ids; empty = every rule."""
    min_severity: str = "medium"
    """Lowest severity sent: info, low, medium, high."""
    lang: str = "en"
    """Language of e-mails: en, es, pt, fr."""
    digest: bool = False
    """E-mail: one message per AOI and delivery pass listing every alert."""
    allow_networks: tuple[str, ...] = ()
    """Networks the webhook may reach although they are not public (``"10.20.0.0/16"``),
    also over plain http; a cloud metadata address only when named exactly (``/32``). See
    :mod:`pipeline.report.webhook_url`."""

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this subscription uses: ``webhook`` and/or ``email``."""
        return tuple(c for c, on in (("webhook", self.webhook_url), ("email", self.email)) if on)

    def wants(self, alert: Mapping[str, Any]) -> bool:
        """True when ``alert`` (an outbox payload) matches AOIs, rules and severity."""
        return (
            self.wants_aoi(alert)
            and (not self.rules or alert["rule_id"] in self.rules)
            and SEVERITY_ORDER.get(alert["severity"], 0) >= SEVERITY_ORDER[self.min_severity]
        )

    def wants_aoi(self, alert: Mapping[str, Any]) -> bool:
        """True when the alert's AOI is named by id, country or collection (or none is set)."""
        if not (self.aois or self.countries or self.collections):
            return True
        country = str(alert.get("aoi_country") or "").casefold()
        return (
            alert["aoi_id"] in self.aois
            or (bool(country) and country in {c.casefold() for c in self.countries})
            or (alert.get("aoi_collection") is not None and alert.get("aoi_collection") in self.collections)
        )


def _strings(value: Any, *, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: '{key}' must be a string or a list of strings, got {value!r}.")


def parse_subscriptions(
    raw: Sequence[Mapping[str, Any]], *, default_min_severity: str = "medium"
) -> list[Subscription]:
    """Validate ``[[alerts.subscriptions]]`` tables.

    Raises
    ------
    ConfigError
        Unknown key, missing or duplicate name, no channel, bad severity or language.
    """
    out: list[Subscription] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"[[alerts.subscriptions]] #{i + 1}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where} must be a table, got {item!r}.")
        unknown = set(item) - _KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {sorted(unknown)}. Valid keys: {', '.join(sorted(_KEYS))}."
            )
        name = str(item.get("name", ""))
        if not _NAME.match(name):
            raise ConfigError(f"{where}: 'name' must be a short id like 'rede-xingu', got {name!r}.")
        if name in seen:
            raise ConfigError(f"{where}: name '{name}' is used twice. Give each subscription its own name.")
        seen.add(name)
        sev = str(item.get("min_severity", default_min_severity))
        if sev not in SEVERITY_ORDER:
            raise ConfigError(f"{where}: min_severity '{sev}' is not one of {', '.join(SEVERITY_ORDER)}.")
        lang = str(item.get("lang", "en"))
        if lang not in LANGUAGES:
            raise ConfigError(f"{where}: lang '{lang}' is not one of {', '.join(LANGUAGES)}.")
        url = str(item.get("webhook_url", ""))
        allow = _strings(item.get("allow_networks", ()), key="allow_networks", where=where)
        if url:
            try:
                parse_webhook_url(url, allow_networks=parse_networks(allow))
            except UrlPolicyError as exc:
                raise ConfigError(f"{where} ('{name}'): {exc}") from None
        emails = _strings(item.get("email", ()), key="email", where=where)
        for address in emails:
            _check_address(address, where=f"{where} ('{name}')")
        sub = Subscription(
            name=name,
            webhook_url=url,
            secret_env=str(item.get("secret_env", "ASM_WEBHOOK_SECRET")),
            email=emails,
            aois=_strings(item.get("aois", ()), key="aois", where=where),
            countries=_strings(item.get("countries", ()), key="countries", where=where),
            collections=_strings(item.get("collections", ()), key="collections", where=where),
            rules=_strings(item.get("rules", ()), key="rules", where=where),
            min_severity=sev,
            lang=lang,
            digest=bool(item.get("digest", False)),
            allow_networks=allow,
        )
        if not sub.channels:
            raise ConfigError(f"{where} ('{name}') has no channel: set webhook_url and/or email.")
        out.append(sub)
    return out


def _check_address(address: str, *, where: str) -> None:
    """Refuse an e-mail address that is not one plain ``local@domain`` (no display name, no
    list, no line break that would start a header of its own)."""
    try:
        ok = Address(addr_spec=address).addr_spec == address and "@" in address
    except (HeaderParseError, ValueError, IndexError):
        ok = False
    if not ok:
        raise ConfigError(f"{where}: e-mail {address!r} is not one address like 'alerts@ngo.example'.")
