#!/bin/sh
# Starts `mlflow server` with the magenta-release plugin from environment variables (Cloud Run
# injects the secrets):
#   MLFLOW_BACKEND_STORE_URI   postgresql+psycopg://USER:PASSWORD@PRIVATE_IP/mlflow  (secret)
#   MLFLOW_AUTH_DATABASE_URI   postgresql+psycopg://USER:PASSWORD@PRIVATE_IP/mlflow_auth (secret)
#   MLFLOW_AUTH_ADMIN_PASSWORD initial admin password (secret)
#   MLFLOW_FLASK_SERVER_SECRET_KEY session signing key (secret)
#   MLFLOW_ARTIFACTS_DESTINATION gs://BUCKET/artifacts   (regional, CMEK)
#   MLFLOW_ALLOWED_HOSTS       the run.app host, e.g. mlflow-123456789.europe-west3.run.app
#   MAGENTA_RELEASE_IAP_HEADER_AUDIENCE  /projects/PROJECT_NUMBER/locations/europe-west3/services/mlflow
#                                 (the `aud` IAP puts in x-goog-iap-jwt-assertion on Cloud Run)
#   MAGENTA_RELEASE_IAP_ADMINS    optional: comma-separated e-mails that are MLflow admins
#   MAGENTA_RELEASE_AUTH          iap (set in the image); basic only for a local server
set -eu
: "${MLFLOW_BACKEND_STORE_URI:?}" "${MLFLOW_AUTH_DATABASE_URI:?}" "${MLFLOW_ARTIFACTS_DESTINATION:?}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?}" "${MLFLOW_FLASK_SERVER_SECRET_KEY:?}" "${MLFLOW_ALLOWED_HOSTS:?}"
export MAGENTA_RELEASE_AUTH="${MAGENTA_RELEASE_AUTH:-iap}"
if [ "$MAGENTA_RELEASE_AUTH" = "iap" ]; then
  : "${MAGENTA_RELEASE_IAP_HEADER_AUDIENCE:?}"
  export MAGENTA_RELEASE_IAP_JWKS_URL="${MAGENTA_RELEASE_IAP_JWKS_URL:-https://www.gstatic.com/iap/verify/public_key-jwk}"
fi

export MLFLOW_AUTH_CONFIG_PATH=/tmp/basic_auth.ini
umask 077
# People IAP lets through are created on first sight with default_permission (READ); an admin
# grants EDIT on experiments. Governed models need no grant: their release authority (in the
# plugin) is the only writer, and it decides by the stored policy who may release.
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
admin_username = admin
authorization_function = magenta_release.server.auth:authenticate
grant_default_workspace_access = false
# PBKDF2 per request costs ~0.2 s of CPU; cache verified credentials for a minute (basic mode).
auth_cache_ttl_seconds = 60
INI

exec mlflow server \
  --host 0.0.0.0 --port "${PORT:-8080}" --workers 1 \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --app-name magenta-release-auth \
  --allowed-hosts "$MLFLOW_ALLOWED_HOSTS" \
  --x-frame-options DENY
