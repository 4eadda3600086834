"""The reader interface every input format fills in, the registry, and the build report.

A reader finds the files it understands under a source root and turns each into raw records (dicts keyed by schema
column names). It never raises on bad input: it reports the file and the reason and the build goes on.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..registry import Registry


@dataclass
class Reconciliation:
    """How one published table (and the logs beside it) became records: every published result exactly once."""

    label: str  # the table, relative to the source root
    prefix: str  # `source` of every record that came from it starts with this
    kinds: tuple[str, ...]  # the source_kind of those records
    published: int = 0  # performance results the table lists (one per result)
    matched: int = 0  # published results read from their LoadGen log
    table_only: int = 0  # published results without a log: records from the table alone
    log_only: int = 0  # logs the table does not list: records flagged published = False
    doubled: list[str] = field(default_factory=list)  # results the table lists more than once
    records: int = 0  # records of this source in the finished dataset

    @property
    def missing(self) -> int:
        """Published results that did not become a record."""
        return max(self.published + self.log_only - self.records, 0)

    def line(self) -> str:
        return (
            f"{self.label}: published {self.published}, records {self.records}, matched to a log "
            f"{self.matched}, from the table only {self.table_only}, logs not in the table {self.log_only}"
            + (f", doubled {len(self.doubled)} ({', '.join(self.doubled[:3])})" if self.doubled else "")
            + (f", MISSING {self.missing}" if self.missing else "")
        )


@dataclass
class BuildReport:
    """What a build read, what it skipped and why, and how each published table reconciles with the records."""

    files_read: Counter = field(default_factory=Counter)  # source_kind -> files
    rows_read: Counter = field(default_factory=Counter)  # source_kind -> raw rows
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    dropped: Counter = field(default_factory=Counter)  # reason -> rows
    tables: dict[str, Reconciliation] = field(default_factory=dict)  # label -> reconciliation
    _listings: dict[Path, tuple[Path, ...]] = field(default_factory=dict, repr=False)

    def listing(self, folder: Path) -> tuple[Path, ...]:
        """Every file under `folder`, walked once per build however many readers look (a round holds ~7k files)."""
        if folder not in self._listings:
            self._listings[folder] = tuple(
                sorted(Path(top) / name for top, _, names in os.walk(folder) for name in names)
            )
        return self._listings[folder]

    def skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def table(self, label: str, prefix: str, kinds: tuple[str, ...]) -> Reconciliation:
        return self.tables.setdefault(label, Reconciliation(label, prefix, kinds))

    @property
    def total_files(self) -> int:
        return sum(self.files_read.values())

    @property
    def incomplete(self) -> list[Reconciliation]:
        """Tables with a published result missing from the records, or listed twice."""
        return [t for t in self.tables.values() if t.missing or t.doubled]


class Reader(ABC):
    """One input format. Subclasses set `kind` and fill in `find` and `read`."""

    kind: ClassVar[str]
    filenames: ClassVar[tuple[str, ...]] = ()
    """Names of the files it reads: a file given as a source goes to the reader that names it."""

    def __init__(self, path: Path, report: BuildReport, root: Path | None = None):
        self.path = path  # the folder to search, or the one file to read
        self.root = root or (path if path.is_dir() else path.parent)  # `source` paths are relative to it
        self.report = report

    def find(self) -> list[Path]:
        """The files under the source folder this reader handles, each one unit of progress: by default those named
        in `filenames` (a source that is a file: that file)."""
        return self.files_named(*self.filenames) if self.path.is_dir() else [self.path]

    @abstractmethod
    def read(self, path: Path) -> list[dict]:
        """Raw records from one file; problems go to `self.report`, never raise."""

    def finish(self) -> list[dict]:
        """Records that only exist once every file was read (e.g. published rows without a log)."""
        return []

    def files_named(self, *names: str) -> list[Path]:
        """The files under the source folder with one of these names (the one file, if the source is a file)."""
        if not self.path.is_dir():
            return [self.path] if self.path.name in names else []
        return [p for p in self.report.listing(self.path) if p.name in names]

    def relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()

    def load_json(self, path: Path, expected: type | None = None, what: str = ""):
        """Parsed JSON (of the `expected` type, `what` naming it), or None after reporting why the file was
        skipped."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            self.report.skip(self.relative(path), f"unreadable: {exc.__class__.__name__}: {exc}")
            return None
        except json.JSONDecodeError as exc:
            self.report.skip(self.relative(path), f"malformed JSON: {exc.msg} at line {exc.lineno}")
            return None
        if expected is not None and not isinstance(data, expected):
            self.report.skip(self.relative(path), f"expected {what}")
            return None
        return data


READERS: Registry[type[Reader]] = Registry("readers", "flexpredict.ingest", "reader", attribute="kind")
register = READERS.register
