#!/bin/sh
# Starts `mlflow server` from environment variables (Cloud Run injects the secrets):
#   MLFLOW_BACKEND_STORE_URI   postgresql+psycopg://USER:PASSWORD@PRIVATE_IP/mlflow  (secret)
#   MLFLOW_AUTH_DATABASE_URI   postgresql+psycopg://USER:PASSWORD@PRIVATE_IP/mlflow_auth (secret)
#   MLFLOW_AUTH_ADMIN_PASSWORD initial admin password (secret)
#   MLFLOW_FLASK_SERVER_SECRET_KEY session signing key (secret)
#   MLFLOW_ARTIFACTS_DESTINATION gs://BUCKET/artifacts   (regional, CMEK)
#   MLFLOW_ALLOWED_HOSTS       the IAP host name, e.g. mlflow.magenta.example
set -eu
: "${MLFLOW_BACKEND_STORE_URI:?}" "${MLFLOW_AUTH_DATABASE_URI:?}" "${MLFLOW_ARTIFACTS_DESTINATION:?}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?}" "${MLFLOW_FLASK_SERVER_SECRET_KEY:?}" "${MLFLOW_ALLOWED_HOSTS:?}"

export MLFLOW_AUTH_CONFIG_PATH=/tmp/basic_auth.ini
umask 077
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
# PBKDF2 per request costs ~0.2 s of CPU; cache verified credentials for a minute.
auth_cache_ttl_seconds = 60
INI

exec mlflow server \
  --host 0.0.0.0 --port "${PORT:-8080}" --workers 1 \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --app-name basic-auth \
  --allowed-hosts "$MLFLOW_ALLOWED_HOSTS" \
  --x-frame-options DENY
