"""Everything about "a network": the model registry, the zoo, architectures, checkpoints, users' own models."""
