"""SQLAlchemy Core statements compiled once and run on the driver's own connection.

The message path runs a handful of fixed statements per message. Through SQLAlchemy's
execution layer each costs about as much CPU as the database takes to run it; compiled once
here (SQL text, parameter order, the column types' own conversions) and run on the
connection the pool hands out (bot.message_tx), they cost what the
driver costs, in the same transaction as anything else done on that connection. Values are
stored exactly as SQLAlchemy stores them: the types' bind and result processors are used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

__all__ = ["RawStatement"]

_Processor = Callable[[Any], Any] | None


class RawStatement:
    """One statement for one dialect: ``await statement.run(connection, params)`` returns
    its rows as tuples of Python values."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled: Any = statement.compile(dialect=dialect)  # a SQLCompiler
        self.dialect = dialect.name
        self.sql = str(compiled)
        names: Sequence[str] = compiled.positiontup or ()
        self._binds: list[tuple[str, _Processor]] = []
        self._constants: dict[str, Any] = {}
        for name in names:
            bind = compiled.binds[name]
            self._binds.append((name, bind.type.dialect_impl(dialect).bind_processor(dialect)))
            if not bind.required:  # a value written in the statement (``flood_count=0``)
                self._constants[name] = bind.effective_value
        columns = getattr(statement, "selected_columns", None)
        if columns is None:  # INSERT / UPDATE ... RETURNING
            columns = getattr(statement, "_returning", ()) or ()
        self._results: list[_Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self._convert = any(processor is not None for processor in self._results)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, processor in self._binds:
            value = params[name] if name in params else self._constants[name]  # KeyError: missing
            values.append(processor(value) if processor is not None else value)
        return values

    async def run(self, driver: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run on ``driver`` (:func:`driver_connection`); the rows, converted."""
        arguments = self.arguments(params)
        if self.dialect == "postgresql":
            return self._rows(await driver.fetch(self.sql, *arguments))
        return self._rows(await driver.execute_fetchall(self.sql, arguments))

    def run_sqlite(self, connection: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run on a ``sqlite3`` connection, here and now (no trip to aiosqlite's thread)."""
        return self._rows(connection.execute(self.sql, self.arguments(params)).fetchall())

    def _rows(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not self._convert:
            return [tuple(row) for row in rows]
        results = self._results
        return [
            tuple(
                value if processor is None or value is None else processor(value)
                for processor, value in zip(results, row, strict=True)
            )
            for row in rows
        ]
