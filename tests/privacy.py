"""Scan a store for customer identifiers (shared by the privacy tests)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pandas as pd

# rating_account_id values are 6-digit integers; match them only as whole tokens
ACCOUNT_TOKEN = re.compile(r"(?<![0-9A-Za-z.])\d{6}(?![0-9A-Za-z.])")


def store_text(home: Path) -> str:
    """Every value in the SQLite db and every artifact file, as one text blob."""
    texts: list[str] = []
    con = sqlite3.connect(home / "mlflow.db")
    for (table,) in con.execute("select name from sqlite_master where type='table'"):
        for row in con.execute(f"select * from {table}"):
            texts += [str(v) for v in row if v is not None]
    con.close()
    for path in sorted(home.rglob("*")):
        if path.is_file() and path.name != "mlflow.db":
            texts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(texts)


CUSTOMER_TOKEN = re.compile(r"(?<![0-9.])[1-5]\.\d{6}(?![0-9])")


def leaked_identifiers(home: Path, accounts: pd.DataFrame) -> tuple[set[str], set[str]]:
    """(customer ids, account ids) of `accounts` that appear anywhere in the store.

    Identifiers are short numbers, so one can match by chance (a model of 367,182 bytes
    matched an account id once). Any real leak path (a logged row, an input example, a
    predictions table) exposes a whole row or a whole column, so a leak is reported when a
    customer id and its own account id both appear, or when three or more account ids do.
    """
    blob = store_text(home)
    customer_tokens = set(CUSTOMER_TOKEN.findall(blob))
    account_tokens = set(ACCOUNT_TOKEN.findall(blob))
    pairs = accounts.loc[
        accounts["customer_id"].isin(customer_tokens)
        & accounts["rating_account_id"].astype(str).isin(account_tokens)
    ]
    ids = {str(v) for v in accounts["rating_account_id"]} & account_tokens
    if len(ids) < 3 and pairs.empty:
        ids = set()
    customers = set(pairs["customer_id"]) | (
        set(accounts["customer_id"]) & customer_tokens if ids else set()
    )
    return customers, ids | set(pairs["rating_account_id"].astype(str))
