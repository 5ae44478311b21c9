"""Statement fingerprints: one normalised text per query shape, with no parameter or literal values in it.

``fingerprint()`` turns ``SELECT * FROM users WHERE id = 42 AND name IN ('a', 'b')`` into
``SELECT * FROM users WHERE id = ? AND name IN (?)``: literals and bind parameters of every DBAPI paramstyle
become ``?``, IN-lists and multi-row VALUES collapse to one item, comments go and whitespace folds. Values
may be personal data, so none of them may survive into the text, which ends up in logs and metric labels.

Where dialects disagree, the rules follow PostgreSQL and SQLite, and lean towards removing too much:

- ``TRUE``, ``FALSE`` and ``NULL`` stay as keywords: they carry no personal data and ``IS NULL`` is shape.
- In strings ``''`` escapes a quote and a backslash is an ordinary character, except in ``E'...'``. An
  unterminated string, dollar-quoted string or block comment runs to the end: what follows it is dropped.
- Double-quoted and backtick-quoted names are identifiers, kept as written; a quote mark that is never
  closed is an ordinary character. (MySQL reads ``"..."`` as a string unless ANSI_QUOTES is set, and ``\\'``
  as an escaped quote; SQLAlchemy writes neither.) Block comments do not nest; ``#`` is not a comment.
- A sign directly in front of a value goes when it follows an operator, ``(``, ``,``, ``[`` or a keyword
  such as ``THEN``: ``x = -1`` and ``x = 1`` are one fingerprint, while ``a - 1`` keeps its minus.
- IN-lists and ``ARRAY[...]`` of values (``?``, ``NULL``, ``TRUE``, ``FALSE``, ``DEFAULT``, with or without a
  ``::type`` cast) become ``IN (?)`` and ``ARRAY[?]``; a list of rows (multi-row VALUES, tuple IN) keeps the
  first row. Identifiers, keywords and spacing otherwise stay as written, whitespace runs folded to one space.
- At most 64 KiB of a statement is read, and the text is cut to ``MAX_TEXT_LENGTH`` characters ending "...".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["MAX_TEXT_LENGTH", "Fingerprint", "fingerprint"]

MAX_TEXT_LENGTH = 2048
_TRUNCATED = "..."
# Past this the rest is not read: normalising megabytes of inline data on every execution would take
# milliseconds, and the text is cut to MAX_TEXT_LENGTH anyway.
_MAX_SCANNED = 65_536
# Longer statements are fingerprinted on each call rather than held as cache keys.
_MAX_CACHED = 4096
_CACHE_SIZE = 4096
# FROM (SELECT ... FROM (SELECT ...)): how many nested subqueries to follow in search of the main table.
_MAX_NESTING = 8

# Stand-ins the tokenizer writes for a value whose first one or two characters were already copied to the
# output by the time it was recognised (E'...', U&'...', __[POSTCOMPILE_x], .5); _drop_prefixes swaps the
# prefix and stand-in for "?".
_DROP_ONE, _DROP_TWO = "\x00", "\x01"
_KEEP = None
# One pass over the statement: each kind of token with what replaces it (_KEEP: itself). Every alternative
# starts with one literal character, so the regex engine skips everything else (words, spaces, operators)
# in C; lookbehinds placed after that character keep a match from starting inside a word (t1, a$1, x'').
_DIGIT_TAIL = r"[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?"
_TOKEN_KINDS: list[tuple[str, str | None]] = [
    (r'"(?:[^"]|"")*"', _KEEP),  # quoted identifier
    (r"`(?:[^`]|``)*`", _KEEP),  # MySQL quoted identifier
    (r"%%", _KEEP),  # an escaped % in the format and pyformat paramstyles
    (r"--[^\n]*", " "),
    (r"/\*(?:.*?\*/|.*)", " "),
    (r"\$(?<![\w$]\$)(?P<tag>(?:[^\W\d]\w*)?)\$(?:.*?\$(?P=tag)\$|.*)", "?"),  # $$...$$, $tag$...$tag$
    (r"\$(?<![\w$]\$)\d+", "?"),  # $1: asyncpg, PostgreSQL
    (r"'(?<=[Ee]')(?<![\w$][Ee]')(?:[^'\\]|\\.|'')*'?", _DROP_ONE),  # E'...', backslash escapes
    (r"'(?<=[Uu]&')(?<![\w$][Uu]&')(?:[^']|'')*'?", _DROP_TWO),  # U&'...'
    (r"'(?<=[NnBbXx]')(?<![\w$][NnBbXx]')(?:[^']|'')*'?", _DROP_ONE),  # N'...', B'0101', X'1F'
    (r"'(?:[^']|'')*'?", "?"),
    (r"\?\d+", "?"),  # ?1: SQLite
    (r"%\([^()'\"\s]*\)[sbt]", "?"),  # %(name)s: psycopg, psycopg2 (psycopg also has %b, %t)
    (r"%[sbt]", "?"),
    (r":(?<![\w:]:)(?:[^\W\d][\w$]*|\d+)", "?"),  # :name, :1 - but not ::type or a[1:2]
    (r"\[(?<=__\[)POSTCOMPILE_[^\]]*\]", _DROP_TWO),  # SQLAlchemy's expanding (IN) parameters
    (r"0(?<![\w$]0)(?:[xX][0-9A-Fa-f_]+|[oO][0-7_]+|[bB][01_]+)", "?"),
    # A number after a dot: .5 (the dot goes too), or t.5 (a name, and then a number nonetheless).
    *[(rf"{digit}(?<=\.{digit})(?<![\w$]\.{digit}){_DIGIT_TAIL}", _DROP_ONE) for digit in "0123456789"],
    *[(rf"{digit}(?<![\w$]{digit}){_DIGIT_TAIL}", "?") for digit in "0123456789"],
]


def _compile_tokens() -> tuple[re.Pattern[str], list[str | None]]:
    # An alternative replaced by anything but "?" ends in an empty group: a match's lastindex tells which.
    alternatives: list[str] = []
    replacements: list[str | None] = ["?"]
    for regex, replacement in _TOKEN_KINDS:
        replacements += ["?"] * re.compile(regex).groups
        if replacement != "?":
            regex += "()"
            replacements.append(replacement)
        alternatives.append(regex)
    return re.compile("|".join(alternatives), re.DOTALL), replacements


_TOKENS, _REPLACEMENTS = _compile_tokens()

_SIGNED = re.compile(r"[-+]\?")
_SIGN_OPERATORS = frozenset("-=<>(,[*/%+|&^~!")
_SIGN_KEYWORDS = frozenset("SELECT WHERE AND OR NOT THEN ELSE WHEN BETWEEN LIMIT OFFSET RETURN HAVING CASE".split())
_TRAILING_WORD = re.compile(r"[\w$]+\Z")


def _after(*contexts: str) -> str:
    return "(?:" + "|".join(f"(?<={context})" for context in contexts) + ")"


# Values as the normalised text shows them: ?, a keyword value, maybe cast (?::NUMERIC(?, ?)[]).
_TYPE = r"[\w$.\"]+(?: [\w$\"]+)*(?: ?\(\?(?: ?, ?\?)*\))?(?:\[\])*"
_VALUE = rf"(?:\?|(?i:null|true|false|default))(?: ?:: ?{_TYPE})?"
_VALUES = rf" ?{_VALUE}(?: ?, ?{_VALUE})* ?"
_ROW = rf"\({_VALUES}\)"
# Each starts at its "(" or "[" (a literal, found fast) and looks back for its keyword.
_IN, _VALUES_KEYWORD, _ARRAY_KEYWORD = r"\b(?i:in)", r"\b(?i:values)", r"\b(?i:array)"
_AFTER_VALUES_OR_IN = _after(
    rf"{_VALUES_KEYWORD}\(", rf"{_VALUES_KEYWORD} \(", rf"{_IN}\(\(", rf"{_IN} \(\(", rf"{_IN}\( \(", rf"{_IN} \( \("
)
_AFTER_IN = _after(rf"{_IN}\(", rf"{_IN} \(")
_AFTER_ARRAY = _after(rf"{_ARRAY_KEYWORD}\[", rf"{_ARRAY_KEYWORD} \[")
_ROWS = re.compile(rf"\({_AFTER_VALUES_OR_IN}({_VALUES}\))(?: ?, ?{_ROW})+")
_IN_LIST = re.compile(rf"\({_AFTER_IN}{_VALUES}\)")
_ARRAY = re.compile(rf"\[{_AFTER_ARRAY}{_VALUES}\]")

_OPERATIONS = frozenset(
    """
    SELECT INSERT UPDATE DELETE MERGE REPLACE UPSERT WITH VALUES TABLE CREATE ALTER DROP TRUNCATE RENAME COMMENT
    GRANT REVOKE BEGIN START COMMIT END ROLLBACK SAVEPOINT RELEASE SET RESET SHOW EXPLAIN DESCRIBE PRAGMA CALL DO
    EXEC EXECUTE PREPARE DEALLOCATE COPY LOCK UNLOCK ANALYZE VACUUM REINDEX CLUSTER REFRESH LISTEN NOTIFY UNLISTEN
    DECLARE FETCH MOVE CLOSE DISCARD CHECKPOINT ATTACH DETACH USE
    """.split()
)
_LEADING_WORD = re.compile(r"[( ]*([^\W\d]\w*)")


def _keywords(*words: str) -> re.Pattern[str]:
    """Whole ``words`` in upper-cased text. "IS DISTINCT FROM" is an operator, not a FROM clause."""
    return re.compile("|".join(rf"{word}(?<![\w$.\"`]{word})(?<!DISTINCT {word})(?![\w$\"`])" for word in words))


_MAIN_VERB = _keywords("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE")
_FROM = _keywords("FROM")
_INTO = _keywords("INTO")
_SUBQUERY = re.compile(r"(?: ?\()+ ?select(?![\w$])", re.IGNORECASE)
_PART = r"\"(?:[^\"]|\"\")+\"|`(?:[^`]|``)+`|\[[^\]]+\]|[^\W\d][\w$]*"
_NAME = rf"((?:{_PART})(?: ?\. ?(?:{_PART}))*)"
# FROM generate_series(...) names a function, not a table: the last group sees its parenthesis.
_FROM_TARGET = re.compile(rf" ?(?:only )?{_NAME}( ?\()?", re.IGNORECASE)
_INTO_TARGET = re.compile(rf" ?{_NAME}")
_UPDATE_TARGET = re.compile(
    rf" ?(?:(?:only|low_priority|ignore|or (?:rollback|abort|replace|fail|ignore)) )*{_NAME}", re.IGNORECASE
)
_PARTS = re.compile(_PART)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A statement's shape. ``text``: normalised and value-free; ``operation``: the upper-case verb (the
    main one under WITH), "OTHER" when not a known SQL verb; ``collection``: the main table, unquoted and
    schema-qualified as written, or None."""

    text: str
    operation: str
    collection: str | None


def fingerprint(statement: str) -> Fingerprint:
    """The fingerprint of ``statement``, memoised for statements up to 4096 characters."""
    if len(statement) <= _MAX_CACHED:
        return _cached_fingerprint(statement)
    return _fingerprint(statement)


def _fingerprint(statement: str) -> Fingerprint:
    cut = len(statement) > _MAX_SCANNED
    if cut:
        statement = statement[:_MAX_SCANNED]
    if _DROP_ONE in statement or _DROP_TWO in statement:
        statement = statement.replace(_DROP_ONE, " ").replace(_DROP_TWO, " ")
    text = _drop_prefixes(_TOKENS.sub(_replace_token, statement))
    text = _collapse_values(" ".join(text.split()))
    operation, collection = _describe(text)
    if cut or len(text) > MAX_TEXT_LENGTH:
        text = text[: MAX_TEXT_LENGTH - len(_TRUNCATED)] + _TRUNCATED
    return Fingerprint(text, operation, collection)


_cached_fingerprint = lru_cache(maxsize=_CACHE_SIZE)(_fingerprint)


def _replace_token(match: re.Match[str]) -> str:
    replacement = _REPLACEMENTS[match.lastindex or 0]
    return match.group() if replacement is None else replacement


def _drop_prefixes(text: str) -> str:
    for stand_in, width in ((_DROP_ONE, 1), (_DROP_TWO, 2)):
        if stand_in in text:
            pieces = text.split(stand_in)
            text = "?".join([piece[:-width] for piece in pieces[:-1]] + [pieces[-1]])
    return text


def _collapse_values(text: str) -> str:
    """Drop unary signs, then collapse lists of values to one item."""
    if "-?" in text or "+?" in text:
        text = _SIGNED.sub(_drop_unary_sign, text)
    if "(" in text:
        text = _ROWS.sub(lambda rows: "(" + rows.group(1), text)
        text = _IN_LIST.sub("(?)", text)
    if "[" in text:
        text = _ARRAY.sub("[?]", text)
    return text


def _drop_unary_sign(match: re.Match[str]) -> str:
    text, end = match.string, match.start()
    if end and text[end - 1] == " ":
        end -= 1
    if end and text[end - 1] in _SIGN_OPERATORS:
        return "?"
    # The longest keyword has seven letters: a word filling all eight characters looked at is another word.
    word = _TRAILING_WORD.search(text, max(0, end - 8), end)
    return "?" if word and word.group().upper() in _SIGN_KEYWORDS else match.group()


def _describe(text: str) -> tuple[str, str | None]:
    """The operation and main table of a normalised statement."""
    leading = _LEADING_WORD.match(text)
    if leading is None:
        return "OTHER", None
    operation = leading.group(1).upper()
    position = leading.end()
    # Keywords are looked for in an upper-cased copy, names taken from the text: the two must line up.
    upper = text.upper()
    if len(upper) != len(text):
        upper = text.encode("ascii", "replace").decode("ascii").upper()
    if operation == "WITH":
        main = _find_top_level(upper, position, _MAIN_VERB)
        if main is None:
            return "WITH", None
        operation, position = main.group(), main.end()
    if operation not in _OPERATIONS:
        return "OTHER", None
    return operation, _collection(text, upper, operation, position)


def _collection(text: str, upper: str, operation: str, position: int) -> str | None:
    if operation == "UPDATE":
        target = _UPDATE_TARGET.match(text, position)
        return _unquote(target.group(1)) if target else None
    if operation in ("INSERT", "REPLACE", "MERGE"):
        into = _find_top_level(upper, position, _INTO)
        target = _INTO_TARGET.match(text, into.end()) if into else None
        return _unquote(target.group(1)) if target else None
    if operation not in ("SELECT", "DELETE"):
        return None
    # SQLAlchemy wraps statements in subqueries (FROM (SELECT ... FROM users) AS anon_1): follow them inwards.
    for _ in range(_MAX_NESTING):
        source = _find_top_level(upper, position, _FROM)
        if source is None:
            return None
        subquery = _SUBQUERY.match(text, source.end())
        if subquery is None:
            target = _FROM_TARGET.match(text, source.end())
            return _unquote(target.group(1)) if target and not target.group(2) else None
        position = subquery.end()
    return None


def _find_top_level(upper: str, position: int, keyword: re.Pattern[str]) -> re.Match[str] | None:
    """The first ``keyword`` after ``position`` outside parentheses, before the one closing around it."""
    depth, counted = 0, position
    for found in keyword.finditer(upper, position):
        start = found.start()
        depth += upper.count("(", counted, start) - upper.count(")", counted, start)
        counted = start
        if depth < 0:
            return None
        if depth == 0:
            return found
    return None


def _unquote(name: str) -> str:
    parts = []
    for part in _PARTS.findall(name):
        if part[0] in '"`':
            part = part[1:-1].replace(part[0] * 2, part[0])
        elif part[0] == "[":
            part = part[1:-1]
        parts.append(part)
    return ".".join(parts)
