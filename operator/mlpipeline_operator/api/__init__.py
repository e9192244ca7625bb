"""The MLPipeline API: models, constants and the generated CRD."""
