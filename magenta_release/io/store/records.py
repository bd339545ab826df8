"""The records the gateway returns instead of MLflow entities (defined in `core.records`)."""

from magenta_release.core.records import (
    STATUS_TAG,
    DatasetInput,
    LoggedModelInfo,
    RunInfo,
    VersionInfo,
    dumps,
)

__all__ = ["STATUS_TAG", "DatasetInput", "LoggedModelInfo", "RunInfo", "VersionInfo", "dumps"]
