"""The Dagster integration a team's own code location uses (needs the `[dagster]` extra):

- `ReleaseStore`: where the release store is and who the pipeline acts as;
- `EvaluationFiles`: where a run's evaluation rows and training keys are written
  (`magenta_release.sdk.log_governed_run(..., evaluation_dir=files.folder())`);
- `ChampionModel`: the verified `@champion` (SHA-256 checked before it is loaded), scoring a
  DataFrame in memory into a configurable output column;
- `FrameIOManager`: DataFrames as parquet (their index kept), other values as JSON; never
  pickle;
- `propose_on_new_run(...)`: a sensor and a job that propose each new run an asset reports;
- `champion_moved_sensor(...)`: a sensor that starts a job once per move of `@champion`.

Everything resolves its configuration when a run starts (`dg.EnvVar`), never at import."""

from __future__ import annotations

from magenta_release.core.extras import require

# a base install has no Dagster: one line naming the extra instead of an ImportError
require("dagster", "magenta_release.dagster")
require("upath", "magenta_release.dagster")

from magenta_release.dagster.io_manager import FrameFiles, FrameIOManager  # noqa: E402
from magenta_release.dagster.resources import (  # noqa: E402
    ChampionModel,
    EvaluationFiles,
    ReleaseStore,
)
from magenta_release.dagster.sensors import (  # noqa: E402
    RUN_ID_METADATA,
    ProposeConfig,
    champion_moved_sensor,
    propose_on_new_run,
)

__all__ = [
    "RUN_ID_METADATA",
    "ChampionModel",
    "EvaluationFiles",
    "FrameFiles",
    "FrameIOManager",
    "ProposeConfig",
    "ReleaseStore",
    "champion_moved_sensor",
    "propose_on_new_run",
]
