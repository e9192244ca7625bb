"""MLPipeline → Argo Workflows objects."""
