"""magenta-release: tracked training and a gated, audited release process on MLflow."""

__version__ = "0.2.0"
