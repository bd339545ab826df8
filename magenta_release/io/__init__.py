"""Adapters: the MLflow gateway, log and policy storage, the lock, table readers, model files."""
