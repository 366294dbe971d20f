"""The Slack receiver: a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).

The body is ``{"text": title + text}``, which every Slack-compatible service shows. With
``blocks: true`` it adds Block Kit blocks (a header and a section) that Slack renders more
readably; ``text`` stays as the fallback for notifications and other services. The webhook
URL *is* the credential, so it is a :class:`~detector.alerting.secrets.Secret`.

>>> from detector.alerting.model import Alert, Notification
>>> a = Alert({"alertname": "orders"}, "2026-01-01T10:00Z", {"reason": "orders dropped"})
>>> r = SlackReceiver("chat", url={"env": "SLACK_URL"}, channel="#alerts")
>>> r.message(Notification.build("chat", "g", {}, [a]))
{'text': '*[FIRING:1] orders*\\n1 firing\\n\\n[FIRING] orders\\n  orders dropped',
 'channel': '#alerts'}
"""

from __future__ import annotations

from typing import Any

from detector.alerting.model import Notification
from detector.alerting.receivers.base import HttpReceiver, ReceiverSettings
from detector.alerting.secrets import Secret

__all__ = ["SlackReceiver", "SlackSettings"]

# Slack's limits: 40,000 characters of text, 150 in a header block, 3,000 in a section.
_TEXT_LIMIT, _HEADER_LIMIT, _SECTION_LIMIT = 39_000, 150, 3_000


class SlackSettings(ReceiverSettings):
    """``slack: {url: {env: SLACK_URL}, channel: "#alerts", username: detector, blocks: false}``.

    ``channel`` and ``username`` override the webhook's defaults where the service allows it
    (legacy Slack webhooks, Mattermost); new Slack apps post to the webhook's own channel.
    """

    url: Secret
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None
    blocks: bool = False


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlackReceiver(HttpReceiver):
    """Posts the rendered title and text to a Slack-compatible incoming webhook."""

    kind = "slack"

    def __init__(
        self,
        name: str,
        *,
        url: Secret | str,
        channel: str | None = None,
        username: str | None = None,
        icon_emoji: str | None = None,
        blocks: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(name, **common)
        self.url = Secret.parse(url)
        self.channel = channel
        self.username = username
        self.icon_emoji = icon_emoji
        self.blocks = blocks

    def _secrets(self) -> list[Secret | str | None]:
        return [self.url, *super()._secrets()]

    def message(self, notification: Notification) -> dict[str, Any]:
        """The JSON body for ``notification``."""
        title = self.templates.title(notification)
        text = self.templates.text(notification)
        body: dict[str, Any] = {"text": _cut(f"*{title}*\n{text}", _TEXT_LIMIT)}
        if self.blocks:
            body["blocks"] = [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": _cut(title, _HEADER_LIMIT)},
                },
                {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SECTION_LIMIT)}},
            ]
        for key in ("channel", "username", "icon_emoji"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        return body

    def _deliver(self, notification: Notification) -> None:
        self._post(self.url, self.message(notification))
