"""Backward compatibility: can a reader with the NEW schema read data written with an OLD one?

A static check following the Avro specification's schema-resolution rules, so an incompatible change is
caught before any data exists. ``python -m ordersync.schemas.compatibility`` checks every subject in the repo.
"""

from __future__ import annotations

import sys
from typing import Any

from ordersync.schemas.registry import SchemaRegistry, registry

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}

Schema = Any  # a JSON schema definition: str, list or dict


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _collect_names(schema: Schema, namespace: str | None, names: dict[str, Schema]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_names(branch, namespace, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = _fullname(schema["name"], schema.get("namespace", namespace))
            names[full] = schema
            names.setdefault(full.rsplit(".", 1)[-1], schema)
            inner_ns = full.rsplit(".", 1)[0] if "." in full else None
            for field in schema.get("fields", []):
                _collect_names(field["type"], inner_ns, names)
        elif kind == "array":
            _collect_names(schema["items"], namespace, names)
        elif kind == "map":
            _collect_names(schema["values"], namespace, names)
        elif isinstance(kind, dict | list):
            _collect_names(kind, namespace, names)


class _Resolver:
    def __init__(self, reader: Schema, writer: Schema) -> None:
        self.rnames: dict[str, Schema] = {}
        self.wnames: dict[str, Schema] = {}
        _collect_names(reader, None, self.rnames)
        _collect_names(writer, None, self.wnames)
        self.seen: set[tuple[int, int]] = set()

    @staticmethod
    def _deref(schema: Schema, names: dict[str, Schema]) -> Schema:
        while True:
            if isinstance(schema, str) and schema not in PRIMITIVES:
                schema = names[schema]
            elif (
                isinstance(schema, dict)
                and isinstance(schema.get("type"), str | list | dict)
                and schema["type"]
                not in (
                    "record",
                    "error",
                    "enum",
                    "fixed",
                    "array",
                    "map",
                )
            ):
                if "logicalType" in schema and schema["type"] in PRIMITIVES:
                    return schema
                schema = schema["type"]
            else:
                return schema

    @staticmethod
    def _kind(schema: Schema) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, str):
            return schema
        return str(schema["type"])

    def problems(self, reader: Schema, writer: Schema, path: str) -> list[str]:
        reader = self._deref(reader, self.rnames)
        writer = self._deref(writer, self.wnames)
        rk, wk = self._kind(reader), self._kind(writer)
        if wk == "union":
            out = []
            for branch in writer:
                out += self.problems(reader, branch, path)
            return out
        if rk == "union":
            for branch in reader:
                if not self.problems(branch, writer, path):
                    return []
            return [f"{path or '<root>'}: no branch of the reader's union reads the writer's {wk}"]
        if rk in PRIMITIVES and wk in PRIMITIVES:
            if rk != wk and rk not in PROMOTIONS.get(wk, set()):
                return [f"{path or '<root>'}: writer {wk} cannot be read as {rk}"]
            return self._logical(reader, writer, path)
        if rk != wk:
            return [f"{path or '<root>'}: writer {wk} cannot be read as {rk}"]
        if rk == "array":
            return self.problems(reader["items"], writer["items"], f"{path}[]")
        if rk == "map":
            return self.problems(reader["values"], writer["values"], f"{path}{{}}")
        if _short(reader["name"]) != _short(writer["name"]):
            return [f"{path or '<root>'}: named type {writer['name']} is read as {reader['name']}"]
        if rk == "fixed":
            return [] if reader["size"] == writer["size"] else [f"{path}: fixed size changed"]
        if rk == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [f"{path or reader['name']}: enum symbols {missing} removed and the reader enum has no default"]
            return []
        return self._record(reader, writer, path)

    def _logical(self, reader: Schema, writer: Schema, path: str) -> list[str]:
        rl = reader.get("logicalType") if isinstance(reader, dict) else None
        wl = writer.get("logicalType") if isinstance(writer, dict) else None
        if "decimal" in (rl, wl):
            r_scale = reader.get("scale", 0) if isinstance(reader, dict) else None
            w_scale = writer.get("scale", 0) if isinstance(writer, dict) else None
            if rl != wl or r_scale != w_scale:
                return [f"{path}: decimal scale or logical type changed"]
        return []

    def _record(self, reader: Schema, writer: Schema, path: str) -> list[str]:
        key = (id(reader), id(writer))
        if key in self.seen:
            return []
        self.seen.add(key)
        writer_fields = {}
        for field in writer["fields"]:
            writer_fields[field["name"]] = field
        out = []
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            found = next((writer_fields[n] for n in names if n in writer_fields), None)
            where = f"{path}.{field['name']}" if path else f"{reader['name']}.{field['name']}"
            if found is None:
                if "default" not in field:
                    out.append(f"{where}: new field without a default")
                continue
            out += self.problems(field["type"], found["type"], where)
        return out


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def incompatibilities(reader: Schema, writer: Schema) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty list: it can)."""
    return _Resolver(reader, writer).problems(reader, writer, "")


def check_registry(reg: SchemaRegistry) -> list[str]:
    """Every current schema against every older version of itself."""
    out = []
    for subject in reg.subjects:
        current = reg.current(subject)
        for old in reg.versions(subject)[:-1]:
            for problem in incompatibilities(current.definition, old.definition):
                out.append(f"{subject} v{current.version} cannot read v{old.version}: {problem}")
    return out


def main() -> int:
    problems = check_registry(registry())
    for line in problems:
        print(line, file=sys.stderr)
    print(f"{len(registry().subjects)} subjects checked, {len(problems)} incompatibilities")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
