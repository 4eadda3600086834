"""Prompt sets for the benchmark: the bundled set in `bench/prompts/`, or a local JSONL/parquet file.

No hub download: a benchmark must run on an air-gapped machine, so prompts are either shipped or given as a file.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flexpredict import catalogs

PROMPT_COLUMNS = ("prompt", "input", "question", "text")
REFERENCE_COLUMNS = ("reference", "output", "answer", "response")


class PromptSetError(ValueError):
    """A prompt file that is missing, unreadable or has no prompt column."""


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[str | tuple[int, ...], ...]
    """Texts, or token ids (synthetic prompts of an exact length, sent as the completions API's token prompt)."""
    references: tuple[str, ...] | None
    """Reference answers, aligned with prompts; None when the set has none (accuracy mode then has no ROUGE)."""

    def __len__(self) -> int:
        return len(self.prompts)

    def tokenizer_corpus(self) -> list[str]:
        """The texts a tokenizer can learn from: text prompts (not token ids) and the reference answers."""
        return [p for p in self.prompts if isinstance(p, str)] + list(self.references or ())


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
            raise PromptSetError(
                f"no bundled prompt set '{spec}' (bundled: {', '.join(bundled_names())}; "
                "or give a .jsonl/.parquet file)"
            )
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


def synthetic_prompts(model_dir: Path, input_tokens: int, count: int, seed: int = 0) -> PromptSet:
    """`count` prompts of exactly `input_tokens` random token ids from the model's own vocabulary (special tokens
    left out), as `vllm bench serve --dataset-name random` makes them: workload shapes without a dataset."""
    path = Path(model_dir) / "tokenizer.json"
    if input_tokens < 1:
        raise PromptSetError(f"--isl must be at least 1 (got {input_tokens})")
    try:
        tokenizer = json.loads(path.read_text(encoding="utf-8"))
        vocab = tokenizer["model"]["vocab"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PromptSetError(
            f"{path}: --isl needs the model folder's tokenizer.json with a vocabulary ({type(exc).__name__}: {exc})"
        ) from None
    ids = vocab.values() if isinstance(vocab, dict) else range(len(vocab))
    special = {token["id"] for token in tokenizer.get("added_tokens") or () if token.get("special")}
    usable = sorted(set(ids) - special)
    draw = random.Random(seed)
    prompts = tuple(tuple(draw.choices(usable, k=input_tokens)) for _ in range(count))
    return PromptSet(name=f"random-isl{input_tokens}", prompts=prompts, references=None)
