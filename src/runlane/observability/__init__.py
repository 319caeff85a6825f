"""What an operator sees: log lines (logs.py: one line per run status change, text
or JSON) and Prometheus metrics (metrics.py)."""
