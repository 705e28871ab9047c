"""Issue 15, webhooks as an attacker would use them: redirects that carry the signed alert
to another host (case 7), webhook URLs that reach internal addresses (cloud metadata,
private ranges, loopback written in disguise, a name whose DNS answer is internal or changes
between check and connect), credentials and tokens in URLs, and TLS still verified when the
connection goes to the checked address."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.errors import ConfigError
from pipeline.report.delivery import deliver
from pipeline.report.subscriptions import parse_subscriptions

from .hostile import (
    Endpoint,
    FakeDns,
    make_run,
    outbox_ids,
    rows,
    self_signed,
    settings,
    states,
    status,
)
from .relhelp import WEBHOOK_SECRET, Receiver


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", WEBHOOK_SECRET)


def _hook(url: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "ngo", "webhook_url": url, "min_severity": "info", **extra}]


# ---- case 7: redirects -------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_and_names_the_new_address(code: int, tmp_path: Path) -> None:
    """The receiver answers 3xx to another host; that host must get nothing (no signature
    headers, no body), the alert is not marked delivered, and last_error names the Location
    (its token redacted) and the fix."""
    elsewhere = Endpoint(status(200))
    moved = Endpoint(status(code, location=f"{elsewhere.url}?token=leak-me-0042"))
    run = make_run(tmp_path)
    try:
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _hook(moved.url)))
    finally:
        moved.close()
        elsewhere.close()
    assert elsewhere.seen == []  # no GET with the signature, no re-POSTed body
    assert [s.method for s in moved.seen] == ["POST"] * 3  # one attempt each: not retryable
    assert (report.delivered, report.pending, report.failed) == (0, 0, 3)
    assert states(tmp_path) == {"failed": 3}
    for row in rows(tmp_path):
        err = row["last_error"]
        assert f"HTTP {code}" in err and f"127.0.0.1:{elsewhere.port}/hook" in err
        assert "leak-me-0042" not in err and "token=***" in err
        assert "webhook_url" in err and "--retry" in err


# ---- URL policy at load ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[fd00:ec2::254]/latest", "metadata"),
        ("https://[::ffff:169.254.169.254]/x", "metadata"),
        ("https://[::ffff:a9fe:a9fe]/x", "metadata"),
        ("https://[64:ff9b::a9fe:a9fe]/x", "metadata"),
        ("https://[2002:a9fe:a9fe::1]/x", "metadata"),
        ("https://169.254.1.1/x", "link-local"),
        ("https://[fe80::1]/x", "link-local"),
        ("https://10.0.0.7/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("https://172.16.0.1/hook", "private"),
        ("https://[fd12:3456::1]/hook", "private"),
        ("https://100.64.0.1/hook", "not a public address"),
        ("https://0.0.0.0/hook", "not a public address"),
        ("https://0x7f000001/hook", "dotted"),
        ("https://2130706433/hook", "dotted"),
        ("https://0177.0.0.1/hook", "dotted"),
        ("https://127.1/hook", "dotted"),
        ("https://0xa9.0xfe.0xa9.0xfe/x", "dotted"),
        ("http://ngo.example/hook", "https://"),
        ("ftp://ngo.example/hook", "https://"),
        ("https://asm:pa55word-77@ngo.example/hook", "user name or password"),
        ("https://token-only-99@ngo.example/hook", "user name or password"),
        ("https://ngo.example\\@10.0.0.1/hook", "not allowed in a URL"),
        ("https://ngo.example/ho ok", "not allowed in a URL"),
        ("https://ngo.example/hook\r\nX: y", "not allowed in a URL"),
        ("https:///hook", "no host"),
        ("https://ngo.example:99999/hook", "port"),
    ],
)
def test_webhook_urls_to_internal_places_are_refused_at_load(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse_subscriptions(_hook(url))
    message = str(info.value)
    assert "'ngo'" in message
    assert "pa55word-77" not in message and "token-only-99" not in message


@pytest.mark.parametrize(
    "url",
    [
        "https://ngo.example/hooks/asm",
        "https://ngo.example:8443/hooks/asm?token=abc",
        "https://[2606:4700::1111]/hook",
        "https://8.8.8.8/hook",
        "http://127.0.0.1:8080/hook",
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",
    ],
)
def test_public_https_and_loopback_urls_are_accepted(url: str) -> None:
    assert parse_subscriptions(_hook(url))[0].webhook_url == url


def test_allow_networks_opens_a_private_range_but_metadata_only_by_its_own_address() -> None:
    ok = parse_subscriptions(_hook("http://10.20.0.5:9000/hook", allow_networks=["10.20.0.0/16"]))
    assert ok[0].allow_networks == ("10.20.0.0/16",)
    with pytest.raises(ConfigError, match="metadata"):
        parse_subscriptions(_hook("http://169.254.169.254/x", allow_networks=["169.254.0.0/16"]))
    parse_subscriptions(_hook("http://169.254.169.254/x", allow_networks=["169.254.169.254/32"]))
    with pytest.raises(ConfigError, match="allow_networks"):
        parse_subscriptions(_hook("https://ngo.example/x", allow_networks=["ten-dot-something"]))


@pytest.mark.parametrize("host", ["0x7f000001", "2130706433", "0177.0.0.1", "127.1"])
def test_loopback_in_disguise_never_reaches_the_receiver(host: str, tmp_path: Path) -> None:
    """The C resolver reads these as 127.0.0.1: before, the alert went out to that port."""
    recv = Endpoint(status(204))
    run = make_run(tmp_path)
    try:
        url = recv.url.replace("127.0.0.1", host)
        with pytest.raises(ConfigError, match="dotted"):
            deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _hook(url)))
    finally:
        recv.close()
    assert recv.connections == 0 and recv.seen == []


# ---- before each send: every DNS answer checked, the checked one connected to --------


@pytest.mark.parametrize(
    ("answer", "match"),
    [(["127.0.0.1", "10.9.8.7"], "10.9.8.7"), (["169.254.169.254"], "metadata")],
)
def test_a_name_resolving_to_an_internal_address_is_refused_before_sending(
    answer: list[str], match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before each send, on every address of the DNS answer: not one connection is
    made, not even to the acceptable first address."""
    recv = Endpoint(status(204))
    dns = FakeDns({"hook.ngo.test": [answer]})
    monkeypatch.setattr("socket.getaddrinfo", dns)
    run = make_run(tmp_path)
    url = recv.url.replace("http://127.0.0.1", "https://hook.ngo.test")
    try:
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _hook(url)))
    finally:
        recv.close()
    assert recv.connections == 0
    assert (report.delivered, report.failed) == (0, 3) and states(tmp_path) == {"failed": 3}
    err = rows(tmp_path)[0]["last_error"]
    assert match in err and "allow_networks" in err


def test_the_address_checked_is_the_address_connected_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the first answer is the receiver, every later one an internal
    service (127.0.0.2 here, made internal by allowing only 127.0.0.1). A sender that
    checks one answer and lets its HTTP library resolve again posts to the internal one."""
    monkeypatch.setattr("pipeline.report.webhook_url.DEFAULT_ALLOWED_NETWORKS", ("127.0.0.1/32",))
    recv = Receiver()
    internal = Endpoint(status(200), host="127.0.0.2", port=recv.server.server_address[1])
    dns = FakeDns({"rebind.ngo.test": [["127.0.0.1"], ["127.0.0.2"]]})
    monkeypatch.setattr("socket.getaddrinfo", dns)
    run = make_run(tmp_path, n=1)
    url = recv.url.replace("127.0.0.1", "rebind.ngo.test")
    try:
        report = deliver(
            run / "alerts" / "outbox",
            settings=settings(tmp_path, _hook(url, allow_networks=["127.0.0.1/32"])),
        )
    finally:
        recv.close()
        internal.close()
    assert internal.seen == [] and recv.requests == 1
    assert report.delivered == 1 and dns.calls == {"rebind.ngo.test": 1}


def test_loopback_can_be_refused_and_then_allowed_per_subscription(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipeline.report.webhook_url.DEFAULT_ALLOWED_NETWORKS", ())
    monkeypatch.setattr("pipeline.report.webhook_url.HTTP_ALLOWED_NETWORKS", ())
    recv = Receiver()
    run = make_run(tmp_path)
    try:
        with pytest.raises(ConfigError, match="loopback"):
            deliver(run / "alerts" / "outbox", settings=settings(tmp_path, _hook(recv.url)))
        subs = _hook(recv.url, allow_networks=["127.0.0.0/8"])
        report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, subs))
    finally:
        recv.close()
    assert report.delivered == 3 and len(recv.accepted) == 3


# ---- secrets in URLs ---------------------------------------------------------------


def test_a_query_token_never_reaches_logs_or_last_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused, then HTTP 500: every message names the endpoint with its token
    replaced by ***."""
    token = "tok-3b9e7c1d55aa"
    dead = Endpoint(status(204))
    dead.close()  # nothing listens on this port any more
    failing = Endpoint(status(500))
    run = make_run(tmp_path)
    subs = [
        {"name": "dead", "webhook_url": f"{dead.url}?token={token}&x=1", "min_severity": "info"},
        {"name": "err", "webhook_url": f"{failing.url}?access_token={token}", "min_severity": "info"},
    ]
    try:
        with caplog.at_level(logging.DEBUG):
            report = deliver(run / "alerts" / "outbox", settings=settings(tmp_path, subs, max_attempts=2))
    finally:
        failing.close()
    stored = " ".join(str(r["last_error"]) for r in rows(tmp_path))
    assert report.pending == 6 and "token=***" in stored and "HTTP 500" in stored
    for text in (caplog.text, stored, " ".join(report.errors)):
        assert token not in text


# ---- TLS is still verified against the name when connecting to the checked address ----


def test_https_connects_to_the_checked_address_and_verifies_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.report.webhook import WebhookChannel

    cert, key = self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    tls = Endpoint(status(204), tls=server_ctx)
    trusting = ssl.create_default_context(cafile=str(cert))
    dns = FakeDns({"hook.ngo.test": [["127.0.0.1"]]})
    monkeypatch.setattr("socket.getaddrinfo", dns)
    run = make_run(tmp_path, n=1)
    box = run / "alerts" / "outbox"
    good = tls.url.replace("127.0.0.1", "localhost")
    wrong_name = tls.url.replace("127.0.0.1", "hook.ngo.test")
    try:
        ok = deliver(box, settings=settings(tmp_path / "a", _hook(good)),
                     channels={"webhook": WebhookChannel(ssl_context=trusting)})  # fmt: skip
        untrusted = deliver(box, settings=settings(tmp_path / "b", _hook(good)))
        mismatch = deliver(box, settings=settings(tmp_path / "c", _hook(wrong_name)),
                           channels={"webhook": WebhookChannel(ssl_context=trusting)})  # fmt: skip
    finally:
        tls.close()
    assert ok.delivered == 1 and len(tls.seen) == 1
    assert tls.seen[0].headers["host"] == f"localhost:{tls.port}"
    assert untrusted.delivered == 0 and mismatch.delivered == 0 and len(tls.seen) == 1
    assert "certificate" in rows(tmp_path / "b")[0]["last_error"]
    assert "certificate" in rows(tmp_path / "c")[0]["last_error"]
    assert outbox_ids(run)
