"""mlpipeline-operator: MLPipeline resources compiled to Argo Workflows, with gated promotion."""

__version__ = "0.1.0"
