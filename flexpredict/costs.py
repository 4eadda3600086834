"""Prices and the cost of a configuration: $/hour, $/month, $ per million tokens (or samples).

$ per million tokens = $/h / (tokens/s x 3600) x 10^6. (One public tool leaves out the 3600 and is off by that
factor; a test pins the formula.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import catalogs

HOURS_PER = {"hour": 1.0, "month": 730.0, "year": 8760.0}


def usd_per_million(usd_per_hour: float, units_per_second: float) -> float:
    """Cost of one million tokens (or samples) at a throughput, in USD."""
    if not units_per_second or units_per_second <= 0:
        return float("inf")
    return usd_per_hour / (units_per_second * 3600.0) * 1e6


@dataclass(frozen=True)
class Price:
    accelerator: str
    usd_per_accelerator_hour: float | None  # cheapest on-demand
    provider: str | None
    purchase_usd: float | None
    source: str | None
    as_of: str | None


class PriceBook:
    """The cheapest on-demand price and the list price per accelerator id; a user file overrides rows."""

    def __init__(self, rows: list[dict]):
        self.prices: dict[str, Price] = {}
        for row in rows:
            ident = row.get("accelerator")
            if not ident:
                continue
            current = self.prices.get(ident)
            hourly = _positive(row.get("usd_per_accelerator_hour"))
            purchase = _positive(row.get("purchase_usd"))
            best_hourly = current.usd_per_accelerator_hour if current else None
            take_hourly = hourly is not None and (best_hourly is None or hourly < best_hourly)
            self.prices[ident] = Price(
                accelerator=ident,
                usd_per_accelerator_hour=hourly if take_hourly else best_hourly,
                provider=row.get("provider") if take_hourly else (current.provider if current else None),
                purchase_usd=purchase if purchase is not None else (current.purchase_usd if current else None),
                source=row.get("source") if take_hourly else (current.source if current else row.get("source")),
                as_of=str(row.get("as_of")) if take_hourly else (current.as_of if current else str(row.get("as_of"))),
            )

    @classmethod
    def load(cls, override: Path | None = None) -> PriceBook:
        """The catalog prices, with every accelerator that the override file names priced by that file only."""
        rows = catalogs.prices()
        if override is not None:
            mine = catalogs.prices(Path(override))
            for i, row in enumerate(mine):
                if not isinstance(row, dict) or not row.get("accelerator"):
                    raise catalogs.CatalogError(f"{override}: price row {i + 1}: expected 'accelerator:' and "
                                                "'usd_per_accelerator_hour:' and/or 'purchase_usd:'")
            named = {row["accelerator"] for row in mine}
            rows = [row for row in rows if row.get("accelerator") not in named] + list(mine)
        return cls(rows)

    def get(self, accelerator: str | None) -> Price | None:
        return self.prices.get(accelerator) if accelerator else None


def _positive(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
