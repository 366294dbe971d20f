.PHONY: setup lint test bench

setup:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

test:
	.venv/bin/pytest -q

bench:
	.venv/bin/python benchmarks/quality.py
	.venv/bin/python benchmarks/nab.py
	.venv/bin/python benchmarks/speed.py
	.venv/bin/python benchmarks/aggregation.py
	.venv/bin/python benchmarks/stream.py
	.venv/bin/python benchmarks/stream.py --latency
	.venv/bin/python benchmarks/alert_routing.py
	.venv/bin/python benchmarks/alert_latency.py
	.venv/bin/python benchmarks/series_memory.py
