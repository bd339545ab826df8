"""The pure core: rules and types with no MLflow, no I/O beyond files it is handed."""
