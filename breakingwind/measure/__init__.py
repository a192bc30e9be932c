"""Measurement tools: bench, peers, the pipeline bench, eval and the load test."""
