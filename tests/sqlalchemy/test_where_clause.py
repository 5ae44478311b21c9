"""The WHERE-clause lexer: the columns a statement compares, and the tables (with their schemas) it reads."""

from __future__ import annotations

import pytest

from slipstream.sqlalchemy.where_clause import StatementTable, sql_tokens, statement_tables, where_columns

JOIN = (
    'SELECT u.id FROM "users" AS u JOIN orders o ON o.user_id = u.id '
    "WHERE u.email = ? AND o.total > ? AND lower(u.name) = ? ORDER BY o.total"
)


@pytest.mark.parametrize(
    ("statement", "table", "columns"),
    [
        ("SELECT users.id FROM users WHERE users.email = ?", "users", ("email",)),
        ('SELECT "users"."id" FROM "users" WHERE "users"."email" = ?', "users", ("email",)),
        ("SELECT id FROM main.users WHERE email = :email", "users", ("email",)),
        ("SELECT id FROM users WHERE name = %(name_1)s AND email = %(email_1)s", "users", ("name", "email")),
        ("SELECT id FROM users WHERE email = $1", "users", ("email",)),
        ("SELECT id FROM users WHERE id > ? AND id < ? AND email <> ? AND name != ?", "users", ("id", "email", "name")),
        ("SELECT id FROM users WHERE id >= 1 OR id <= 5", "users", ("id",)),
        ("SELECT id FROM users WHERE email LIKE ? AND name NOT LIKE ?", "users", ("email", "name")),
        ("SELECT id FROM users WHERE email IN (?, ?) AND name NOT IN (?)", "users", ("email", "name")),
        ("SELECT id FROM users WHERE email IS NULL AND name IS NOT NULL", "users", ("email", "name")),
        ("SELECT id FROM users WHERE id BETWEEN ? AND ? AND name GLOB ?", "users", ("id", "name")),
        ("SELECT id FROM users WHERE NOT (email = ?)", "users", ("email",)),
        ("SELECT id FROM users WHERE (email) = ?", "users", ("email",)),
        ("SELECT id FROM users WHERE email::text = ?", "users", ("email",)),
        ("SELECT id FROM users WHERE 'x'::text = email", "users", ()),
        ("SELECT id FROM users WHERE ? = email", "users", ()),
        ("SELECT id FROM users WHERE lower(email) = ?", "users", ()),
        ("SELECT id FROM users WHERE main.users.email = ?", "users", ()),
        ("SELECT id FROM users WHERE email = 'a = b' AND name = ?", "users", ("email", "name")),
        ("SELECT id FROM users WHERE email = ? GROUP BY name HAVING name = ?", "users", ("email",)),
        ("SELECT id FROM users WHERE email = ? LIMIT 1", "users", ("email",)),
        ("SELECT id FROM users ORDER BY email", "users", ()),
        ("SELECT id FROM users", "users", ()),
        (JOIN, "u", ("email",)),
        (JOIN, "users", ("email",)),
        (JOIN, "o", ("total",)),
        (JOIN, "orders", ("total",)),
        ("SELECT * FROM users, orders WHERE users.email = ? AND total > ?", "users", ("email",)),
        ("SELECT * FROM users, orders WHERE users.email = ? AND total > ?", "orders", ()),
        ("SELECT * FROM users LEFT OUTER JOIN orders ON orders.user_id = users.id WHERE email = ?", "users", ()),
        ("SELECT * FROM users WHERE id IN (SELECT user_id FROM orders o WHERE o.total > ?)", "orders", ("total",)),
        ("SELECT * FROM (SELECT * FROM users) AS sub WHERE sub.email = ?", "users", ()),
        ("WITH c AS (SELECT * FROM users) SELECT * FROM c WHERE email = ?", "users", ("email",)),
        ("SELECT id FROM users WHERE email = ?", "orders", ()),
    ],
)
def test_where_columns(statement: str, table: str, columns: tuple[str, ...]) -> None:
    assert where_columns(statement, table) == columns


@pytest.mark.parametrize(
    ("statement", "tables"),
    [
        ("SELECT id FROM users WHERE email = ?", {"users": StatementTable("users")}),
        (
            "SELECT id FROM main.users AS u",
            {"users": StatementTable("users", "main"), "u": StatementTable("users", "main")},
        ),
        (
            'SELECT * FROM "Other"."User" JOIN db.s.orders o ON o.user_id = "User".id',
            {
                "user": StatementTable("User", "Other"),
                "orders": StatementTable("orders", "s"),
                "o": StatementTable("orders", "s"),
            },
        ),
        ("WITH c AS (SELECT * FROM s.users) SELECT * FROM c", {"users": StatementTable("users", "s")}),
    ],
)
def test_statement_tables_keep_the_schema(statement: str, tables: dict[str, StatementTable]) -> None:
    assert statement_tables(sql_tokens(statement)) == tables
