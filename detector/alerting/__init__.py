"""The alert router: anomalies in, notifications out, once, to the right people.

Anomalies become :class:`~detector.alerting.model.Alert` objects; the routing tree picks
receivers, inhibition rules and silences mute, grouping batches alerts per receiver with
Alertmanager's timers, escalation re-notifies what nobody acknowledged, and the outbox in the
store delivers with retries, a retry budget and a circuit breaker per receiver.
"""
