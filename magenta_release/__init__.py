"""magenta-release: tracked training and a gated, audited release process on MLflow."""

import os as _os

__version__ = "0.2.0"

# OpenMP threads sleep while they wait for work instead of spinning, unless OMP_WAIT_POLICY is
# set. XGBoost and scikit-learn load one libgomp between them (the same vendored library), which
# reads this once, when the first of them is imported: hence here. With libgomp's default the
# waiting thread spins at each of a fit's thousands of barriers and, on a 2-core machine with
# any other load, takes the core the working thread needs: a 100k-row XGBoost fit took 40 s
# (15.6 s of CPU) with two threads at load 7 and 3.0 s (1.75 s of CPU) with passive waiting
# (https://gcc.gnu.org/onlinedocs/libgomp/OMP_005fWAIT_005fPOLICY.html; docs/performance.md).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
