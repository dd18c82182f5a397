#!/usr/bin/env python3
"""Writes the C++ of make_schema() from src/config/schema.toml.

    gen_schema.py SCHEMA_TOML OUTPUT_INC

The output is included by config_schema.cpp inside its anonymous namespace
(src/config/meson.build runs this at build time). Bounds written in human
units become the numbers the engine compares with: durations in
milliseconds, sizes in bytes, file modes from octal. Any problem in the file
(an unknown or missing field, a field of the wrong type, a bad unit) stops
the build with FILE: table "T", key "K": what is wrong.

Python 3.11 standard library only (tomllib).
"""

import os
import re
import sys
import tomllib

# The kinds of schema.hpp's enum class Kind, each with the TOML type its
# default is written in, and how its min/max are written: "int" (a TOML
# integer), "duration", "size" or "mode" (a string in those units), or None
# (the kind takes no bounds).
KINDS = {
    "String": ((str,), "int"),
    "Path": ((str,), "int"),
    "Integer": ((int,), "int"),
    "Boolean": ((bool,), None),
    "Duration": ((str,), "duration"),
    "Size": ((str, int), "size"),
    "FileMode": ((str,), "mode"),
    "Enum": ((str,), None),
    "StringList": ((list,), None),
}
# Kinds whose min may be left out (then 0); the other bounded kinds need both.
MIN_OPTIONAL = {"String", "Path"}

TABLE_FIELDS = {"name", "array", "struct", "field", "doc", "key"}
TABLE_REQUIRED = {"name", "struct", "field", "doc", "key"}
KEY_FIELDS = {"name", "kind", "default", "min", "max", "choices", "doc", "member", "required", "restart"}
KEY_REQUIRED = {"name", "kind", "doc"}

DURATION_UNITS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
                  "d": 86400 * 10**9}
SIZE_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "KB": 10**3, "MB": 10**6,
              "GB": 10**9}
INT64 = (-(1 << 63), (1 << 63) - 1)

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*")
KEY_NAME = re.compile(r"[a-z_][a-z0-9_]*")
MEMBER_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class SchemaError(Exception):
    pass


class Where:
    """Names the place a problem is in: the file, the table, the key."""

    def __init__(self, path, table=None, key=None):
        self.path, self.table, self.key = path, table, key

    def fail(self, message):
        place = self.path
        if self.table is not None:
            place += f': table "{self.table}"'
        if self.key is not None:
            place += f', key "{self.key}"'
        raise SchemaError(f"{place}: {message}")

    def field(self, obj, name, types, default=None):
        """obj[name], checked to be one of `types`; `default` when absent."""
        if name not in obj:
            return default
        value = obj[name]
        # bool is an int in Python; a TOML integer field must not take true/false.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wanted = " or ".join(TOML_TYPE_NAMES[t] for t in types)
            self.fail(f'field "{name}" must be {wanted}, not {value!r}')
        return value

    def check_fields(self, obj, allowed, required, what):
        for name in obj:
            if name not in allowed:
                self.fail(f'unknown field "{name}" (a {what} has: {", ".join(sorted(allowed))})')
        for name in sorted(required):
            if name not in obj:
                self.fail(f'missing field "{name}"')


TOML_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "an array", dict: "a table"}


def duration_ms(where, name, text):
    """ "1h30m", "250ms" -> milliseconds (the grammar of chitty::parse_duration)."""
    groups = re.findall(r"(\d+)([^\d]*)", text)
    if not text or "".join(n + u for n, u in groups) != text:
        where.fail(f'{name}: "{text}" is not a duration (a number and a unit, e.g. "250ms", "5m", "1h30m")')
    total = 0
    for number, unit in groups:
        if unit not in DURATION_UNITS:
            where.fail(f'{name}: "{text}": unknown duration unit "{unit}" (units: {", ".join(DURATION_UNITS)})')
        total += int(number) * DURATION_UNITS[unit]
    if total % DURATION_UNITS["ms"]:
        where.fail(f'{name}: "{text}" is not a whole number of milliseconds')
    return total // DURATION_UNITS["ms"]


def size_bytes(where, name, text, unit_required):
    """ "64KiB" -> bytes (the grammar of chitty::parse_size)."""
    m = re.fullmatch(r"(\d+)(.*)", text)
    if not m or (unit_required and not m.group(2)):
        where.fail(f'{name}: "{text}" is not a size (a number and a unit, e.g. "512B", "64KiB", "8MiB")')
    if m.group(2) and m.group(2) not in SIZE_UNITS:
        where.fail(f'{name}: "{text}": unknown size unit "{m.group(2)}" (units: {", ".join(SIZE_UNITS)})')
    return int(m.group(1)) * SIZE_UNITS.get(m.group(2) or "B")


def file_mode(where, name, text):
    if not re.fullmatch(r"[0-7]{1,4}", text):
        where.fail(f'{name}: "{text}" is not an octal file mode (e.g. "0660")')
    return int(text, 8)


def bound(where, name, value, unit):
    """A min or max as the number the engine compares with."""
    if unit == "int":
        number = where.field({name: value}, name, (int,))
    else:
        where.field({name: value}, name, (str,))
        if unit == "duration":
            number = duration_ms(where, name, value)
        elif unit == "size":
            number = size_bytes(where, name, value, unit_required=True)
        else:
            number = file_mode(where, name, value)
    if not INT64[0] <= number <= INT64[1]:
        where.fail(f"{name}: {value!r} does not fit in 64 bits")
    return number


def default_number(where, kind, value):
    """The default of a bounded kind as a number, to check it against the bounds."""
    if kind == "Duration":
        return duration_ms(where, "default", value)
    if kind == "Size":
        return value if isinstance(value, int) else size_bytes(where, "default", value, unit_required=False)
    if kind == "FileMode":
        return file_mode(where, "default", value)
    if kind == "Integer":
        return value
    return None


def toml_literal(value):
    """A default written back as the TOML literal Key::default_toml holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    return '"' + "".join(escapes.get(c, c if c >= " " and c != "\x7f" else f"\\u{ord(c):04X}") for c in value) + '"'


def cpp_string(text):
    """A C++ string literal (UTF-8 passes through, as in the hand-written sources)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}
    return '"' + "".join(escapes.get(c, c if c >= " " and c != "\x7f" else f"\\{ord(c):03o}") for c in text) + '"'


def read_key(where, key):
    """One [[table.key]] -> the fields of its C++ Key."""
    where.check_fields(key, KEY_FIELDS, KEY_REQUIRED, "key")
    name = where.field(key, "name", (str,))
    if not KEY_NAME.fullmatch(name):
        where.fail(f'"{name}" is not a key name (lower case letters, digits, "_")')
    kind = where.field(key, "kind", (str,))
    if kind not in KINDS:
        where.fail(f'unknown kind "{kind}" (kinds: {", ".join(KINDS)})')
    default_types, unit = KINDS[kind]
    required = where.field(key, "required", (bool,), False)
    default = where.field(key, "default", default_types)
    if required and default is not None:
        where.fail('a required key has no default: drop "default" or "required"')
    if kind == "StringList" and default is not None and not all(isinstance(v, str) for v in default):
        where.fail('field "default" must be an array of strings')

    if unit is None:
        for name_ in ("min", "max"):
            if name_ in key:
                where.fail(f'field "{name_}" does not apply to kind {kind}')
        low = high = 0
    else:
        for name_ in ("min", "max"):
            if name_ not in key and not (name_ == "min" and kind in MIN_OPTIONAL):
                where.fail(f'missing field "{name_}" (kind {kind} is bounded)')
        low = bound(where, "min", key["min"], unit) if "min" in key else 0
        high = bound(where, "max", key["max"], unit)
        if low > high:
            where.fail(f"min {key.get('min')!r} is above max {key['max']!r}")
    number = default_number(where, kind, default) if default is not None else None
    if number is not None and not low <= number <= high:
        where.fail(f"default {default!r} is outside min..max")

    choices = where.field(key, "choices", (list,))
    if kind == "Enum":
        if not choices or not all(isinstance(c, str) for c in choices) or len(set(choices)) != len(choices):
            where.fail('kind Enum needs "choices", an array of distinct strings')
        if default is not None and default not in choices:
            where.fail(f'default "{default}" is not one of the choices')
    elif choices is not None:
        where.fail(f'field "choices" does not apply to kind {kind}')

    member = where.field(key, "member", (str,), name)
    if not IDENT.fullmatch(member):
        where.fail(f'member "{member}" is not a C++ identifier')
    return {
        "name": name, "kind": kind, "default": "" if default is None else toml_literal(default),
        "min": low, "max": high, "choices": choices, "doc": where.field(key, "doc", (str,)),
        "member": member, "required": required, "restart": where.field(key, "restart", (bool,), False),
    }


def read_table(path, table):
    where = Where(path, table.get("name") if isinstance(table.get("name"), str) else None)
    where.check_fields(table, TABLE_FIELDS, TABLE_REQUIRED, "table")
    name = where.field(table, "name", (str,))
    if not TABLE_NAME.fullmatch(name):
        where.fail(f'"{name}" is not a table name (dotted lower case words)')
    struct = where.field(table, "struct", (str,))
    field = where.field(table, "field", (str,))
    if not IDENT.fullmatch(struct):
        where.fail(f'struct "{struct}" is not a C++ identifier')
    if not MEMBER_PATH.fullmatch(field):
        where.fail(f'field "{field}" is not a member path of Config ("agent", "cache.categories")')
    keys = []
    for key in where.field(table, "key", (list,)):
        if not isinstance(key, dict):
            where.fail('"key" must be an array of tables ([[table.key]])')
        key_where = Where(path, name, key.get("name") if isinstance(key.get("name"), str) else None)
        keys.append(read_key(key_where, key))
    names = [k["name"] for k in keys]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        Where(path, name, dup).fail("declared twice")
    if not keys:
        where.fail("a table needs at least one [[table.key]]")
    return {"name": name, "array": where.field(table, "array", (bool,), False), "struct": struct,
            "field": field, "doc": where.field(table, "doc", (str,)), "keys": keys}


def read_schema(path):
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SchemaError(f"{path}: {e}") from e
    where = Where(path)
    where.check_fields(doc, {"table"}, {"table"}, "schema file")
    tables = []
    for table in where.field(doc, "table", (list,)):
        if not isinstance(table, dict):
            where.fail('"table" must be an array of tables ([[table]])')
        tables.append(read_table(path, table))
    names = [t["name"] for t in tables]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        Where(path, dup).fail("declared twice")
    return tables


def choices_name(table, key):
    return "kChoices_" + table["name"].replace(".", "_") + "_" + key["name"]


def cpp_key(table, key):
    binding = f"member(&T::{key['member']})"
    if key["restart"]:
        binding = f"restart_only({binding})"
    choices = choices_name(table, key) if key["choices"] else "{}"
    fields = [cpp_string(key["name"]), "Kind::" + key["kind"], cpp_string(key["default"]), str(key["min"]),
              str(key["max"]), choices, cpp_string(key["doc"]), binding, "true" if key["required"] else "false"]
    return "          {" + ", ".join(fields) + "},"


def cpp_table(table):
    access = "static_cast<Config*>(root)->" + table["field"]
    member_type = f"std::remove_cvref_t<decltype(std::declval<Config&>().{table['field']})>"
    if table["array"]:
        element = f"auto& v = {access};\n          v.emplace_back();\n          return &v.back();"
        expect = "std::vector<T>"
    else:
        element = f"return &{access};"
        expect = "T"
    message = f"schema.toml: table {table['name']}: Config::{table['field']} does not hold {table['struct']}"
    lines = [
        "  {",
        f"    using T = {table['struct']};",
        f"    static_assert(std::is_same_v<{member_type}, {expect}>,",
        f"                  {cpp_string(message)});",
        "    s.tables.push_back(Table{",
        f"        {cpp_string(table['name'])},",
        f"        {'true' if table['array'] else 'false'},",
        f"        {cpp_string(table['doc'])},",
        "        {",
        *(cpp_key(table, key) for key in table["keys"]),
        "        },",
        "        [](void* root) -> void* {",
        f"          {element}",
        "        },",
        "    });",
        "  }",
    ]
    return "\n".join(lines)


def cpp(tables, source):
    out = [f"// Generated from src/config/{source} by gen_schema.py: edit the TOML, not this file.",
           "// Included by config_schema.cpp inside namespace chitty::config { namespace {.", ""]
    for table in tables:
        for key in table["keys"]:
            if key["choices"]:
                values = ", ".join(cpp_string(c) for c in key["choices"])
                out.append(f"constexpr std::string_view {choices_name(table, key)}[] = {{{values}}};")
    out += ["", "Schema make_schema() {", "  Schema s;"]
    out += [cpp_table(table) for table in tables]
    out += ["  return s;", "}", ""]
    return "\n".join(out)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: gen_schema.py SCHEMA_TOML OUTPUT_INC\n")
        return 2
    source, output = argv[1], argv[2]
    try:
        text = cpp(read_schema(source), os.path.basename(source))
    except SchemaError as e:
        sys.stderr.write(f"gen_schema.py: {e}\n")
        return 1
    tmp = output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
