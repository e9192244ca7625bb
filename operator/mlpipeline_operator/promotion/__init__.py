"""Gated model promotion in the MLflow Model Registry (`mlpipeline promote`)."""
