"""A repair that shows a paged drop was lost data resolves the alert, with its notice.

DE's orders of the last two hours never reach Kafka (a lost batch), while FR's do: the running
``detector run`` sees DE at zero and pages a drop, still open. ``detector repair`` then reads
the complete events from files, writes the true windows and finds them normal; the running
stream takes the changed verdicts from the store and resolves the alert (annotated
``retracted``), and the webhook gets the resolved notice. Running the same repair again changes
nothing and sends nothing.
"""

from __future__ import annotations

import threading

import orjson
from click.testing import CliRunner

from detector.alerting.state import AlertState
from detector.cli import main
from detector.store import open_store
from tests.alerting.test_delivery import Hook, wait_for
from tests.stream.hooked import received, stream_runner, with_webhook
from tests.stream.shop import PIPELINE, shop_events
from tests.stream.test_stopped_source import produce_keyed

LOST = ("2026-01-07T22:00", "2026-01-08T00:00")  # DE's events of the last two hours


def test_a_repair_that_fills_a_paged_drop_resolves_it(kafka_broker, topic, tmp_path):
    events = [e for e in shop_events(days=4) if e["ts"] < "2026-01-08"]  # before the spike
    lost = [e for e in events if e["market"] == "DE" and LOST[0] <= e["ts"] < LOST[1]]
    assert len(lost) > 100
    sent = [e for e in events if e not in lost]
    hook = Hook()
    text = with_webhook(PIPELINE, hook.url)
    (tmp_path / "p.yaml").write_text(text)
    (tmp_path / "all.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    stop = threading.Event()
    runner = stream_runner(text, store, kafka_broker, topic, "rep")
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)

    def de(status: str) -> list[dict]:
        return received(hook, status, market="DE")

    try:
        produce_keyed(kafka_broker.bootstrap, topic, sent)
        thread.start()
        wait_for(lambda: {a["labels"]["alertname"] for a in de("firing")} == {"orders", "revenue"},
                 timeout=240)  # fmt: skip
        firing = de("firing")
        assert {a["labels"]["kind"] for a in firing} <= {"dip", "level_shift"}
        assert all(a["startsAt"] >= LOST[0] for a in firing)
        assert not de("resolved")
        state = AlertState(store, "streamshop")
        assert [r for r in state.alerts() if r.alert.labels.get("market") == "DE"
                and r.alert.status == "firing"]  # fmt: skip

        args = [
            "repair",
            "--pipeline",
            str(tmp_path / "p.yaml"),
            "--from",
            "2026-01-07T20:00Z",
            "--to",
            "2026-01-08T00:00Z",
            "--store",
            url,
            str(tmp_path / "all.jsonl"),
        ]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        assert "gone" in res.output and "0 gone" not in res.output, res.output

        # The running stream applies the changed verdicts: each DE alert is resolved.
        fingerprints = {a["fingerprint"] for a in firing}
        wait_for(lambda: {a["fingerprint"] for a in de("resolved")} == fingerprints, timeout=120)
        for a in de("resolved"):
            assert "scored again" in a["annotations"]["retracted"]
        wait_for(
            lambda: not store.rescored("streamshop").shape[0], timeout=60
        )  # applied, then dropped
        assert all(r.alert.status == "resolved" for r in state.alerts()
                   if r.alert.labels.get("market") == "DE")  # fmt: skip

        notices = len(hook.bodies)
        res = CliRunner().invoke(main, args)  # again: nothing changes, nothing is sent
        assert res.exit_code == 0 and "0 new, 0 gone" in res.output, res.output
        assert store.rescored("streamshop").empty
        assert len(hook.bodies) == notices
    finally:
        stop.set()
        thread.join(30)
        store.close()
        hook.down()
