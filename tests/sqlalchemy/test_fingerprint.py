from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from slipstream.sqlalchemy.fingerprint import MAX_TEXT_LENGTH, Fingerprint, fingerprint


def case(statement: str, text: str, label: str) -> Any:
    return pytest.param(statement, text, id=label)


@pytest.mark.parametrize(
    ("statement", "text"),
    [
        case("SELECT * FROM users WHERE id = 1", "SELECT * FROM users WHERE id = ?", "int"),
        case("SELECT * FROM users WHERE id = 2", "SELECT * FROM users WHERE id = ?", "another int"),
        case(
            "select a from t where x = 1.5 and y = .25 and z = 6.",
            "select a from t where x = ? and y = ? and z = ?",
            "decimals",
        ),
        case("select 1e10, 2.5E-3, 7e+2", "select ?, ?, ?", "exponents"),
        case("select 0x1F, 0XFF, 0o17, 0b101, 1_000_000", "select ?, ?, ?, ?, ?", "hex octal binary underscores"),
        case(
            "select * from t where a = -1 and b >= -2.5 and c in (-3, 4)",
            "select * from t where a = ? and b >= ? and c in (?)",
            "negative",
        ),
        case(
            "select case when a then -1 else +2 end from t where x between -5 and -1",
            "select case when a then ? else ? end from t where x between ? and ?",
            "signs after keywords",
        ),
        case("select a - 1, a-1, b + 2, -1 from t", "select a - ?, a-?, b + ?, ? from t", "binary minus kept"),
        case(
            "select t1.c2, col_3, a$4 from t5 where x = 6",
            "select t1.c2, col_3, a$4 from t5 where x = ?",
            "digits in names",
        ),
        case("select t.5 from t", "select t.? from t", "a number after a name and a dot"),
        case("select 'it''s', 'a' 'b', '' from t", "select ?, ? ?, ? from t", "strings"),
        case(
            "select E'it\\'s', e'a\\\\', N'x', n'y', X'1F', b'0101', U&'d\\0061t' from t",
            "select ?, ?, ?, ?, ?, ?, ? from t",
            "prefixed strings",
        ),
        case("select xN'y', x'1f'n from t", "select xN?, ?n from t", "prefix letters inside names"),
        case("select C:\\'path' from t", "select C:\\? from t", "backslash is ordinary outside E strings"),
        case("select $$it's$$, $fn$ a $$ b $fn$, $a$x$b$y$a$ from t", "select ?, ?, ? from t", "dollar quotes"),
        case("select a$$b$$ from t", "select a$$b$$ from t", "dollar inside a name"),
        case("select * from t where a = 'unterminated and b = 2", "select * from t where a = ?", "unterminated string"),
        case("select $$ never closed", "select ?", "unterminated dollar quote"),
        case(
            'select "it\'s", "a ""b""", `c``d` from "T"', 'select "it\'s", "a ""b""", `c``d` from "T"', "quoted names"
        ),
        case('select "unclosed from t where a = 1', 'select "unclosed from t where a = ?', "unclosed quoted name"),
        case(
            "select TRUE, false, NULL from t where a is null",
            "select TRUE, false, NULL from t where a is null",
            "keyword values",
        ),
        case("SELECT  a,\n\tb \r\n FROM   t  ", "SELECT a, b FROM t", "whitespace"),
        case("  ", "", "blank"),
    ],
)
def test_literals(statement: str, text: str) -> None:
    assert fingerprint(statement).text == text


@pytest.mark.parametrize(
    ("statement", "text"),
    [
        case("select * from t where a = ? and b = ?", "select * from t where a = ? and b = ?", "qmark (sqlite)"),
        case(
            "select * from t where a = ?1 and b = ?2",
            "select * from t where a = ? and b = ?",
            "numbered qmark (sqlite)",
        ),
        case(
            "select * from t where a = :a and b = :b_2 and c = :1",
            "select * from t where a = ? and b = ? and c = ?",
            "named, numeric",
        ),
        case(
            "select * from t where a = %s and b = %b and c = %t",
            "select * from t where a = ? and b = ? and c = ?",
            "format (psycopg)",
        ),
        case(
            "select * from t where a = %(a)s and b = %(b_1)s::INTEGER",
            "select * from t where a = ? and b = ?::INTEGER",
            "pyformat (psycopg)",
        ),
        case(
            "select * from t where a = $1 and b = $2::VARCHAR(30)",
            "select * from t where a = ? and b = ?::VARCHAR(?)",
            "numeric dollar (asyncpg)",
        ),
        case(
            "select a::text, b :: int, c[1:2], d[x:y] from t",
            "select a::text, b :: int, c[?:?], d[x:y] from t",
            "casts and slices",
        ),
        case(
            "select * from t where id in (__[POSTCOMPILE_id_1])",
            "select * from t where id in (?)",
            "sqlalchemy postcompile",
        ),
        case(
            "select * from t where a like 'x%%' and b = c %% 2 and d = %%s",
            "select * from t where a like ? and b = c %% ? and d = %%s",
            "escaped percent",
        ),
        case(
            "select * from t where id = any(%(ids)s) and x = ANY (ARRAY[1, 2, 3])",
            "select * from t where id = any(?) and x = ANY (ARRAY[?])",
            "any and arrays",
        ),
    ],
)
def test_parameters(statement: str, text: str) -> None:
    assert fingerprint(statement).text == text


@pytest.mark.parametrize(
    ("statement", "text"),
    [
        case("select * from t where id IN (1, 2, 3)", "select * from t where id IN (?)", "literals"),
        case("select * from t where id in(?,?)", "select * from t where id in(?)", "no spaces"),
        case("select * from t where id in ( $1::INTEGER, $2::INTEGER )", "select * from t where id in (?)", "casts"),
        case("select * from t where id not in ('a', NULL, 'c')", "select * from t where id not in (?)", "with null"),
        case(
            "select * from t where (a, b) in ((1, 2), (3, 4), (5, 6))",
            "select * from t where (a, b) in ((?, ?))",
            "tuples",
        ),
        case(
            "select * from t where a in (select b from u) and c in (f(1), 2)",
            "select * from t where a in (select b from u) and c in (f(?), ?)",
            "not a value list",
        ),
        case(
            "select * from t where a = any(ARRAY[1,2]) and b = array [3]",
            "select * from t where a = any(ARRAY[?]) and b = array [?]",
            "arrays",
        ),
        case(
            "insert into t (a, b) values (1, 'x'), (2, 'y'), (3, 'z')",
            "insert into t (a, b) values (?, ?)",
            "values rows",
        ),
        case(
            "INSERT INTO t (a, b) VALUES ($1::VARCHAR, DEFAULT), ($2::VARCHAR, DEFAULT)",
            "INSERT INTO t (a, b) VALUES (?::VARCHAR, DEFAULT)",
            "values casts defaults",
        ),
        case(
            "insert into t values(1),(2) returning id", "insert into t values(?) returning id", "values rows no spaces"
        ),
        case(
            "insert into t values (now()), (now())",
            "insert into t values (now()), (now())",
            "values rows of expressions",
        ),
        case("select f(?, ?), (?, ?) from t", "select f(?, ?), (?, ?) from t", "rows not after values or in"),
    ],
)
def test_lists_collapse(statement: str, text: str) -> None:
    assert fingerprint(statement).text == text


@pytest.mark.parametrize(
    ("statement", "text"),
    [
        case("select a -- the a column\nfrom t -- end", "select a from t", "line comments"),
        case("/* app:web */ select a/**/from t /* a\n 'quoted' */", "select a from t", "block comments"),
        case("select a /* unterminated 'secret'", "select a", "unterminated block comment"),
        case("select '-- not a comment', '/* nor this */' from t", "select ?, ? from t", "comment marks in strings"),
        case('select "a--b", "c/*d*/" from t', 'select "a--b", "c/*d*/" from t', "comment marks in names"),
        case("select a --1\n, b", "select a , b", "double minus is a comment"),
    ],
)
def test_comments(statement: str, text: str) -> None:
    assert fingerprint(statement).text == text


@pytest.mark.parametrize(
    ("statement", "operation", "collection"),
    [
        pytest.param("SELECT a FROM users WHERE b = 1", "SELECT", "users", id="select"),
        pytest.param("select a from Public.Users u join b on true", "SELECT", "Public.Users", id="schema, case kept"),
        pytest.param('SELECT a FROM "my schema"."Order ""Items"""', "SELECT", 'my schema.Order "Items"', id="quoted"),
        pytest.param("SELECT a FROM `db`.`t`", "SELECT", "db.t", id="backticks"),
        pytest.param("SELECT a FROM [dbo].[t]", "SELECT", "dbo.t", id="brackets"),
        pytest.param("SELECT a FROM public . t", "SELECT", "public.t", id="spaced dot"),
        pytest.param("SELECT 1", "SELECT", None, id="no from"),
        pytest.param("SELECT a IS DISTINCT FROM b FROM t", "SELECT", "t", id="distinct from"),
        pytest.param("SELECT (SELECT max(x) FROM a), extract(year from d) FROM b", "SELECT", "b", id="nested from"),
        pytest.param(
            "SELECT x FROM (SELECT y FROM (SELECT z FROM inner_t) AS a) AS b", "SELECT", "inner_t", id="subquery"
        ),
        pytest.param(
            "SELECT * FROM (SELECT 1) AS a UNION SELECT b FROM t", "SELECT", None, id="subquery without table"
        ),
        pytest.param("SELECT * FROM (" * 9 + "SELECT 1 FROM deep" + ")" * 9, "SELECT", None, id="too deep"),
        pytest.param("SELECT * FROM generate_series(1, 10)", "SELECT", None, id="table function"),
        pytest.param("SELECT * FROM ONLY t", "SELECT", "t", id="only"),
        pytest.param("select * from straße where a = 1", "SELECT", "straße", id="upper-casing changes length"),
        pytest.param("(SELECT a FROM t) UNION (SELECT a FROM u)", "SELECT", "t", id="parenthesised"),
        pytest.param("SELECT a FROM", "SELECT", None, id="from nothing"),
        pytest.param("insert into t1 (a) values (1)", "INSERT", "t1", id="insert"),
        pytest.param("INSERT OR REPLACE INTO main.t (a) VALUES (?)", "INSERT", "main.t", id="insert or replace"),
        pytest.param("INSERT t VALUES (1)", "INSERT", None, id="insert without into"),
        pytest.param("INSERT INTO (SELECT 1)", "INSERT", None, id="insert into no name"),
        pytest.param("REPLACE INTO t VALUES (1)", "REPLACE", "t", id="replace"),
        pytest.param("MERGE INTO t USING s ON t.id = s.id", "MERGE", "t", id="merge"),
        pytest.param("UPDATE t SET a = 1", "UPDATE", "t", id="update"),
        pytest.param('UPDATE ONLY "s"."T" SET a = 1', "UPDATE", "s.T", id="update only"),
        pytest.param("UPDATE OR ROLLBACK t SET a = 1", "UPDATE", "t", id="update or rollback"),
        pytest.param("UPDATE LOW_PRIORITY IGNORE t SET a = 1", "UPDATE", "t", id="update mysql"),
        pytest.param("UPDATE", "UPDATE", None, id="update nothing"),
        pytest.param("DELETE FROM t WHERE id IN (SELECT id FROM u)", "DELETE", "t", id="delete"),
        pytest.param("WITH a AS (SELECT 1 FROM x), b AS (SELECT 2) SELECT * FROM a", "SELECT", "a", id="with select"),
        pytest.param(
            "with recursive r(n) as (select 1 union all select n from r) insert into t select * from r",
            "INSERT",
            "t",
            id="with insert",
        ),
        pytest.param("WITH x AS (DELETE FROM a RETURNING *) UPDATE b SET c = 1", "UPDATE", "b", id="with update"),
        pytest.param("WITH x AS (SELECT 1) TABLE x", "WITH", None, id="with, no main verb"),
        pytest.param("/* hint */ EXPLAIN SELECT * FROM t", "EXPLAIN", None, id="explain"),
        pytest.param("CREATE TABLE t (a int)", "CREATE", None, id="ddl"),
        pytest.param("begin", "BEGIN", None, id="begin"),
        pytest.param("PRAGMA foreign_keys = ON", "PRAGMA", None, id="pragma"),
        pytest.param("hello world", "OTHER", None, id="unknown word"),
        pytest.param("? = 1", "OTHER", None, id="no leading word"),
        pytest.param("", "OTHER", None, id="empty"),
    ],
)
def test_operation_and_collection(statement: str, operation: str, collection: str | None) -> None:
    result = fingerprint(statement)
    assert (result.operation, result.collection) == (operation, collection)


metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(30)),
    sa.Column("age", sa.Integer),
    schema="app",
)
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer),
    sa.Column("total", sa.Numeric(10, 2)),
)
big_orders = sa.select(orders.c.user_id).where(orders.c.total > 100).cte("big")
DIALECTS: dict[str, Callable[[], Dialect]] = {
    "sqlite": sqlite.dialect,
    "psycopg": postgresql.psycopg.dialect,
    "asyncpg": postgresql.asyncpg.dialect,
}
# Statement, then the text on SQLite and on PostgreSQL (which casts its parameters), operation, collection.
COMPILED = {
    "select": (
        sa.select(users.c.id).where(users.c.age > 18, users.c.name.like("a%")).order_by(users.c.name).limit(10),
        "SELECT app.users.id FROM app.users WHERE app.users.age > ? AND app.users.name LIKE ? "
        "ORDER BY app.users.name LIMIT ? OFFSET ?",
        "SELECT app.users.id FROM app.users WHERE app.users.age > ?::INTEGER AND app.users.name LIKE ?::VARCHAR "
        "ORDER BY app.users.name LIMIT ?::INTEGER",
        "SELECT",
        "app.users",
    ),
    "in": (
        sa.select(users.c.name).where(users.c.id.in_([1, 2, 3])),
        "SELECT app.users.name FROM app.users WHERE app.users.id IN (?)",
        "SELECT app.users.name FROM app.users WHERE app.users.id IN (?)",
        "SELECT",
        "app.users",
    ),
    "join": (
        sa.select(orders.c.total, users.c.name).join_from(orders, users, orders.c.user_id == users.c.id),
        "SELECT orders.total, app.users.name FROM orders JOIN app.users ON orders.user_id = app.users.id",
        "SELECT orders.total, app.users.name FROM orders JOIN app.users ON orders.user_id = app.users.id",
        "SELECT",
        "orders",
    ),
    "subquery": (
        sa.select(sa.func.count()).select_from(sa.select(orders.c.user_id).where(orders.c.total > 1).subquery()),
        "SELECT count(*) AS count_1 FROM (SELECT orders.user_id AS user_id FROM orders WHERE orders.total > ?) "
        "AS anon_1",
        "SELECT count(*) AS count_1 FROM (SELECT orders.user_id AS user_id FROM orders WHERE orders.total > "
        "?::INTEGER) AS anon_1",
        "SELECT",
        "orders",
    ),
    "cte": (
        sa.select(big_orders.c.user_id),
        "WITH big AS (SELECT orders.user_id AS user_id FROM orders WHERE orders.total > ?) SELECT big.user_id FROM big",
        "WITH big AS (SELECT orders.user_id AS user_id FROM orders WHERE orders.total > ?::INTEGER) "
        "SELECT big.user_id FROM big",
        "SELECT",
        "big",
    ),
    "insert": (
        sa.insert(users).values(name="x", age=3),
        "INSERT INTO app.users (name, age) VALUES (?, ?)",
        "INSERT INTO app.users (name, age) VALUES (?::VARCHAR, ?::INTEGER) RETURNING app.users.id",
        "INSERT",
        "app.users",
    ),
    "insert rows": (
        sa.insert(users).values([{"name": "a", "age": 1}, {"name": "b", "age": 2}, {"name": "c", "age": 3}]),
        "INSERT INTO app.users (name, age) VALUES (?, ?)",
        "INSERT INTO app.users (name, age) VALUES (?::VARCHAR, ?::INTEGER)",
        "INSERT",
        "app.users",
    ),
    "update": (
        sa.update(users).where(users.c.id == 1).values(name="y"),
        "UPDATE app.users SET name=? WHERE app.users.id = ?",
        "UPDATE app.users SET name=?::VARCHAR WHERE app.users.id = ?::INTEGER",
        "UPDATE",
        "app.users",
    ),
    "delete": (
        sa.delete(orders).where(orders.c.total < 0),
        "DELETE FROM orders WHERE orders.total < ?",
        "DELETE FROM orders WHERE orders.total < ?::INTEGER",
        "DELETE",
        "orders",
    ),
}


@pytest.mark.parametrize("expanded", [False, True], ids=["compiled", "expanded"])
@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("name", list(COMPILED))
def test_sqlalchemy_statements(name: str, dialect: str, expanded: bool) -> None:
    # "expanded": IN parameters rendered one per value, as the driver receives them.
    statement, sqlite_text, postgres_text, operation, collection = COMPILED[name]
    compiled = statement.compile(dialect=DIALECTS[dialect](), compile_kwargs={"render_postcompile": expanded})
    expected = Fingerprint(sqlite_text if dialect == "sqlite" else postgres_text, operation, collection)
    assert fingerprint(str(compiled)) == expected


def test_executed_statements_share_fingerprints() -> None:
    """Statements as SQLite receives them: IN-lists of any length, batched multi-row inserts."""
    # No compiled cache: under coverage with a dotted --cov source (--cov=slipstream.sqlalchemy.fingerprint),
    # SQLAlchemy 2.1's compiled cache-key code raises "TypeError: 'InternalTraversal' object is not callable".
    engine = sa.create_engine("sqlite://", query_cache_size=0)
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text))
    with engine.begin() as connection:
        table.create(connection)
        seen.clear()
        for count in (2, 7):
            rows = [{"v": f"value {n}"} for n in range(count)]
            connection.execute(sa.insert(table).returning(table.c.id), rows)
            connection.execute(sa.select(table.c.v).where(table.c.id.in_(range(count))))
    engine.dispose()
    assert len(seen) == 4 and len(set(seen)) == 4
    assert {fingerprint(statement).text for statement in seen} == {
        "INSERT INTO t (v) VALUES (?) RETURNING id",
        "SELECT t.v FROM t WHERE t.id IN (?)",
    }


def test_long_texts_are_cut() -> None:
    statement = "SELECT " + ", ".join(f"column_{n}" for n in range(1000)) + " FROM wide WHERE a = 'x'"
    result = fingerprint(statement)
    assert len(result.text) == MAX_TEXT_LENGTH
    assert result.text == statement[: MAX_TEXT_LENGTH - 3] + "..."
    assert (result.operation, result.collection) == ("SELECT", "wide")


def test_huge_statements_are_read_in_part() -> None:
    # A 1 MB statement: only its start is read, and the text says it was cut even though it is short.
    statement = "INSERT INTO t (a) VALUES " + ", ".join(["('secret')"] * 100_000)
    result = fingerprint(statement)
    assert result.text.startswith("INSERT INTO t (a) VALUES (?), ") and result.text.endswith("...")
    assert "secret" not in result.text
    assert (result.operation, result.collection) == ("INSERT", "t")


def test_stand_in_characters_in_the_input_are_blanked() -> None:
    assert fingerprint("select\x00a\x01from t where b = E'x'").text == "select a from t where b = ?"


def test_memoised_and_bounded() -> None:
    statement = "SELECT * FROM memo WHERE a = 1"
    first = fingerprint(statement)
    assert fingerprint(statement) is first
    for n in range(4096):
        fingerprint(f"SELECT * FROM memo WHERE a{n} = 1")
    assert fingerprint(statement) is not first
    assert fingerprint(statement) == first
    long = "SELECT * FROM memo WHERE a = 1" + " " * 5000
    assert fingerprint(long) is not fingerprint(long)
    assert fingerprint(long) == first


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM t WHERE a = 1 AND b IN (1, 2) AND c = -3",
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')",
        "SELECT a::text FROM t WHERE b = $1 AND c = ANY(ARRAY[1, 2])",
        'select "it\'s" from t -- comment',
    ],
    ids=["select", "insert", "postgres", "quoted"],
)
def test_fingerprints_are_fixed_points(statement: str) -> None:
    text = fingerprint(statement).text
    assert fingerprint(text).text == text


# Values carry a marker ("zq", or digits: the template has none) that must not reach the fingerprint.
marked_text = st.text().map(lambda value: "zq" + value)
numbers = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers().map(lambda n: f"{'-' if n < 0 else ''}0x{abs(n):x}"),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
strings = st.one_of(
    marked_text.map(lambda value: "'" + value.replace("'", "''") + "'"),
    marked_text.map(lambda value: "E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"),
    marked_text.map(lambda value: "N'" + value.replace("'", "''") + "'"),
    marked_text.map(lambda value: "$$" + value.replace("$", "") + "$$"),
    marked_text.map(lambda value: "$zq$" + value.replace("$", "") + "$zq$"),
    st.binary().map(lambda value: "X'" + value.hex() + "'"),
)
literals = st.one_of(numbers, strings)
TEMPLATE = (
    "SELECT name, email FROM users /* {comment} */ WHERE name = {0} AND age > {1} AND tag IN ({2}) -- {line}\n"
    "AND note <> {3} ORDER BY name"
)
BASELINE = fingerprint(TEMPLATE.format("0", "0", "0", "0", comment="", line=""))


@settings(max_examples=300, deadline=None)
@given(
    values=st.tuples(literals, literals, st.lists(literals, min_size=1, max_size=6), literals),
    comment=marked_text.map(lambda value: value.replace("*/", "")),
    line=marked_text.map(lambda value: value.replace("\n", "")),
)
def test_values_never_reach_the_fingerprint(values: tuple[str, str, list[str], str], comment: str, line: str) -> None:
    first, second, listed, last = values
    statement = TEMPLATE.format(first, second, ", ".join(listed), last, comment=comment, line=line)
    result = fingerprint(statement)
    assert "zq" not in result.text.lower()
    assert not any(character.isdigit() for character in result.text)
    assert result == BASELINE


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(literals, literals), min_size=1, max_size=5))
def test_inserted_rows_never_reach_the_fingerprint(rows: list[tuple[str, str]]) -> None:
    statement = "INSERT INTO users (name, age) VALUES " + ", ".join(f"({a}, {b})" for a, b in rows)
    assert fingerprint(statement) == Fingerprint("INSERT INTO users (name, age) VALUES (?, ?)", "INSERT", "users")


OPERATIONS = {
    *"SELECT INSERT UPDATE DELETE MERGE REPLACE UPSERT WITH VALUES TABLE CREATE ALTER DROP TRUNCATE RENAME".split(),
    *"COMMENT GRANT REVOKE BEGIN START COMMIT END ROLLBACK SAVEPOINT RELEASE SET RESET SHOW EXPLAIN".split(),
    *"DESCRIBE PRAGMA CALL DO EXEC EXECUTE PREPARE DEALLOCATE COPY LOCK UNLOCK ANALYZE VACUUM REINDEX".split(),
    *"CLUSTER REFRESH LISTEN NOTIFY UNLISTEN DECLARE FETCH MOVE CLOSE DISCARD CHECKPOINT ATTACH DETACH".split(),
    *"USE OTHER".split(),
}
sql_like = st.lists(
    st.sampled_from(
        [
            "SELECT",
            "select",
            "FROM",
            "from",
            "WITH",
            "INSERT",
            "INTO",
            "UPDATE",
            "DELETE",
            "VALUES",
            "IN",
            "ARRAY",
            "DISTINCT",
            "only",
            "t",
            "users",
            "x.y",
            "(",
            ")",
            "[",
            "]",
            ",",
            " ",
            "\n",
            "'",
            "''",
            '"',
            "`",
            "$",
            "$$",
            "$a$",
            "E'",
            "U&'",
            "N",
            "\\",
            "--",
            "/*",
            "*/",
            "?",
            "?1",
            ":",
            "::",
            ":x",
            "%",
            "%%",
            "%s",
            "%(a)s",
            "__[POSTCOMPILE_a]",
            "0x",
            "1",
            ".5",
            "1e",
            "-",
            "+",
            "=",
            "NULL",
            "é",
            "ß",
            "\x00",
            "\x01",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), sql_like))
def test_any_text_gets_a_fingerprint(statement: str) -> None:
    result = fingerprint(statement)
    assert len(result.text) <= MAX_TEXT_LENGTH
    assert result.text == " ".join(result.text.split())
    assert "\x00" not in result.text and "\x01" not in result.text
    assert result.operation in OPERATIONS
    assert result.collection is None or isinstance(result.collection, str)
