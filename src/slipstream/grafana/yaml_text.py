"""A YAML writer for the plain data of rule, test and provisioning files: mappings, lists, strings and numbers.

The core install has no YAML library and rendering must not need one. Output is block style; multi-line strings
(PromQL expressions, descriptions) become literal blocks, so the committed rules read like hand-written ones.
Strings that a YAML reader could take for something else are double-quoted with JSON's escapes, which YAML shares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["Data", "dump_yaml"]

Data = Mapping[str, "Data"] | Sequence["Data"] | str | int | float | bool

# Plain scalars that read back as the same string: no leading indicator, no ": " or " #", no trailing space.
_PLAIN = re.compile(r"[A-Za-z_./$][A-Za-z0-9_./$@+\-=~\[\]{}()<>*%,!| ]*(?<![ :])")
# Durations (5m, 1h30m) read back as strings; anything else that starts like a number is quoted.
_DURATION = re.compile(r"([0-9]+(ms|[smhdwy]))+")
_NOT_STRINGS = re.compile(r"(?i)(true|false|yes|no|on|off|null|y|n|~)|[-+]?(\.?[0-9].*|\.inf|\.nan)")


def dump_yaml(data: Mapping[str, Data]) -> str:
    """``data`` as a YAML document ending in a newline."""
    return "\n".join(_mapping(data, 0)) + "\n"


def _scalar(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    plain = _DURATION.fullmatch(value) or (_PLAIN.fullmatch(value) and not _NOT_STRINGS.fullmatch(value))
    if plain and ": " not in value and " #" not in value:
        return value
    # Single quotes keep PromQL's double quotes readable; they escape nothing, so only printable text goes in them.
    if "'" not in value and all(char.isprintable() and char not in _BREAKS for char in value):
        return f"'{value}'"
    return _quoted(value)


def _float(value: float) -> str:
    """A float YAML 1.1 reads as one: ``.inf``, and a mantissa with a dot (``1.0e+20``, not ``1e+20``)."""
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if exponent and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


# Characters YAML reads as line breaks or a byte order mark, which a double-quoted scalar must escape.
_BREAKS = {"\x85", "\u2028", "\u2029", "\ufeff"}


def _quoted(value: str) -> str:
    """A double-quoted scalar: printable characters as they are, the rest as YAML escapes (\\U for astral ones)."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable() and char not in _BREAKS:
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _fits_block(value: str) -> bool:
    """Whether a literal block gives ``value`` back: several lines of printable text, not starting with a space or a
    line break, no line of spaces only (a block reads those as empty)."""
    lines = value.split("\n")
    return (
        len(lines) > 1
        and value.strip("\n") != ""
        and not value.startswith((" ", "\n"))
        and all(char.isprintable() and char not in _BREAKS for line in lines for char in line)
        and not any(line and not line.strip(" ") for line in lines)
    )


def _block(value: str, indent: int) -> list[str]:
    """A literal block: ``|-`` strips the final line break, ``|`` keeps one, ``|+`` keeps them all."""
    pad = " " * indent
    body = value.rstrip("\n")
    trailing = len(value) - len(body)
    chomp = "|-" if trailing == 0 else "|" if trailing == 1 else "|+"
    lines = body.split("\n") + [""] * (trailing - 1 if trailing > 1 else 0)
    return [chomp, *(pad + line if line else "" for line in lines)]


def _value(key: str, value: Data, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, str) and _fits_block(value):
        header, *body = _block(value, indent + 2)
        return [f"{pad}{key}: {header}", *body]
    if isinstance(value, Mapping):
        return [f"{pad}{key}: {{}}"] if not value else [f"{pad}{key}:", *_mapping(value, indent + 2)]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [f"{pad}{key}: []"] if not value else [f"{pad}{key}:", *_sequence(value, indent)]
    return [f"{pad}{key}: {_scalar(value)}"]


def _mapping(data: Mapping[str, Data], indent: int) -> list[str]:
    lines: list[str] = []
    for key, value in data.items():
        lines.extend(_value(_scalar(key), value, indent))
    return lines


def _sequence(items: Sequence[Data], indent: int) -> list[str]:
    """Items at ``indent`` (a list under a key is not indented further, as kubectl and promtool write them)."""
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, Mapping) and item:
            inner = _mapping(item, indent + 2)
            lines.append(f"{pad}- {inner[0][indent + 2 :]}")
            lines.extend(inner[1:])
        elif isinstance(item, str) and _fits_block(item):
            header, *body = _block(item, indent + 2)
            lines.extend([f"{pad}- {header}", *body])
        elif isinstance(item, (Mapping, list, tuple)):
            raise ValueError(f"cannot write a nested empty mapping or a list in a list: {item!r}")
        else:
            lines.append(f"{pad}- {_scalar(item)}")  # type: ignore[arg-type]
    return lines
