"""The local runner: `mlpipeline run FILE` runs a pipeline's steps as processes on this machine.

Same semantics as the Workflow the compiler makes (dependencies, defaults, retries with backoff,
per-attempt timeouts, a failed step stopping the DAG, the promotion task), without a cluster.
See docs/local.md. Nothing here imports kopf.
"""
