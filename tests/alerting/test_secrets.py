from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel, ValidationError

from detector.alerting.secrets import Secret, redact
from detector.errors import ConfigError

VALUE = "xoxb-very-secret-value"


def test_env_secret_is_read_at_use_time(monkeypatch):
    s = Secret.parse({"env": "DETECTOR_TEST_SECRET"})
    monkeypatch.delenv("DETECTOR_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match="environment variable DETECTOR_TEST_SECRET is not set"):
        s.reveal()
    monkeypatch.setenv("DETECTOR_TEST_SECRET", VALUE)
    assert s.reveal() == VALUE
    monkeypatch.setenv("DETECTOR_TEST_SECRET", "rotated")
    assert s.reveal() == "rotated"


def test_file_secret_strips_the_newline_and_names_missing_files(tmp_path):
    path = tmp_path / "token"
    s = Secret.parse({"file": str(path)})
    with pytest.raises(ConfigError, match=f"cannot read file {path}"):
        s.reveal()
    path.write_text(VALUE + "\n")
    assert s.reveal() == VALUE
    path.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        s.check()


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (Secret(env="SLACK_URL"), "Secret(env=SLACK_URL)"),
        (Secret(file="/run/secrets/pd"), "Secret(file=/run/secrets/pd)"),
        (Secret(value=VALUE), "Secret(value=***)"),
    ],
)
def test_repr_and_str_never_show_the_value(secret, shown, caplog, monkeypatch):
    monkeypatch.setenv("SLACK_URL", VALUE)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").info("using %s / %r / %s", secret, secret, [secret])
    assert repr(secret) == str(secret) == shown
    assert VALUE not in caplog.text + f"{secret!r}{secret}"


@pytest.mark.parametrize(
    "raw", [{"env": ""}, {"envv": "X"}, {"env": "X", "file": "y"}, 3, "", {"value": VALUE}]
)
def test_parse_rejects_other_shapes_without_echoing(raw):
    with pytest.raises(ValueError) as info:
        Secret.parse(raw)
    assert VALUE not in str(info.value)


def test_pydantic_field_validates_and_dumps_masked():
    class M(BaseModel):
        token: Secret
        other: Secret | None = None

    m = M.model_validate({"token": {"env": "T"}, "other": VALUE})
    assert m.token == Secret(env="T")
    assert m.model_dump(mode="json") == {"token": {"env": "T"}, "other": "***"}
    assert VALUE not in repr(m)
    with pytest.raises(ValidationError, match="env: NAME"):
        M.model_validate({"token": {"password": VALUE}})
    assert "anyOf" in str(M.model_json_schema())


def test_equality_compares_sources_not_values(monkeypatch):
    assert Secret(env="A") == Secret.parse({"env": "A"}) != Secret(env="B")
    assert len({Secret(env="A"), Secret(env="A")}) == 1


def test_redact_masks_values_quoted_forms_and_url_parts(monkeypatch):
    monkeypatch.setenv("HOOK", "https://hooks.example/services/T0/B0/abcdefghijkl?token=qwertyuiop")
    url = Secret(env="HOOK")
    text = (
        "POST https://hooks.example/services/T0/B0/abcdefghijkl?token=qwertyuiop failed; "
        "url: /services/T0/B0/abcdefghijkl?token=qwertyuiop; unknown token abcdefghijkl; "
        "key qwertyuiop; pw p%40ss%2Fword; pw p@ss/word"
    )
    out = redact(text, [url, "p@ss/word", None, Secret(env="DETECTOR_TEST_UNSET")])
    for leaked in ("abcdefghijkl", "qwertyuiop", "p@ss/word", "p%40ss%2Fword"):
        assert leaked not in out
    assert out.startswith("POST *** failed")


def test_redact_leaves_text_without_secrets_alone():
    assert redact("HTTP 500 Internal Server Error", ["s3cr3t"]) == "HTTP 500 Internal Server Error"
