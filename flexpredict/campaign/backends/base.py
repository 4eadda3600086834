"""What a campaign needs from whatever measures a configuration: one small base class and a registry.

A backend lists the configurations it can measure, says what each is before measuring (the record the predictor
scores), and measures one, returning a schema record or the reason it failed. The loop knows nothing else about it,
so replaying a held dataset and running vLLM on a GPU are the same campaign.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd

from ...registry import Registry
from ...schema import conform
from ..definition import Campaign, CampaignError


@dataclass
class Measurement:
    record: dict | None
    """The schema record (None when the run failed)."""
    failure: str | None = None
    """Why the run failed (engine crash, out of memory, ...): the trial is recorded as failed with it, never
    retried."""
    seconds: float = 0.0
    """Machine time the measurement took (GPU-hours and dollars of the budget)."""
    accelerators: int = 1


class MeasurementBackend(ABC):
    """Lists, describes and measures configurations; options come from the campaign's `backend:` mapping."""

    name: ClassVar[str]
    options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, campaign: Campaign, workdir: Path):
        unknown = set(campaign.backend_options) - self.options
        if unknown:
            raise CampaignError(
                f"backend.{min(unknown)}: unknown option of the {self.name} backend "
                f"(known: {', '.join(sorted(self.options))})"
            )
        self.campaign = campaign
        self.workdir = Path(workdir)

    @abstractmethod
    def candidates(self) -> pd.DataFrame:
        """Every configuration this backend can measure: one column per search-space parameter."""

    @abstractmethod
    def describe(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """Schema records of the candidates as known before measuring (no metric values)."""

    @abstractmethod
    def measure(self, params: dict, run_dir: Path) -> Measurement:
        """Measure one configuration; a failed run is a Measurement with `failure`, not an exception."""

    def base_records(self) -> pd.DataFrame:
        """Records the predictor learns from before the campaign measured anything."""
        return conform(pd.DataFrame())

    def evaluation_records(self) -> pd.DataFrame | None:
        """Records with known true values the campaign never measures (a replay's held-out configurations), for
        an honest prediction error; None when there are none."""
        return None

    def close(self) -> None:
        """Release what measuring holds (a running engine)."""


REGISTRY: Registry[type[MeasurementBackend]] = Registry("campaign_backends", "flexpredict.campaign.backends", "backend")
register = REGISTRY.register


def create_backend(campaign: Campaign, workdir: Path) -> MeasurementBackend:
    if campaign.backend not in REGISTRY:
        raise CampaignError(f"backend.kind: {REGISTRY.unknown(campaign.backend)}")
    return REGISTRY[campaign.backend](campaign, workdir)
