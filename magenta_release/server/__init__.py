"""Server-side plugin for the MLflow tracking server (runs inside `mlflow server`, never in the
CLI): the IAP identity (`auth`), the release authority, the one writer of governed state
(`authority`, through the server's own store access: `store`), and what keeps every other
writer off it (`guard`, `requests`). Installed as the `mlflow.app` entry point
`magenta-release-auth`; `ui` is the local UI's variant (no login, no Assistant)."""
