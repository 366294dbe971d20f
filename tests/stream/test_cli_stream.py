"""The streaming commands' answers to bad input: one clear line, exit 2, nothing else."""

from __future__ import annotations

from click.testing import CliRunner

from detector.cli import main
from tests.stream.shop import PIPELINE


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


def test_run_without_a_broker_anywhere_says_where_to_give_one(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DETECTOR_BOOTSTRAP_SERVERS", raising=False)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    res = invoke("run", "--pipeline", str(tmp_path / "p.yaml"), "--topic", "t",
                 "--store", f"sqlite:///{tmp_path / 'x.db'}")  # fmt: skip
    assert res.exit_code == 2
    assert "no Kafka bootstrap servers" in res.output and "--bootstrap-servers" in res.output


def test_exports_name_a_bad_store_url_with_its_password_masked(tmp_path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    res = invoke("metrics", "--pipeline", str(tmp_path / "p.yaml"),
                 "--store", "mysql://u:secret@h/db", "-o", str(tmp_path / "m.csv"))  # fmt: skip
    assert res.exit_code == 2 and "mysql://" in res.output and "secret" not in res.output
    assert not (tmp_path / "m.csv").exists()


def test_exports_reject_a_time_that_is_not_one(tmp_path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    store = f"sqlite:///{tmp_path / 'x.db'}"
    res = invoke("anomalies", "--pipeline", str(tmp_path / "p.yaml"), "--from", "yesterday",
                 "--store", store, "-o", str(tmp_path / "a.csv"))  # fmt: skip
    assert res.exit_code == 2 and "'yesterday' is not a time" in res.output


def test_an_empty_store_exports_the_headers_only(tmp_path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    store = f"sqlite:///{tmp_path / 'x.db'}"
    headers = {"metrics": "timestamp,series,value",
               "anomalies": "timestamp,series,value,expected,lower,upper,score"}  # fmt: skip
    for what, header in headers.items():
        out = tmp_path / f"{what}.csv"
        res = invoke(what, "--pipeline", str(tmp_path / "p.yaml"), "--store", store, "-o", str(out))
        assert res.exit_code == 0, res.output
        assert out.read_text().startswith(header) and len(out.read_text().splitlines()) == 1


def test_run_with_no_broker_at_the_address_gives_up_after_max_idle(tmp_path) -> None:
    """Started before its broker, run retries; with --max-idle it stops and says why."""
    import subprocess
    import sys
    from pathlib import Path

    from detector.testing_kafka import free_port

    (tmp_path / "p.yaml").write_text(PIPELINE)
    detector = str(Path(sys.executable).with_name("detector"))
    res = subprocess.run(
        [detector, "run", "--pipeline", str(tmp_path / "p.yaml"), "--topic", "t",
         "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--max-idle", "2",
         "--store", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:" in res.stderr and "Traceback" not in res.stderr


def test_log_json_writes_one_json_object_per_log_line(tmp_path) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    from detector.testing_kafka import free_port

    (tmp_path / "p.yaml").write_text(PIPELINE)
    detector = str(Path(sys.executable).with_name("detector"))
    res = subprocess.run(
        [detector, "--log-json", "-v", "run", "--pipeline", str(tmp_path / "p.yaml"), "--topic",
         "t", "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--max-idle", "2",
         "--store", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    logged = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert logged, res.stderr
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in logged)
    assert any(e["logger"].startswith("detector") and e["level"] == "INFO" for e in logged)
