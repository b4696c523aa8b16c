"""What the gateway costs: per request, per invocation, at cold start, streaming, in the audit
store and under load. `python -m benchmarks` (or `make bench`) runs every measurement on this
machine and writes the figures, with the machine's description, to docs/benchmarks.md.

Every loop is bounded in count and in time, and every server listens on loopback only.
"""
