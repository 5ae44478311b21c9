"""The columns a SQL statement's WHERE clauses compare, and the tables it reads: a lexer, not a parser.

Good enough for the statements SQLAlchemy compiles and for PostgreSQL's ``Filter:`` expressions: string literals,
quoted identifiers, casts and every driver's parameter style are tokens of their own, so a value inside a literal
is never taken for a column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "StatementTable",
    "Token",
    "compared_columns",
    "filter_columns",
    "sql_tokens",
    "statement_tables",
    "where_columns",
]

_TOKEN = re.compile(
    r"""(?P<string>'(?:[^']|'')*')
    |(?P<quoted>"(?:[^"]|"")+")
    |(?P<cast>::)
    |(?P<param>\?|\$\d+|%\([^)]*\)s|%s|:\w+)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<number>\d+(?:\.\d*)?)
    |(?P<op><>|!=|<=|>=|!~~\*?|~~\*?|!~\*?|~\*?|=|<|>)
    |(?P<punct>[().,\[\]])""",
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    "ALL AND ANY AS ASC BETWEEN BY CASE CROSS DESC DISTINCT ELSE END ESCAPE EXCEPT EXISTS FALSE FETCH FOR FROM FULL "
    "GLOB GROUP HAVING ILIKE IN INDEXED INNER INTERSECT IS JOIN LEFT LIKE LIMIT NATURAL NOT NULL OFFSET ON OR ORDER "
    "OUTER REGEXP RETURNING RIGHT SELECT SET SOME THEN TRUE UNION USING VALUES WHEN WHERE WINDOW".split()
)
_CLAUSE_ENDS = frozenset("EXCEPT FETCH FOR GROUP HAVING INTERSECT LIMIT OFFSET ORDER RETURNING UNION WINDOW".split())
_WORD_OPERATORS = frozenset("BETWEEN GLOB ILIKE IN IS LIKE REGEXP".split())
_NEGATED_OPERATORS = frozenset("BETWEEN GLOB ILIKE IN LIKE REGEXP".split())

Token = tuple[str, str]
"""``(kind, text)``: kind is string, quoted, cast, param, word, number, op or punct."""


@dataclass(frozen=True, slots=True)
class StatementTable:
    """A table named after FROM or JOIN, with the schema it was qualified with, if any."""

    name: str
    schema: str | None = None


def sql_tokens(text: str) -> list[Token]:
    found: list[Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group()))
    return found


def _name(token: Token) -> str | None:
    """The identifier a token spells (quotes removed), or None for keywords and everything else."""
    kind, text = token
    if kind == "quoted":
        return text[1:-1].replace('""', '"')
    if kind == "word" and text.upper() not in _KEYWORDS:
        return text
    return None


def _is_comparison(tokens: list[Token], k: int) -> bool:
    kind, text = tokens[k]
    if kind == "op":
        return True
    if kind != "word":
        return False
    upper = text.upper()
    if upper in _WORD_OPERATORS:
        return True
    return upper == "NOT" and k + 1 < len(tokens) and tokens[k + 1][1].upper() in _NEGATED_OPERATORS


def _left_operand(tokens: list[Token], k: int) -> tuple[str | None, str] | None:
    """``(qualifier, column)`` compared by the operator at ``k``: ``col``, ``t.col``, ``(col)::type``, or None."""
    j = k - 1
    # Step back over casts: `(expr)::character varying` leaves j on the `)` that closes the cast expression.
    m = j
    while m >= 0 and m > j - 5 and _name(tokens[m]) is not None:
        m -= 1
    if m < j and m >= 0 and tokens[m][1] == "::":
        j = m - 1
    wrapped = j >= 0 and tokens[j][1] == ")"
    if wrapped:
        j -= 1
    if j < 0 or (column := _name(tokens[j])) is None:
        return None
    qualifier = None
    if j >= 2 and tokens[j - 1][1] == "." and (qualifier := _name(tokens[j - 2])) is not None:
        j -= 2
    before = tokens[j - 1] if j >= 1 else ("", "")
    if wrapped and (before[1] != "(" or (j >= 2 and _name(tokens[j - 2]) is not None)):
        return None  # f(col) is a function call, not a parenthesised column
    if before[1] in ("::", "."):
        return None
    return qualifier, column


def statement_tables(tokens: list[Token]) -> dict[str, StatementTable]:
    """Lower-cased table names and aliases after FROM / JOIN, each mapped to its table; CTE names left out."""
    ctes = {
        name.lower()
        for i, token in enumerate(tokens[:-2])
        if (name := _name(token)) is not None and tokens[i + 1][1].upper() == "AS" and tokens[i + 2][1] == "("
    }
    tables: dict[str, StatementTable] = {}
    for i, (_, text) in enumerate(tokens):
        if text.upper() not in ("FROM", "JOIN"):
            continue
        j = i + 1
        while j < len(tokens) and (name := _name(tokens[j])) is not None:
            schema = None
            j += 1
            while j + 1 < len(tokens) and tokens[j][1] == "." and (part := _name(tokens[j + 1])) is not None:
                schema, name, j = name, part, j + 2  # schema.table: the plan names the table alone
            if j < len(tokens) and tokens[j][1].upper() == "AS":
                j += 1
            alias = _name(tokens[j]) if j < len(tokens) else None
            if alias is not None:
                j += 1
            if name.lower() not in ctes:
                table = StatementTable(name, schema)
                tables[name.lower()] = table
                if alias is not None:
                    tables[alias.lower()] = table
            if j >= len(tokens) or tokens[j][1] != "," or text.upper() != "FROM":
                break
            j += 1
    return tables


def compared_columns(tokens: list[Token], tables: dict[str, StatementTable], table: str) -> tuple[str, ...]:
    """Columns of ``table`` (a name ``statement_tables`` gives) that the WHERE clauses of ``tokens`` compare."""
    wanted = {name for name, target in tables.items() if target.name.lower() == table.lower()}
    unqualified_ok = len({target.name for target in tables.values()}) == 1 and bool(wanted)
    columns: list[str] = []
    for start, (_, text) in enumerate(tokens):
        if text.upper() != "WHERE":
            continue
        depth = 0
        for k in range(start + 1, len(tokens)):
            kind, word = tokens[k]
            if word == "(":
                depth += 1
            elif word == ")":
                depth -= 1
                if depth < 0:
                    break
            elif depth == 0 and kind == "word" and word.upper() in _CLAUSE_ENDS:
                break
            elif _is_comparison(tokens, k) and (operand := _left_operand(tokens, k)) is not None:
                qualifier, column = operand
                if (qualifier.lower() in wanted if qualifier else unqualified_ok) and column not in columns:
                    columns.append(column)
    return tuple(columns)


def where_columns(statement: str, table: str) -> tuple[str, ...]:
    """Columns of ``table`` (a table name or its alias) that the statement's WHERE clauses compare, in order.

    A column counts when it stands left of =, <>, !=, <, >, <=, >=, LIKE, IN, IS, BETWEEN, GLOB (or NOT ...).
    An unqualified column counts only when the statement reads from one table.
    """
    tokens = sql_tokens(statement)
    tables = statement_tables(tokens)
    found = tables.get(table.lower())
    return compared_columns(tokens, tables, found.name if found is not None else table)


def filter_columns(expression: str) -> tuple[str, ...]:
    """Columns left of a comparison anywhere in ``expression`` (a PostgreSQL ``Filter:``), qualifiers dropped."""
    tokens = sql_tokens(expression)
    columns: list[str] = []
    for k in range(len(tokens)):
        if _is_comparison(tokens, k) and (operand := _left_operand(tokens, k)) is not None:
            if operand[1] not in columns:
                columns.append(operand[1])
    return tuple(columns)
