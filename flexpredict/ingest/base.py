"""The reader interface every input format fills in, the registry, and the build report.

A reader finds the files it understands under a source root and turns each into raw records (dicts keyed by schema
column names). It never raises on bad input: it reports the file and the reason and the build goes on.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


@dataclass
class BuildReport:
    """What a build read, what it skipped and why."""

    files_read: Counter = field(default_factory=Counter)  # source_kind -> files
    rows_read: Counter = field(default_factory=Counter)  # source_kind -> raw rows
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    dropped: Counter = field(default_factory=Counter)  # reason -> rows

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append((str(path), reason))

    @property
    def total_files(self) -> int:
        return sum(self.files_read.values())


class Reader(ABC):
    """One input format. Subclasses set `kind` and fill in `find` and `read`."""

    kind: ClassVar[str]

    def __init__(self, path: Path, report: BuildReport, root: Path | None = None):
        self.path = path  # the folder to search, or the one file to read
        self.root = root or (path if path.is_dir() else path.parent)  # `source` paths are relative to it
        self.report = report

    @abstractmethod
    def find(self) -> list[Path]:
        """The files under `root` this reader handles (each is one unit of progress)."""

    @abstractmethod
    def read(self, path: Path) -> list[dict]:
        """Raw records from one file; problems go to `self.report`, never raise."""

    def relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()

    def load_json(self, path: Path):
        """Parsed JSON, or None after reporting why the file was skipped."""
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            self.report.skip(self.relative(path), f"unreadable: {exc.__class__.__name__}: {exc}")
        except json.JSONDecodeError as exc:
            self.report.skip(self.relative(path), f"malformed JSON: {exc.msg} at line {exc.lineno}")
        return None


READERS: dict[str, type[Reader]] = {}


def register(cls: type[Reader]) -> type[Reader]:
    READERS[cls.kind] = cls
    return cls
