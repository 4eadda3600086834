"""Prices and the cost of a configuration: $/hour, $/month, $ per million tokens (or samples).

$ per million tokens = $/h / (tokens/s x 3600) x 10^6. (One public tool leaves out the 3600 and is off by that
factor; a test pins the formula.)
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import catalogs

HOURS_PER = {"hour": 1.0, "month": 730.0, "year": 8760.0}
STALE_AFTER_MONTHS = 6  # prices change monthly; older than this, `recommend` warns


def usd_per_million(usd_per_hour: float, units_per_second: float) -> float:
    """Cost of one million tokens (or samples) at a throughput, in USD."""
    if not units_per_second or units_per_second <= 0:
        return float("inf")
    return usd_per_hour / (units_per_second * 3600.0) * 1e6


@dataclass(frozen=True)
class Price:
    accelerator: str
    usd_per_accelerator_hour: float | None  # cheapest current on-demand
    provider: str | None
    purchase_usd: float | None
    source: str | None
    as_of: str | None  # date of the on-demand price
    purchase_as_of: str | None = None
    purchase_source: str | None = None

    def date_for(self, pricing: str) -> str | None:
        """The date of the price that `--pricing cloud` (on-demand) or `own` (purchase) uses."""
        return self.purchase_as_of if pricing == "own" else self.as_of


@dataclass(frozen=True)
class PriceDates:
    """How current the prices behind a set of recommendations are."""

    kind: str  # on-demand or purchase
    oldest: dt.date
    newest: dt.date
    stale: bool  # even the newest price is older than STALE_AFTER_MONTHS

    def warning(self) -> str | None:
        if not self.stale:
            return None
        return (
            f"the newest {self.kind} price used is from {self.newest}, older than {STALE_AFTER_MONTHS} months: "
            "prices change monthly, pass --prices FILE with current quotes"
        )


class PriceBook:
    """Per accelerator id: the newest quote of each provider, the cheapest of those on demand that is at most 6
    months older than the newest ('other' only when no named provider has one), and the newest purchase price;
    a user file overrides rows."""

    def __init__(self, rows: list[dict]):
        grouped: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            if row.get("accelerator"):
                grouped[row["accelerator"]].append(row)
        self.prices: dict[str, Price] = {ident: _price(ident, group) for ident, group in grouped.items()}

    @classmethod
    def load(cls, override: Path | None = None) -> PriceBook:
        """The catalog prices, with every accelerator that the override file names priced by that file only."""
        rows = catalogs.prices()
        if override is not None:
            mine = catalogs.prices(Path(override))
            for i, row in enumerate(mine):
                if not isinstance(row, dict) or not row.get("accelerator"):
                    raise catalogs.CatalogError(
                        f"{override}: price row {i + 1}: expected 'accelerator:' and "
                        "'usd_per_accelerator_hour:' and/or 'purchase_usd:'"
                    )
                if row.get("as_of") is not None and not _is_iso_date(row["as_of"]):
                    raise catalogs.CatalogError(
                        f"{override}: price row {i + 1}: as_of: expected an ISO date (YYYY-MM-DD), got {row['as_of']!r}"
                    )
            named = {row["accelerator"] for row in mine}
            rows = [row for row in rows if row.get("accelerator") not in named] + list(mine)
        return cls(rows)

    def get(self, accelerator: str | None) -> Price | None:
        return self.prices.get(accelerator) if accelerator else None

    def dates(self, accelerators, pricing: str, today: dt.date | None = None) -> PriceDates | None:
        """Date range of the prices used for these accelerators; stale when the newest is over 6 months old."""
        found = [price.date_for(pricing) for ident in accelerators if (price := self.get(ident))]
        days = sorted(dt.date.fromisoformat(str(day)) for day in found if day)
        if not days:
            return None
        cutoff = _months_before(today or dt.date.today(), STALE_AFTER_MONTHS)
        kind = "purchase" if pricing == "own" else "on-demand"
        return PriceDates(kind=kind, oldest=days[0], newest=days[-1], stale=days[-1] < cutoff)


def _price(ident: str, rows: list[dict]) -> Price:
    newest_per_provider: dict = {}
    for row in rows:
        if _positive(row.get("usd_per_accelerator_hour")) is None:
            continue
        known = newest_per_provider.get(row.get("provider"))
        if known is None or (_date_text(row) or "") > (_date_text(known) or ""):
            newest_per_provider[row.get("provider")] = row
    quotes = list(newest_per_provider.values())
    quotes = [row for row in quotes if row.get("provider") != "other"] or quotes
    latest = max((_date_text(row) or "" for row in quotes), default="")
    if latest:  # a quote over 6 months older than the part's newest one does not undercut it
        cutoff = str(_months_before(dt.date.fromisoformat(latest), STALE_AFTER_MONTHS))
        quotes = [row for row in quotes if (_date_text(row) or "") >= cutoff]
    hourly = min(quotes, key=lambda row: _positive(row["usd_per_accelerator_hour"]) or math.inf, default=None)
    purchases = [row for row in rows if _positive(row.get("purchase_usd")) is not None]
    bought = max(purchases, key=lambda row: _date_text(row) or "", default=None)
    return Price(
        accelerator=ident,
        usd_per_accelerator_hour=_positive(hourly["usd_per_accelerator_hour"]) if hourly else None,
        provider=hourly.get("provider") if hourly else None,
        purchase_usd=_positive(bought["purchase_usd"]) if bought else None,
        source=hourly.get("source") if hourly else None,
        as_of=_date_text(hourly),
        purchase_as_of=_date_text(bought),
        purchase_source=bought.get("source") if bought else None,
    )


def _months_before(day: dt.date, months: int) -> dt.date:
    return (pd.Timestamp(day) - pd.DateOffset(months=months)).date()


def _is_iso_date(value) -> bool:
    try:
        dt.date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def _date_text(row: dict | None) -> str | None:
    return str(row["as_of"]) if row and row.get("as_of") else None


def _positive(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
