"""Ingest: every MLPerf Inference result format (and flexpredict's own runs) into one record table.

frame, report = build_dataset([Path("inference_results_v5.1")])
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from . import aic_silicon, bench_results, cm_result, cmx_summary, endpoints_summary, openmlperf, results_tree
from .base import READERS, BuildReport, Reader
from .records import finalize

# the reader modules shipped with flexpredict: importing them registers their readers
BUILTIN_READERS = (aic_silicon, bench_results, cm_result, cmx_summary, endpoints_summary, openmlperf, results_tree)

ROUND_FOLDER = re.compile(r"^v\d+\.\d+$")


class NoInputError(RuntimeError):
    """Nothing readable was found in the given sources."""


def shared_data_dir() -> Path | None:
    """`../shared/data/mlperf` beside the checkout (or $FLEXPREDICT_MLPERF_DATA), if present."""
    env = os.environ.get("FLEXPREDICT_MLPERF_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [parent / "shared" / "data" / "mlperf" for parent in list(here.parents)[2:5]]
    candidates.append(Path.cwd().parent / "shared" / "data" / "mlperf")
    for candidate in candidates:
        if (candidate / "raw").is_dir():
            return candidate
    return None


def default_sources() -> list[tuple[Path, Path]]:
    """(root, path) of every round folder (`raw/vX.Y`, found by name: the next round needs no code change) in the
    shared MLPerf folder, and of the latency-under-load sample beside it; paths in records are relative to the root."""
    shared = shared_data_dir()
    if shared is None:
        raise NoInputError("no --source given and ../shared/data/mlperf not found (set FLEXPREDICT_MLPERF_DATA)")
    rounds = sorted(
        (p for p in (shared / "raw").iterdir() if p.is_dir() and ROUND_FOLDER.match(p.name)),
        key=lambda p: tuple(int(x) for x in p.name[1:].split(".")),
    )
    sources = [(shared, path) for path in rounds]
    sample = shared.parent / "aic_silicon_sample"
    if sample.is_dir():
        sources.append((shared.parent, sample))
    return sources


def readers_for(root: Path, path: Path, report: BuildReport) -> list[Reader]:
    """Readers for a source: every format under a folder, or the one a file's name says."""
    if path.is_dir():
        return [cls(path, report, root) for cls in READERS.values()]
    kind = next((cls.kind for cls in READERS.values() if path.name in cls.filenames), None)
    if kind is None and path.suffix in {".parquet", ".json"}:
        kind = "openmlperf"  # any other table: an OpenMLPerf export under another name
    if kind is None:
        known = ", ".join(name for cls in READERS.values() for name in cls.filenames)
        report.skip(path, f"unknown file kind (expected a results tree or one of {known}, or a .parquet/.json table)")
        return []
    return [READERS[kind](path, report, root)]


def build_dataset(
    sources: Iterable[Path | tuple[Path, Path]] | None = None,
    *,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> tuple[pd.DataFrame, BuildReport]:
    """Read every source (default: the shared MLPerf rounds) into schema records, with a report of what was read.

    `on_progress(done, total, label)` is called once per file. Raises NoInputError when nothing could be read.
    """
    report = BuildReport()
    pairs = (
        default_sources()
        if sources is None
        else [
            s if isinstance(s, tuple) else (Path(s) if Path(s).is_dir() else Path(s).parent, Path(s)) for s in sources
        ]
    )
    work: list[tuple[Reader, Path]] = []
    for root, path in pairs:
        if not path.exists():
            report.skip(path, "does not exist")
            continue
        for reader in readers_for(root, path, report):
            work.extend((reader, unit) for unit in reader.find())
    raw: list[dict] = []
    finishers = {id(reader): reader for reader, _ in work}
    for done, (reader, unit) in enumerate(work, start=1):
        records = reader.read(unit)
        if records:
            report.files_read[reader.kind] += 1
        raw.extend(records)
        if on_progress:
            on_progress(done, len(work), reader.kind)
    for reader in finishers.values():
        raw.extend(reader.finish())
    if not raw:
        raise NoInputError(
            "no records could be read from the given sources"
            + (f" ({len(report.skipped)} files skipped)" if report.skipped else "")
        )
    frame = finalize(raw)
    record_sources, kinds = frame["source"].astype(str), frame["source_kind"]
    for table in report.tables.values():
        table.records = int((record_sources.str.startswith(table.prefix) & kinds.isin(table.kinds)).sum())
    return frame, report


__all__ = ["BuildReport", "NoInputError", "build_dataset", "default_sources", "shared_data_dir"]
