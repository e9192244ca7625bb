"""A small fraud-detection model: the steps of the example pipeline, one module per step.

Each module is a command (`python -m fraud_detection.ingest ...`) that reads and writes the
files the pipeline gives it; nothing here knows whether it runs in a pod or on a laptop.
"""
