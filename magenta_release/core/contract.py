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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from magenta_release.core.errors import BadInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

# The split rule is part of the evidence: changing it changes which rows are evaluation rows.
SPLIT_METHOD = "siphash-of-key-mod-10000"
SALTED_SPLIT_METHOD = "siphash-of-salted-key-mod-10000"
SPLIT_BUCKETS = 10_000
PATTERN_CHARACTERS = frozenset("*?[")
TEMPORAL = "temporal"  # the kind of a date, time or timestamp column


def is_pattern(name: str) -> bool:
    """Whether a `[data]` entry is a glob pattern (`n_case_*`) rather than a column name."""
    return any(c in PATTERN_CHARACTERS for c in name)


def _matches(name: str, entries: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, e) if is_pattern(e) else name == e for e in entries)


def _expand(entries: tuple[str, ...], available: list[str]) -> list[str]:
    """Entries in their order, each pattern replaced by the columns it matches (in table
    order); a literal name is kept even when absent (the caller names it as missing)."""
    out: list[str] = []
    for e in entries:
        found = [c for c in available if fnmatchcase(c, e)] if is_pattern(e) else [e]
        out += [c for c in found if c not in out]
    return out


class DataContract(BaseModel):
    """`[data]` in the policy. Defaults describe the built-in generator's table.

    `features`, `categorical` and `exclude` take column names or glob patterns (`n_case_*`).
    Date, time and timestamp columns are left out of the features unless listed by name (a
    model wants a number derived from a date, such as days since, not the date)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str = "has_churned"
    identifiers: tuple[str, ...] = Field(default=("rating_account_id", "customer_id"), min_length=1)
    # Identifiers a table may lack (never features when present, never logged); the first of
    # `identifiers` (the key) is always required.
    optional_identifiers: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ("smartphone_brand_group",)
    features: tuple[str, ...] | None = None  # default: every other column
    exclude: tuple[str, ...] = ()  # never features (names or patterns)
    evaluation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    # The evaluation split hashes the key with this salt: changing it draws new evaluation
    # rows for every later run (runs under different salts are not comparable). Empty: the
    # unsalted rule of earlier releases, so their runs stay comparable.
    split_salt: str = Field(default="", max_length=200)
    # An out-of-time evaluation table (a source URI): when set, the gates judge every model
    # on these rows instead of each run's own evaluation rows.
    evaluation_table: str | None = None

    @model_validator(mode="after")
    def _disjoint(self) -> DataContract:
        ids = set(self.identifiers) | set(self.optional_identifiers)
        if self.target in ids:
            raise ValueError(f"target {self.target!r} is also listed as an identifier")
        if self.key in self.optional_identifiers:
            raise ValueError(
                f"{self.key!r} is the key (the first identifier) and cannot be optional"
            )
        clash = sorted(ids & set(self.features or ()) | ids & set(self.categorical))
        if clash:
            raise ValueError(
                f"identifier columns {', '.join(clash)} are listed as features; identifiers are "
                "never model inputs, remove them from features/categorical"
            )
        if self.target in set(self.features or ()) | set(self.categorical):
            raise ValueError(f"target {self.target!r} is listed as a feature")
        if self.features is not None:
            extra = sorted(
                c for c in self.categorical if not is_pattern(c) and not _matches(c, self.features)
            )
            if extra:
                raise ValueError(
                    f"categorical columns {', '.join(extra)} are not in features; add them"
                )
        return self

    @property
    def key(self) -> str:
        """The first identifier: the evaluation split hashes it."""
        return self.identifiers[0]

    @property
    def all_identifiers(self) -> tuple[str, ...]:
        """Every identifier, required and optional: never a feature, never logged."""
        return tuple(dict.fromkeys((*self.identifiers, *self.optional_identifiers)))

    def present_identifiers(self, available: list[str]) -> list[str]:
        """The identifiers a table holds: every required one, the optional ones it has."""
        return [
            *self.identifiers,
            *(c for c in self.optional_identifiers if c in available and c not in self.identifiers),
        ]

    def is_categorical(self, column: str) -> bool:
        return _matches(column, self.categorical)

    def resolve(
        self, available: list[str], kinds: dict[str, str] | None = None
    ) -> tuple[list[str], list[str]]:
        """(features, notices): the model inputs among `available`, and one line per thing
        left out that a person should know about (date columns). `kinds`: column -> kind
        (TEMPORAL for dates and timestamps), when known."""
        skip = {self.target, *self.all_identifiers}
        if self.features is not None:
            chosen = _expand(self.features, available)
        else:
            chosen = [c for c in available if c not in skip]
        chosen = [c for c in chosen if c not in skip and not _matches(c, self.exclude)]
        named = {f for f in self.features or () if not is_pattern(f)}
        dates = [c for c in chosen if (kinds or {}).get(c) == TEMPORAL and c not in named]
        notices = []
        if dates:
            notices.append(
                f"left out of the features: {', '.join(dates)} (dates and timestamps; derive a "
                "number such as days since in the table, or list it under [data] exclude to "
                "silence this)"
            )
        return [c for c in chosen if c not in dates], notices

    def feature_columns(
        self, available: list[str], kinds: dict[str, str] | None = None
    ) -> list[str]:
        """The model inputs: the explicit list (patterns expanded), else every column that is
        not target or identifier; less `exclude` and dates (see `resolve`)."""
        return self.resolve(available, kinds)[0]

    def columns(
        self, available: list[str], *, with_target: bool = True, kinds: dict[str, str] | None = None
    ) -> list[str]:
        """Every column the contract reads, in a stable order (identifiers, features, target)."""
        cols = [*self.present_identifiers(available), *self.feature_columns(available, kinds)]
        return [*cols, self.target] if with_target else cols

    def split_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "method": SALTED_SPLIT_METHOD if self.split_salt else SPLIT_METHOD,
            "column": self.key,
            "evaluation_fraction": self.evaluation_fraction,
        }
        if self.split_salt:
            rule["salt_sha256"] = hashlib.sha256(self.split_salt.encode()).hexdigest()[:16]
        return rule


@dataclass(frozen=True)
class Columns:
    """The resolved columns of one table under a contract."""

    numeric: list[str]
    categorical: list[str]
    notices: tuple[str, ...] = ()

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def near_matches(missing: list[str], available: list[str]) -> str:
    """`a -> a_x, b -> b_y` for the missing columns that resemble one the table has."""
    found = []
    for m in missing:
        close = get_close_matches(m, available, n=2, cutoff=0.6)
        if not close:
            folded = {c.casefold(): c for c in available}
            close = [folded[m.casefold()]] if m.casefold() in folded else []
        if close:
            found.append(f"{m} -> {' or '.join(close)}")
    return ", ".join(found)


def check_columns(
    contract: DataContract,
    available: list[str],
    where: str,
    kinds: dict[str, str] | None = None,
) -> Columns:
    """Resolve the features of a table; BadInput naming the missing columns (and the columns
    of the table that resemble them)."""
    features, notices = contract.resolve(available, kinds)
    wanted = [*contract.identifiers, *features, contract.target]
    missing = [c for c in dict.fromkeys(wanted) if c not in available]
    if missing:
        similar = near_matches(missing, available)
        raise BadInput(
            f"{where}: missing contract columns {', '.join(missing)}"
            + (f" (similar columns in the table: {similar})" if similar else "")
            + "; fix [data] in the release policy or the table"
        )
    patterns = [p for p in (*(contract.features or ()), *contract.categorical) if is_pattern(p)]
    empty = [p for p in patterns if not any(fnmatchcase(c, p) for c in available)]
    if empty:
        raise BadInput(
            f"{where}: [data] pattern{'s' if len(empty) > 1 else ''} {', '.join(empty)} "
            "match no column of the table; fix the pattern or the table"
        )
    dated = [c for c in features if (kinds or {}).get(c) == TEMPORAL]
    if dated:
        raise BadInput(
            f"{where}: {', '.join(dated)} hold dates or timestamps, which are not model inputs; "
            "derive a number (e.g. days since) in the table, or remove them from [data] features"
        )
    if not features:
        raise BadInput(f"{where}: the contract leaves no feature columns; list [data] features")
    return Columns(
        [c for c in features if not contract.is_categorical(c)],
        [c for c in features if contract.is_categorical(c)],
        tuple(notices),
    )


def arrow_kinds(schema: pa.Schema) -> dict[str, str]:
    """Column -> TEMPORAL for the date, time and timestamp columns of an Arrow schema."""
    import pyarrow as pa

    return {f.name: TEMPORAL for f in schema if pa.types.is_temporal(f.type)}


def frame_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Column -> TEMPORAL for the date and timestamp columns of a frame: datetime dtypes, and
    text-less object columns of `datetime.date` values (what pandas makes of a DATE column)."""
    import datetime as dt

    import pandas as pd

    found: dict[str, str] = {}
    for name, col in frame.items():
        if pd.api.types.is_datetime64_any_dtype(col) or isinstance(col.dtype, pd.PeriodDtype):
            found[str(name)] = TEMPORAL
        elif col.dtype == object:
            first = col.dropna().head(1)
            if len(first) and isinstance(first.iloc[0], dt.date | dt.time):
                found[str(name)] = TEMPORAL
    return found


def to_frame(table: pa.Table, *, release: bool = False) -> pd.DataFrame:
    """Arrow to pandas, keeping nullable integers as floats and text as Python strings.
    `release`: free each Arrow column as it is converted (the caller keeps no other
    reference to `table`), so a big table is not held twice."""
    if release:
        return table.to_pandas(types_mapper=None, self_destruct=True)
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
    # Identifiers are unique as a combination. When the first is unique alone (the usual
    # case, a hash-table check) so is the combination: pandera's row-wise check (seconds on
    # millions of rows) runs only when it can find something.
    first = frame.get(contract.identifiers[0])
    unique = None if first is not None and first.is_unique else list(contract.identifiers)
    schema = pa.DataFrameSchema(
        columns,
        unique=unique,
        report_duplicates="exclude_first",
        name=where,
    )
    try:
        schema.validate(frame, lazy=True, inplace=True)  # checks only: no copy of the table
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


def row_hashes(frame: pd.DataFrame, known: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """One 64-bit hash per row over its values (pandas' SipHash with a fixed key): exactly
    `pd.util.hash_pandas_object(frame, index=False)`, computed column by column so that no
    copy of the table is made. `known`: hashes of text columns computed already
    (`RowDigest.text`); a text column hashes the same as its values as Python objects."""
    known = known or {}

    def column(name: str) -> np.ndarray:
        col = frame[name]
        if name in known and _text_hash_is_shared(col):
            return known[name]
        return _column_hash(col)

    return _combine((column(c) for c in frame.columns), len(frame), frame.shape[1])


@dataclass(frozen=True)
class RowDigest:
    """The content hashes behind `digest`: the column names and kinds, one hash per row over
    the values as the digest sees them (numbers as float64, everything else as Python
    objects), and the hashes of the text columns (reused by `row_hashes`). The digest of any
    subset of the rows is then a sort, not a second pass over the table."""

    kinds: list[list[str]]
    hashes: np.ndarray
    text: dict[str, np.ndarray]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> RowDigest:
        names = sorted(frame.columns)
        kinds = [[str(c), "number" if _is_number(frame[c]) else "text"] for c in names]
        text: dict[str, np.ndarray] = {}

        def column(name: str) -> np.ndarray:
            col = frame[name]
            if _is_number(col):  # one column at a time: never a converted copy of the table
                return _column_hash(col.astype("float64"))
            text[name] = _text_hash(col)
            return text[name]

        hashes = _combine((column(c) for c in names), len(frame), len(names))
        return cls(kinds, hashes, text)

    def digest(self, rows: np.ndarray | None = None) -> str:
        """SHA-256 of all rows, or of the rows at positions `rows` (any order)."""
        import numpy as np

        chosen = self.hashes if rows is None else self.hashes[rows]
        h = hashlib.sha256(json.dumps(self.kinds).encode())
        h.update(np.sort(chosen).tobytes())
        return h.hexdigest()


def digest(frame: pd.DataFrame) -> str:
    """SHA-256 of exactly these rows and columns, independent of row and column order and
    stable across re-reads: the sorted per-row hashes of the columns sorted by name (numbers
    as float64, so integer and float storage agree), plus the names and kinds of the
    columns."""
    return RowDigest.of(frame).digest()


def _is_number(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(col.dtype))


def _text_hash_is_shared(col: pd.Series) -> bool:
    """Object and string columns hash the same as their values as Python objects."""
    import pandas as pd

    return pd.api.types.is_object_dtype(col.dtype) or isinstance(col.dtype, pd.StringDtype)


def _column_hash(col: pd.Series) -> np.ndarray:
    """`hash_pandas_object(col, index=False)`. Pandas first factorises text so that each
    distinct value is hashed once: on a column of mostly distinct values (identifiers) that
    costs 15x the hashing itself, so those are hashed value by value (the same hashes, as
    long as no value is missing: pandas hashes a missing value apart)."""
    import pandas as pd

    if _text_hash_is_shared(col) and _mostly_distinct(col) and not col.isna().any():
        values = col.to_numpy(dtype=object)
        # only strings: pandas hashes other objects (timestamps) by what they factorise to
        if isinstance(col.dtype, pd.StringDtype) or pd.api.types.infer_dtype(values) == "string":
            distinct: np.ndarray = pd.util.hash_array(values, categorize=False)
            return distinct
    hashes: np.ndarray = pd.util.hash_pandas_object(col, index=False).to_numpy()
    return hashes


def _text_hash(col: pd.Series) -> np.ndarray:
    """The hashes of a column's values as Python objects (how the digest sees text)."""
    return _column_hash(col if _text_hash_is_shared(col) else col.astype(object))


SAMPLE = 2048


def _mostly_distinct(col: pd.Series) -> bool:
    """True when a sample of the values is mostly distinct (a hint for speed only)."""
    n = len(col)
    if n <= 4 * SAMPLE:
        return False
    sample = col.iloc[:: n // SAMPLE].to_numpy(dtype=object).tolist()
    try:
        return len(set(sample)) > len(sample) // 2
    except TypeError:  # unhashable values: let pandas decide
        return False


def _combine(hashes: Iterator[np.ndarray], rows: int, columns: int) -> np.ndarray:
    """Per-column hashes folded into one per row: pandas' `combine_hash_arrays`, the rule
    `hash_pandas_object` applies to a frame (tests/core/test_digest.py holds them equal)."""
    import numpy as np

    if columns == 0:
        return np.zeros(0, dtype=np.uint64)
    out = np.full(rows, 0x345678, dtype=np.uint64)
    mult = 1000003
    for i, h in enumerate(hashes):
        out ^= h
        out *= np.uint64(mult)
        inverse = columns - i
        mult += 82520 + inverse + inverse
    out += np.uint64(97531)
    return out


def evaluation_mask(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """True for evaluation rows: a hash of the key (salted by `[data] split_salt` when set)
    decides, so a customer lands on the same side in every snapshot and for every model
    trained on it."""
    import pandas as pd

    text = str_values(frame[contract.key])  # same side whether the key was read as int or text
    if contract.split_salt:
        text = (contract.split_salt + "\x1f") + text  # one C loop over Python strings
    buckets = _column_hash(pd.Series(text, dtype=object, copy=False)) % SPLIT_BUCKETS
    mask: np.ndarray = buckets < round(contract.evaluation_fraction * SPLIT_BUCKETS)
    return mask


def str_values(col: pd.Series) -> np.ndarray:
    """`str(value)` of each value, as Python objects. Integer and text columns are converted
    without a Python call per value (through Arrow; text is itself)."""
    import numpy as np
    import pandas as pd

    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return _integer_text(col.to_numpy())
    is_object = pd.api.types.is_object_dtype(dtype)
    if (is_object or isinstance(dtype, pd.StringDtype)) and not col.isna().any():
        values: np.ndarray = col.to_numpy(dtype=object)
        if not is_object or pd.api.types.infer_dtype(values, skipna=False) == "string":
            return values
    converted: np.ndarray = col.astype(object).map(str).to_numpy(dtype=object)
    return converted


def key_text(col: pd.Series) -> pd.Series:
    """A key column as text, the same whether it was read as integers, as floats holding
    integers (a nullable integer column), or as text."""
    import numpy as np
    import pandas as pd

    dtype = col.dtype
    if (isinstance(dtype, np.dtype) and dtype.kind in "iu") or (
        pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col)
    ):
        return _text(str_values(col), col)
    values = col.to_numpy(dtype="float64", na_value=np.nan)
    if np.isfinite(values).all() and (values == np.round(values)).all():
        return _text(_integer_text(values.astype("int64")), col)
    return _text(str_values(col), col)


def _integer_text(values: np.ndarray) -> np.ndarray:
    """Decimal text of integers as Python strings (what `str` gives), through Arrow."""
    import pyarrow as pa

    text: np.ndarray = pa.array(values).cast(pa.string()).to_numpy(zero_copy_only=False)
    return text


def _text(values: np.ndarray, like: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.Series(values, index=like.index, dtype=object, copy=False)


def key_hashes(frame: pd.DataFrame, column: str) -> np.ndarray:
    """One 64-bit hash per row of its key: what the disjointness check compares in memory.
    Hashes are never stored anywhere (they would still identify a customer)."""
    return _column_hash(key_text(frame[column]))
