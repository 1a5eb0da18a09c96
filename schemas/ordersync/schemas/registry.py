"""Every released schema version, resolvable by subject and by fingerprint.

A subject is a folder of ``schemas/avro``; its versions are ``v1.avsc``, ``v2.avsc``, ... and the
highest is the current one (what writers use and what readers resolve to). Released files never change:
a change is a new version, and ``schemas.compatibility`` checks the new one can read all older ones.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from ordersync.schemas.fingerprint import crc64_avro

AVRO_DIR = Path(__file__).resolve().parent / "avro"
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    subject: str
    version: int
    definition: dict[str, Any]  # as written in the .avsc
    parsed: Any  # fastavro's parsed form
    fingerprint: int

    @property
    def fingerprint_bytes(self) -> bytes:
        return self.fingerprint.to_bytes(8, "little")


def parse(definition: dict[str, Any]) -> Any:
    # A fresh named-type scope per file: every .avsc is self-contained.
    return fastavro.parse_schema(definition, named_schemas={})


def build_version(subject: str, version: int, definition: dict[str, Any]) -> SchemaVersion:
    parsed = parse(definition)
    canonical = to_parsing_canonical_form(parsed)
    return SchemaVersion(subject, version, definition, parsed, crc64_avro(canonical.encode()))


class SchemaRegistry:
    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_subject: dict[str, list[SchemaVersion]] = {}
        self._by_fingerprint: dict[int, SchemaVersion] = {}
        for v in sorted(versions, key=lambda v: (v.subject, v.version)):
            self._by_subject.setdefault(v.subject, []).append(v)
            # Two versions with the same canonical form are the same schema: keep the first.
            self._by_fingerprint.setdefault(v.fingerprint, v)

    @classmethod
    def from_directory(cls, root: Path = AVRO_DIR) -> SchemaRegistry:
        versions = []
        for subject_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for file in subject_dir.iterdir():
                match = _VERSION_FILE.match(file.name)
                if match:
                    versions.append(build_version(subject_dir.name, int(match.group(1)), json.loads(file.read_text())))
        return cls(versions)

    @property
    def subjects(self) -> list[str]:
        return sorted(self._by_subject)

    def versions(self, subject: str) -> list[SchemaVersion]:
        try:
            return self._by_subject[subject]
        except KeyError:
            raise KeyError(f"unknown schema subject {subject!r}; known: {', '.join(self.subjects)}") from None

    def current(self, subject: str) -> SchemaVersion:
        return self.versions(subject)[-1]

    def by_fingerprint(self, fingerprint: int) -> SchemaVersion | None:
        return self._by_fingerprint.get(fingerprint)


@functools.cache
def registry() -> SchemaRegistry:
    """The registry of the schemas shipped in this package (loaded once)."""
    return SchemaRegistry.from_directory()
