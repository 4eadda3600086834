"""Prompt sets for the benchmark: the bundled set in `bench/prompts/`, or a local JSONL/parquet file.

No hub download: a benchmark must run on an air-gapped machine, so prompts are either shipped or given as a file.
"""

from __future__ import annotations

from flexpredict import catalogs

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PROMPT_COLUMNS = ("prompt", "input", "question", "text")
REFERENCE_COLUMNS = ("reference", "output", "answer", "response")


class PromptSetError(ValueError):
    """A prompt file that is missing, unreadable or has no prompt column."""


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[str, ...]
    references: tuple[str, ...] | None
    """Reference answers, aligned with prompts; None when the set has none (accuracy mode then has no ROUGE)."""

    def __len__(self) -> int:
        return len(self.prompts)


def bench_dir() -> Path:
    """The `bench/` resource folder: the source tree's, or the copy packed into the wheel."""
    return catalogs.resource_dir("bench")


def bundled_names() -> list[str]:
    return sorted(p.stem for p in (bench_dir() / "prompts").glob("*.jsonl"))


def load_prompts(spec: str = "default") -> PromptSet:
    """Load a bundled set by name (`default`) or a .jsonl/.parquet file with a prompt column."""
    path = Path(spec)
    if not path.suffix:
        bundled = bench_dir() / "prompts" / f"{spec}.jsonl"
        if not bundled.exists():
            raise PromptSetError(f"no bundled prompt set '{spec}' (bundled: {', '.join(bundled_names())}; "
                                 "or give a .jsonl/.parquet file)")
        path = bundled
    if not path.exists():
        raise PromptSetError(f"prompt file not found: {path}")
    frame = _read(path)
    prompt_col = _pick(frame, PROMPT_COLUMNS)
    if prompt_col is None:
        raise PromptSetError(f"{path}: no prompt column (expected one of {', '.join(PROMPT_COLUMNS)})")
    frame = frame[frame[prompt_col].notna() & (frame[prompt_col].astype(str).str.strip() != "")]
    if frame.empty:
        raise PromptSetError(f"{path}: no non-empty prompts")
    ref_col = _pick(frame, REFERENCE_COLUMNS)
    references = None
    if ref_col is not None and frame[ref_col].notna().all():
        references = tuple(frame[ref_col].astype(str))
    return PromptSet(name=path.stem, prompts=tuple(frame[prompt_col].astype(str)), references=references)


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in {".jsonl", ".json"}:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return pd.DataFrame(rows)
    except (OSError, ValueError) as exc:
        raise PromptSetError(f"{path}: cannot read prompts ({exc})") from None
    raise PromptSetError(f"{path}: unsupported prompt file type '{path.suffix}' (use .jsonl or .parquet)")


def _pick(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in frame.columns), None)
