"""zpml_runtime: strict inference, deployment, training."""
