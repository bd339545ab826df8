"""Server-side plugin for the MLflow tracking server (runs inside `mlflow server`, never in the
CLI): the IAP identity (`auth`) and the rules that keep protected aliases and the audit log
honest (`guard`). Installed as the `mlflow.app` entry point `magenta-release-auth`."""
