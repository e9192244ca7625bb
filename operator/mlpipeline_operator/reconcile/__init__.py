"""The operator: kopf handlers (handlers.py) over pure reconciliation code."""
