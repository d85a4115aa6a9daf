"""safeguard's workload: a FastAPI service for items with health probes, metrics and safeguards.

Kept import-light on purpose: `python -m app` must be able to set PROMETHEUS_MULTIPROC_DIR
before anything imports prometheus_client.
"""

__version__ = "0.1.0"
