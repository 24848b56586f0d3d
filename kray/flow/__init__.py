"""The flow language: models, YAML loading with positions, validation, inputs."""
