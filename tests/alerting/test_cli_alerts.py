"""``detector alerts ...`` and ``detector backtest --notifications``, through click's runner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from detector.alerting.model import Alert
from detector.alerting.state import AlertState, episode_id
from detector.cli import main
from detector.pipeline.config import PipelineError, parse_pipeline
from detector.store import open_store
from tests.alerting.test_delivery import Hook
from tests.stream.shop import PIPELINE, shop_events

T0 = pd.Timestamp.now(tz="UTC").floor("min")
SECRET = "hooks-T0P-s3cret-path"


def pipeline_file(tmp_path: Path, store: str, hook_url: str = "http://127.0.0.1:9/x") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        PIPELINE
        + f"""
store: {{url: "{store}"}}
alerting:
  receivers:
    - name: chat
      webhook: {{url: {{env: TEST_HOOK_URL}}}}
      timeout: 2s
    - name: oncall
      log: {{}}
  route:
    receiver: chat
    group_by: [alertname, market]
    routes:
      - matchers: ['severity="critical"']
        receiver: oncall
"""
    )
    return path


@pytest.fixture()
def seeded(tmp_path: Path) -> tuple[str, list[Alert]]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    alerts = [
        Alert({"alertname": "orders", "market": "DE", "series": "orders{market=DE}",
               "severity": "critical", "kind": "dip"}, T0, {"reason": "orders dropped to 0"}),
        Alert({"alertname": "orders", "market": "FR", "series": "orders{market=FR}",
               "severity": "warning", "kind": "spike"}, T0, {"reason": "orders x6"}),
    ]  # fmt: skip
    with store.transaction(write=True) as cur:
        AlertState(store, "streamshop").write_alerts(cur, alerts, now_us=0)
    store.close()
    return url, alerts


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args), env=env)
    return res.exit_code, res.output


def test_list_ack_silence_label_and_expire(seeded):
    url, (de, _) = seeded
    de_id = episode_id(de.fingerprint, de.starts_at)
    code, out = cli("alerts", "--store", url, "list")
    assert code == 0 and "orders{market=DE}" in out and "orders{market=FR}" in out, out

    code, out = cli("alerts", "--store", url, "ack", de_id[:6], "--by", "ana", "--for", "1h")
    assert code == 0 and f"{de_id} snoozed until" in out and "by ana" in out, out
    code, out = cli("alerts", "--store", url, "list", "--state", "acked", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [de_id]

    matchers = ["--matcher", "market=FR", "--matcher", 'kind=~"spike|dip"']
    code, out = cli("alerts", "--store", url, "silence", *matchers, "--for", "2h",
                    "--comment", "promo")  # fmt: skip
    assert code == 0 and out.startswith("silence "), out
    silence_id = out.split()[1].rstrip(":")
    code, out = cli("alerts", "--store", url, "list", "--state", "silenced", "--json")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["labels"]["market"] == "FR" and row["silenced_by"] == [silence_id]
    code, out = cli("alerts", "--store", url, "list", "--state", "firing")
    assert code == 0 and out.strip() == "no alerts in state firing", out

    code, out = cli("alerts", "--store", url, "expire", silence_id)
    assert code == 0
    code, out = cli("alerts", "--store", url, "list", "--state", "firing")
    assert "orders{market=FR}" in out and "orders{market=DE}" not in out

    code, out = cli("alerts", "--store", url, "label", de_id, "--as", "false-positive")
    assert code == 0 and "labelled false-positive" in out
    code, out = cli("alerts", "--store", url, "list", "--json")
    assert {json.loads(x)["feedback"] for x in out.splitlines()} == {"false-positive", None}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ack", "nope"], "no alert with id 'nope'"),
        (["silence", "--matcher", "market", "--comment", "x"], "market"),
        (["silence", "--matcher", "market=DE", "--for", "soon", "--comment", "x"], "soon"),
        (["test-route", "market=DE"], "needs the pipeline"),
    ],
    ids=["unknown id", "bad matcher", "bad duration", "no pipeline"],
)
def test_bad_input_is_a_clear_error_and_exit_code(seeded, args, message):
    url, _ = seeded
    code, out = cli("alerts", "--store", url, *args)
    assert code != 0 and message in out, out
    assert "Traceback" not in out


def test_test_route_explains(seeded, tmp_path):
    url, _ = seeded
    p = pipeline_file(tmp_path, url)
    code, out = cli("alerts", "--pipeline", str(p), "test-route", "alertname=orders",
                    "market=DE", "severity=critical")  # fmt: skip
    assert code == 0, out
    assert "receiver 'oncall'" in out and "receiver 'chat'" not in out.splitlines()[-1]
    code, out = cli("alerts", "--pipeline", str(p), "test-route", "market=DE")
    assert out.splitlines()[-1].startswith("=> route 0: receiver 'chat'"), out


def test_send_test_reaches_the_receiver_or_fails_without_leaking_the_secret(seeded, tmp_path):
    url, _ = seeded
    p = pipeline_file(tmp_path, url)
    hook = Hook()
    try:
        code, out = cli("alerts", "--pipeline", str(p), "send-test", "chat",
                        env={"TEST_HOOK_URL": hook.url})  # fmt: skip
        assert code == 0 and "send-test chat: delivered" in out, out
        assert len(hook.keys) == 1
    finally:
        hook.down()  # now refused
    code, out = cli("alerts", "--pipeline", str(p), "send-test", "chat",
                    env={"TEST_HOOK_URL": f"{hook.url}/{SECRET}"})  # fmt: skip
    assert code == 1 and "FAILED" in out and SECRET not in out, out
    code, out = cli("alerts", "--pipeline", str(p), "send-test", "pager")
    assert code != 0 and "no receiver named 'pager'" in out


def test_backtest_writes_the_notifications_it_would_send(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in shop_events(days=4)))
    p = pipeline_file(tmp_path, f"sqlite:///{tmp_path / 's.db'}")
    code, out = cli("backtest", "--pipeline", str(p), str(events), "-o", str(tmp_path / "bt"),
                    "--no-report", "--no-progress", "--notifications")  # fmt: skip
    assert code == 0, out
    assert "alert router (dry run):" in out
    lines = [
        json.loads(x) for x in (tmp_path / "bt" / "notifications.jsonl").read_text().splitlines()
    ]
    firing = [n for n in lines if n["status"] == "firing"]
    assert firing and {a["series"] for n in firing for a in n["alerts"]} >= {"orders{market=DE}"}
    first = firing[0]
    assert first["receiver"] in ("chat", "oncall")
    # group_wait (30s by default) after the window was scored (its end plus the lateness)
    (a,) = [a for a in first["alerts"] if a["series"] == "orders{market=DE}"]
    assert a["wait_s"] == 30.0
    sent = pd.Timestamp(first["sent_at"])
    assert sent == pd.Timestamp(a["starts_at"]) + pd.Timedelta("5min") + pd.Timedelta(
        "2min"
    ) + pd.Timedelta("30s")
    assert any(n["status"] == "resolved" for n in lines)


def test_alerting_errors_name_the_line_and_key():
    text = (
        PIPELINE
        + """
alerting:
  receivers:
    - name: chat
      slak: {url: x}
  route:
    receiver: chatt
    group_wait: soon
"""
    )
    with pytest.raises(PipelineError) as info:
        parse_pipeline(text, source="p.yaml")
    msg = str(info.value)
    assert re.search(
        r"p\.yaml:\d+: alerting\.receivers\[0\]\.slak: unknown key 'slak'; did you mean 'slack'\?",
        msg,
    ), msg
    assert "alerting.route.group_wait" in msg


def test_the_pipeline_may_follow_the_subcommand(seeded, tmp_path):
    url, _ = seeded
    p = pipeline_file(tmp_path, url)
    code, out = cli("alerts", "test-route", "--pipeline", str(p), "severity=critical")
    assert code == 0 and "receiver 'oncall'" in out.splitlines()[-1], out
