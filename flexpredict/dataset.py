"""Load, save and summarise record tables; the shipped Open MLPerf dataset is the default everywhere."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from .ingest.openmlperf import OPENMLPERF_COLUMNS
from .io import atomic_write
from .schema import SchemaError, conform

SHIPPED = Path(__file__).resolve().parent / "data" / "mlperf_records.parquet"
_READERS: dict[str, Callable[[Path], Any]] = {
    ".parquet": pd.read_parquet,
    ".csv": pd.read_csv,
    ".json": partial(pd.read_json, orient="records"),
    ".jsonl": partial(pd.read_json, lines=True),
}


def load(path: Path | str | None = None, *, extra: bool = False) -> pd.DataFrame:
    """Records from a parquet/CSV/JSON(L) file (default: the shipped dataset), conformed to the schema.

    Raises SchemaError with a one-line message naming the file or column on bad input.
    """
    path = Path(path) if path else SHIPPED
    if not path.exists():
        raise SchemaError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise SchemaError(f"{path}: expected a .parquet, .csv, .json or .jsonl file")
    try:
        frame = _READERS[suffix](path)
    except Exception as exc:  # parsers raise many exception types for damaged files
        first = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
        raise SchemaError(f"{path}: cannot read {suffix[1:]} ({first})") from exc
    try:
        return conform(frame, extra=extra)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from exc


def save(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write atomically (temp file + rename): an interrupted write never destroys what was stored.

    Raises SchemaError for a suffix other than .parquet/.csv/.json/.jsonl or a path that is a folder.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise SchemaError(f"{path}: expected a .parquet, .csv, .json or .jsonl file")
    if path.is_dir():
        raise SchemaError(f"{path}: is a folder (expected a .parquet, .csv, .json or .jsonl file)")
    writers = {
        ".csv": lambda tmp: frame.to_csv(tmp, index=False),
        ".json": lambda tmp: frame.to_json(tmp, orient="records", indent=1),
        ".jsonl": lambda tmp: frame.to_json(tmp, orient="records", lines=True),
        ".parquet": lambda tmp: frame.to_parquet(tmp, index=False),
    }
    return atomic_write(path, writers[suffix])


@dataclass(frozen=True)
class Appended:
    added: int
    """Records whose record_id was new to the file."""
    replaced: int
    """Stored rows that a record with the same record_id replaced (the newest is kept)."""


def append(records: pd.DataFrame, path: Path | str) -> Appended:
    """Append records to a dataset file (created if missing), atomically. Every stored row is kept, except one whose
    record_id an appended record carries too: the newest version of a record wins (a re-measured or re-built one)."""
    path = Path(path)
    existing = load(path, extra=True) if path.exists() else conform(pd.DataFrame())
    new = conform(records)
    combined = pd.concat([existing, new], ignore_index=True)
    combined = combined.drop_duplicates("record_id", keep="last").reset_index(drop=True)
    save(combined, path)
    appended, stored = set(new["record_id"]), set(existing["record_id"])
    return Appended(added=len(appended - stored), replaced=len(appended & stored))


def to_openmlperf(frame: pd.DataFrame) -> pd.DataFrame:
    """The MLPerf results among our records under OpenMLPerf column names (`metrics.result`,
    `system.accelerator.name`, ...). Own runs and latency-under-load samples have no MLPerf result identity in
    that layout and are left out (`mlperf_results` says which rows stay)."""
    frame = frame[mlperf_results(frame)]
    out = pd.DataFrame({theirs: frame[ours] for ours, theirs in OPENMLPERF_COLUMNS.items() if ours in frame})
    out["benchmark.name"] = "mlperf-inference"
    out["benchmark.version"] = frame["round"].str.lstrip("v")
    out["model.name"] = frame["model"]
    out["model.weight_data_types"] = frame["precision"]
    return out


def mlperf_results(frame: pd.DataFrame) -> pd.Series:
    """True for records that are MLPerf results (not own runs or latency-under-load samples)."""
    from .ingest.records import RUN_SOURCES

    return ~frame["source_kind"].isin(RUN_SOURCES)


def coverage(frame: pd.DataFrame) -> dict:
    """Numbers `data info` shows: records per source, round, scenario and model; per round the records with power,
    TTFT/TPOT and latency bounds; accelerator names mapped to the catalog (counts, so 99.97 % never reads 100 %)."""
    rounds = frame["round"].astype("string").fillna("(none)")
    power = frame["power_w"].notna() | frame["energy_j_per_sample"].notna()
    token_latency = frame["ttft_p99_ms"].notna() | frame["tpot_p99_ms"].notna() | frame["ttft_p50_ms"].notna()
    bounds = frame["ttft_bound_ms"].notna() | frame["tpot_bound_ms"].notna() | frame["latency_bound_ms"].notna()
    datacenter = frame["system_type"].fillna("").str.contains("datacenter")
    mapped = frame["accelerator"].notna()
    unknown = frame.loc[~mapped, "accelerator_raw"].fillna("(none)").value_counts()

    def counts(series: pd.Series) -> dict[str, int]:
        return {str(k): int(v) for k, v in series.items()}

    return {
        "rows": len(frame),
        "sources": counts(frame["source_kind"].fillna("(none)").value_counts()),
        "rounds": counts(rounds.value_counts().sort_index()),
        "scenarios": counts(frame["scenario"].fillna("(none)").value_counts()),
        "models": counts(frame["model"].fillna("(none)").value_counts()),
        "with_power": counts(power.groupby(rounds).sum()),
        "with_ttft_tpot": counts(token_latency.groupby(rounds).sum()),
        "with_bounds": counts(bounds.groupby(rounds).sum()),
        "accelerator_mapped": int(mapped.sum()),
        "accelerator_mapped_datacenter": int(mapped[datacenter].sum()),
        "datacenter_records": int(datacenter.sum()),
        "accelerator_mapped_share": float(mapped.mean()) if len(frame) else 0.0,
        "accelerator_mapped_share_datacenter": float(mapped[datacenter].mean()) if datacenter.any() else 0.0,
        "unknown_accelerators": counts(unknown),
    }
