"""Every tag key the tool writes into MLflow, each defined once. These names are stored data:
a store written by an earlier release is read with the same keys, so they never change.

Version tags (`release.*`) live on registered model versions; run tags (`magenta.*`) on the
training runs; the head of the audit log on the governed registered model."""

from __future__ import annotations

# ---- model version tags, written at propose --------------------------------------------
STATUS = "release.status"
PROPOSED_BY = "release.proposed_by"
PROPOSED_BY_MLFLOW_USER = "release.proposed_by_mlflow_user"
PROPOSED_AT = "release.proposed_at"
NOTE = "release.note"
PASSED_GATES = "release.passed_gates"
BASELINE_VERSION = "release.baseline_version"
MANIFEST = "release.manifest"
MANIFEST_SHA256 = "release.manifest_sha256"
EVIDENCE = "release.evidence"
EVIDENCE_SHA256 = "release.evidence_sha256"
DATASET_SHA256 = "release.dataset_sha256"
NOTIFY_PREFIX = "release.notify."

# ---- registered model tags ----------------------------------------------------------------
# The head of the audit log ('SEQ:HASH'), on the governed model: a second record of its end.
AUDIT_HEAD = "magenta.audit_head"

# ---- model version tags, written from the log after a decision --------------------------
APPROVED_BY = "release.approved_by"
APPROVED_AT = "release.approved_at"
APPROVE_REASON = "release.approve_reason"
REJECTED_BY = "release.rejected_by"
REJECTED_AT = "release.rejected_at"
REJECT_REASON = "release.reject_reason"
ROLLED_BACK_BY = "release.rolled_back_by"
ROLLED_BACK_AT = "release.rolled_back_at"

# ---- run tags ----------------------------------------------------------------------------
RUN_DATA = "magenta.data"  # the evaluation evidence of a `train` run (JSON)
RUN_DATASET_SHA256 = "magenta.dataset_sha256"
RUN_DATA_SOURCE = "magenta.data_source"
RUN_EVAL_SHA256 = "magenta.eval_sha256"
RUN_MODEL_MANIFEST_SHA256 = "magenta.model_manifest_sha256"
RUN_MODEL_FORMAT = "magenta.model_format"
RUN_HOST = "magenta.host"
RUN_PID = "magenta.pid"
RUN_ARTIFACTS_DELETED = "magenta.artifacts_deleted"
POLICY_PREFIX = "magenta.policy."  # the tags of a stored policy version
POLICY_MODEL = "magenta.policy.model"
POLICY_VERSION = "magenta.policy.version"
POLICY_SHA256 = "magenta.policy.sha256"
POLICY_SET_BY = "magenta.policy.set_by"
HEALTH_VERSION = "magenta.health.version"
HEALTH_PASSED = "magenta.health.passed"
HEALTH_FAILING = "magenta.health.failing"
