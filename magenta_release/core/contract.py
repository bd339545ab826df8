"""The data contract of a model (README.md, "Train on your own table"): which column is the
target, which are identifiers (never features, never logged), which features are categorical;
validated on every read with pandera, digested, and split into training and evaluation rows by a
hash of the identifier.

Why pandera: it is a maintained, declarative schema library for pandas whose lazy validation
collects every failing column and check in one pass, so one read gives one error line naming
all the columns at fault; Great Expectations would bring a project layout and a context store
for what is here a dozen checks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from magenta_release.core.errors import BadInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

# The split rule is part of the evidence: changing it changes which rows are evaluation rows.
SPLIT_METHOD = "siphash-of-key-mod-10000"
SPLIT_BUCKETS = 10_000


class DataContract(BaseModel):
    """`[data]` in the policy. Defaults describe the built-in generator's table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str = "has_churned"
    identifiers: tuple[str, ...] = Field(default=("rating_account_id", "customer_id"), min_length=1)
    categorical: tuple[str, ...] = ("smartphone_brand_group",)
    features: tuple[str, ...] | None = None  # default: every other column
    evaluation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _disjoint(self) -> DataContract:
        ids = set(self.identifiers)
        if self.target in ids:
            raise ValueError(f"target {self.target!r} is also listed as an identifier")
        clash = sorted(ids & set(self.features or ()) | ids & set(self.categorical))
        if clash:
            raise ValueError(
                f"identifier columns {', '.join(clash)} are listed as features; identifiers are "
                "never model inputs, remove them from features/categorical"
            )
        if self.target in set(self.features or ()) | set(self.categorical):
            raise ValueError(f"target {self.target!r} is listed as a feature")
        if self.features is not None:
            extra = sorted(set(self.categorical) - set(self.features))
            if extra:
                raise ValueError(
                    f"categorical columns {', '.join(extra)} are not in features; add them"
                )
        return self

    @property
    def key(self) -> str:
        """The first identifier: the evaluation split hashes it."""
        return self.identifiers[0]

    def feature_columns(self, available: list[str]) -> list[str]:
        """The model inputs: the explicit list, else every column that is not target or id."""
        if self.features is not None:
            return list(self.features)
        skip = {self.target, *self.identifiers}
        return [c for c in available if c not in skip]

    def columns(self, available: list[str], *, with_target: bool = True) -> list[str]:
        """Every column the contract reads, in a stable order (identifiers, features, target)."""
        cols = [*self.identifiers, *self.feature_columns(available)]
        return [*cols, self.target] if with_target else cols

    def split_rule(self) -> dict[str, Any]:
        return {
            "method": SPLIT_METHOD,
            "column": self.key,
            "evaluation_fraction": self.evaluation_fraction,
        }


@dataclass(frozen=True)
class Columns:
    """The resolved columns of one table under a contract."""

    numeric: list[str]
    categorical: list[str]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def check_columns(contract: DataContract, available: list[str], where: str) -> Columns:
    """Resolve the features of a table; BadInput naming the missing columns."""
    features = contract.feature_columns(available)
    wanted = [*contract.identifiers, *features, contract.target]
    missing = [c for c in wanted if c not in available]
    if missing:
        raise BadInput(
            f"{where}: missing contract columns {', '.join(missing)}; fix [data] in the "
            "release policy or the table"
        )
    if not features:
        raise BadInput(f"{where}: the contract leaves no feature columns; list [data] features")
    cat = set(contract.categorical)
    return Columns([c for c in features if c not in cat], [c for c in features if c in cat])


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas, keeping nullable integers as floats and text as Python strings."""
    return table.to_pandas(types_mapper=None)


def validate(
    frame: pd.DataFrame, contract: DataContract, cols: Columns, where: str, *, target: bool = True
) -> None:
    """Check a table against the contract with pandera; one BadInput line naming every column
    at fault: empty table, non-numeric or infinite features, a non-binary or missing target,
    missing or duplicate identifiers."""
    import pandas as pd
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    if frame.empty:
        raise BadInput(f"{where}: the table has no rows; point --data at a table with data")
    numeric = pa.Check(
        lambda s: pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s),
        element_wise=False,
        error="must be numeric or boolean",
    )
    bounded = pa.Check(_bounded, error=f"must be finite and within {HUGE:g}")
    columns: dict[str, Any] = {
        c: pa.Column(checks=[numeric, bounded], nullable=True) for c in cols.numeric
    }
    # An empty identifier can be neither split reproducibly nor matched to a customer.
    columns |= {c: pa.Column(nullable=False) for c in contract.identifiers}
    if target:
        columns[contract.target] = pa.Column(
            nullable=False,
            checks=pa.Check(
                lambda s: s.isin([0, 1]) | s.isin([True, False]),
                error="must be 0/1 or true/false",
            ),
        )
    schema = pa.DataFrameSchema(
        columns,
        unique=list(contract.identifiers),
        report_duplicates="exclude_first",
        name=where,
    )
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        raise BadInput(_summarise(exc, contract, where)) from None


HUGE = 1e12  # the same bound as predict's: beyond it a value is a unit or export error


def _bounded(s: pd.Series) -> pd.Series:
    """True where a value is missing or a finite number within HUGE (XGBoost stops with a
    traceback on infinity); text columns are the numeric check's to report."""
    import numpy as np
    import pandas as pd

    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        return pd.Series(True, index=s.index)
    values = s.astype("float64")
    ok: pd.Series = values.isna() | (np.isfinite(values) & (values.abs() <= HUGE))
    return ok


def _summarise(exc: Any, contract: DataContract, where: str) -> str:
    problems: list[str] = []
    cases = exc.failure_cases
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        if str(check).startswith("field_uniqueness") or "unique" in str(check):
            problems.append(
                f"duplicate identifiers ({', '.join(contract.identifiers)}) in "
                f"{len(group)} rows; deduplicate the table"
            )
        elif "not_nullable" in str(check):
            what = "identifiers" if column in contract.identifiers else "the target"
            problems.append(
                f"{column} has missing values in {len(group)} rows ({what} may not be empty)"
            )
        elif "finite" in str(check):
            problems.append(
                f"{column} has infinite or huge values (beyond {HUGE:g}) in {len(group)} rows; "
                "fix the export or the units"
            )
        elif "numeric" in str(check):
            problems.append(f"{column} must be numeric; list it under [data] categorical")
        elif "0/1" in str(check):
            sample = ", ".join(sorted({str(v) for v in group["failure_case"].head(20)})[:3])
            problems.append(f"target {column} is not binary (found {sample}); use 0/1")
        else:
            problems.append(f"{column}: {check}")
    return f"{where}: " + "; ".join(dict.fromkeys(problems))


def prepare(frame: pd.DataFrame, cols: Columns) -> pd.DataFrame:
    """The model's input frame: numbers as float64 (booleans as 0/1), categories as text with
    NaN for missing (the pipeline imputes them)."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for c in cols.numeric:
        out[c] = frame[c].astype("float64")
    for c in cols.categorical:
        out[c] = as_category(frame[c])
    return out


def as_category(col: pd.Series) -> pd.Series:
    """Text values as Python strings, missing as NaN (what the pipeline's imputer fills):
    the same at training and at scoring."""
    import numpy as np
    import pandas as pd

    # Each distinct value converted once (factorize), not a Python call per row.
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    texts = np.array([str(u) for u in uniques] + [np.nan], dtype=object)
    return pd.Series(texts[codes], index=col.index, name=col.name, dtype=object)


def target(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    import numpy as np

    return np.asarray(frame[contract.target].astype(int).to_numpy(), dtype=int)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row over its values (pandas' SipHash with a fixed key)."""
    import pandas as pd

    hashes: np.ndarray = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashes


def digest(frame: pd.DataFrame) -> str:
    """SHA-256 of exactly these rows and columns, independent of row and column order and
    stable across re-reads: the sorted per-row hashes of the columns sorted by name, plus the
    names and kinds of the columns."""
    import numpy as np
    import pandas as pd

    ordered = frame.loc[:, sorted(frame.columns)]
    kinds = [
        [str(c), "number" if pd.api.types.is_numeric_dtype(t) else "text"]
        for c, t in ordered.dtypes.items()
    ]
    numbers = ordered.apply(
        lambda s: s.astype("float64") if pd.api.types.is_numeric_dtype(s) else s.astype(object)
    )
    h = hashlib.sha256(json.dumps(kinds).encode())
    h.update(np.sort(row_hashes(numbers)).tobytes())
    return h.hexdigest()


def evaluation_mask(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """True for evaluation rows: a hash of the key decides, so a customer lands on the same
    side in every snapshot and for every model trained on it."""
    import pandas as pd

    key = frame[contract.key]
    text = key.astype(object).map(str)  # same side whether the key was read as int or text
    buckets = pd.util.hash_pandas_object(text, index=False).to_numpy() % SPLIT_BUCKETS
    mask: np.ndarray = buckets < round(contract.evaluation_fraction * SPLIT_BUCKETS)
    return mask
