"""The train regression's cause, reproduced: the same XGBoost fit (80,000 rows x 25 features,
the pipeline's parameters, two threads) in fresh processes that do not import this package,
with libgomp's default waiting and with OMP_WAIT_POLICY=PASSIVE. Prints wall and CPU seconds
of each fit and the load average. `python -m benchmarks.omp_wait` (the difference shows on a
machine with other load; on an idle one both are fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

FIT = """
import json, time
import numpy as np
import sklearn.preprocessing  # scikit-learn first, as the pipeline imports it: one libgomp
from xgboost import XGBClassifier
rng = np.random.default_rng(0)
x = rng.normal(size=(80_000, 25))
y = (x[:, 0] + rng.normal(size=80_000) > 1).astype(int)
model = XGBClassifier(n_estimators=200, max_depth=4, tree_method="hist", n_jobs=2)
wall, cpu = time.perf_counter(), time.process_time()
model.fit(x, y)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def fit(policy: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    done = subprocess.run(
        [sys.executable, "-c", FIT], capture_output=True, text=True, env=env, check=True
    )
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main() -> int:
    for policy in (None, "PASSIVE", None, "PASSIVE"):
        found = fit(policy)
        print(
            f"OMP_WAIT_POLICY={policy or '(libgomp default)'}: wall {found['wall']:.2f} s, "
            f"CPU {found['cpu']:.2f} s, load {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
