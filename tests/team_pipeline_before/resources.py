"""The team's resource: their analytics DuckDB database (what `dbt build` writes)."""

import dagster as dg
import pandas as pd


class Warehouse(dg.ConfigurableResource):
    database: str

    def read(self, table: str) -> pd.DataFrame:
        import duckdb

        with duckdb.connect(self.database, read_only=True) as con:
            return con.table(table).df()
