"""Streaming: the pipeline on Kafka (``detector run``)."""
