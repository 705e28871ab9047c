"""Case 6: the Sentinel Hub client secret, the webhook signing secret and the SMTP password
never appear in logs, ``repr``, run.json, any output file or an exception message.

One real session: `asm-monitor ingest` against the Sentinel Hub emulator (then with a
refused credential), `asm-monitor run` of amapa-gold delivering its alerts to a real
webhook receiver, a real SMTP server that requires the password and a dead endpoint, then
every file under the working folder, every log record and all console output is searched.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.core.config import load_settings
from pipeline.core.errors import PipelineError
from pipeline.report.delivery import deliver

from .relhelp import SH_SECRET, SMTP_PASSWORD, WEBHOOK_SECRET, Mailbox, Receiver, free_port, start_smtp

pytestmark = [
    pytest.mark.filterwarnings("ignore:Download rate limit hit"),
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]


def _forms(secret: str) -> list[bytes]:
    """The secret as text and in the encodings it could leak in (base64, url-safe)."""
    raw = secret.encode()
    forms = [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")]
    if secret.startswith("whsec_"):
        forms += [secret[6:].encode(), base64.b64decode(secret[6:])]
    return forms


SECRETS = {"sh": SH_SECRET, "webhook": WEBHOOK_SECRET, "smtp": SMTP_PASSWORD}


def _leaks(blob: bytes) -> list[str]:
    return [name for name, s in SECRETS.items() for f in _forms(s) if f in blob]


def test_no_secret_in_any_output_log_repr_or_error(
    sh_server: tuple[str, object],
    aoi_dir: Path,
    sample_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, state = sh_server
    for name, value in {
        "ASM_SH_CLIENT_ID": "reliability-client",
        "ASM_SH_CLIENT_SECRET": SH_SECRET,
        "ASM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ASM_SMTP_PASSWORD": SMTP_PASSWORD,
        "ASM_INGEST__SH_BASE_URL": base,
        "ASM_INGEST__SH_TOKEN_URL": f"{base}/oauth/token",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    receiver = Receiver()
    mailbox, smtp_port = Mailbox(), free_port()
    smtp = start_smtp(mailbox, smtp_port)
    dead = free_port()
    cfg = tmp_path / "asm.toml"
    cfg.write_text(
        "[alerts]\nbackoff_s = 0.01\nbackoff_max_s = 0.02\nmax_attempts = 2\ntimeout_s = 3.0\n"
        f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_starttls = false\nsmtp_user = "asm"\n'
        f'[[alerts.subscriptions]]\nname = "ngo-hook"\nwebhook_url = "{receiver.url}"\nmin_severity = "high"\n'
        '[[alerts.subscriptions]]\nname = "ngo-mail"\nemail = ["alerts@ngo.example"]\ndigest = true\n'
        f'[[alerts.subscriptions]]\nname = "dead-hook"\nwebhook_url = "http://127.0.0.1:{dead}/x"\n'
    )
    errors: list[str] = []
    try:
        ingest = ["--sample-data", str(sample_data), "ingest", "--aoi", str(aoi_dir / "trombetas.geojson"),
                  "--period", "2020-01/2020-12", "--source", "sentinelhub", "--cache-dir", "cache"]  # fmt: skip
        assert main(ingest) == 0
        state.plan["/oauth/token"] = [401]  # type: ignore[attr-defined]
        assert main([*ingest[:-2], "--cache-dir", "cache2"]) == 2
        run = ["--config", str(cfg), "--sample-data", str(sample_data), "--aoi-dir", str(aoi_dir), "run",
               "--aoi", "amapa-gold", "--period", "2024", "--out", "out", "--scheduler", "threads"]  # fmt: skip
        main(run)
        settings = load_settings(cfg)
        errors += [repr(settings), str(settings), repr(settings.alerts), repr(settings.ingest)]
        report = deliver(tmp_path / "out" / "amapa-gold" / "alerts" / "outbox", settings=settings, retry=True)
        errors += report.errors
        # an exception raised with the secrets set: the missing-secret error of another sub
        monkeypatch.delenv("ASM_WEBHOOK_SECRET")
        with pytest.raises(PipelineError) as info:
            deliver(tmp_path / "out" / "amapa-gold" / "alerts" / "outbox", settings=settings)
        errors += [str(info.value), repr(info.value)]
    finally:
        receiver.close()
        smtp.stop()

    # the secrets were really used: signed webhooks verified, SMTP login with the password
    run_json = json.loads((tmp_path / "out" / "amapa-gold" / "run.json").read_text())
    assert run_json["status"] == "ok"
    assert receiver.accepted and mailbox.messages
    assert ("asm", SMTP_PASSWORD) in mailbox.logins
    assert state.hits["/api/v1/process"] >= 2  # type: ignore[attr-defined]
    assert any("dead-hook" in e or str(dead) in e for e in [*report.errors, caplog.text])

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 20 and any(p.suffix == ".sqlite" for p in files)
    leaked = {str(p.relative_to(tmp_path)): _leaks(p.read_bytes()) for p in files}
    assert {k: v for k, v in leaked.items() if v} == {}
    out, err = capsys.readouterr()
    assert "invalid" in (out + err).lower() or "ASM_SH_CLIENT" in out + err  # the 401 was reported
    for where, text in {
        "log": caplog.text,
        "stdout": out,
        "stderr": err,
        "errors": "\n".join(errors),
    }.items():
        assert _leaks(text.encode()) == [], where
