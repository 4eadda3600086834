"""Accelerator and price catalogs: provenance of every row, name mapping of every MLPerf v3.1-v5.1 accelerator,
the price rules of the PriceBook and the price-date warning of `recommend`."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flexpredict import catalogs, dataset
from flexpredict.cli import app
from flexpredict.costs import PriceBook
from flexpredict.features import RecordFeaturizer
from flexpredict.ingest import shared_data_dir
from flexpredict.predictors.constraints import power_bounds

runner = CliRunner()


def rows_without_provenance(rows: list[dict], key: str) -> list[str]:
    """Names of rows lacking a source or an ISO as_of date."""
    missing = []
    for row in rows:
        try:
            dt.date.fromisoformat(str(row.get("as_of")))
            dated = True
        except ValueError:
            dated = False
        if not row.get("source") or not dated:
            missing.append(str(row.get(key)))
    return missing


CATALOG_ROWS = {
    "accelerators": (lambda: catalogs.accelerators().rows, "id"),
    "prices": (catalogs.prices, "accelerator"),
    "models": (lambda: catalogs.models().rows, "id"),
}


@pytest.mark.parametrize("name", sorted(CATALOG_ROWS))
def test_every_catalog_row_has_a_source_and_a_date(name):
    load, key = CATALOG_ROWS[name]
    assert rows_without_provenance(list(load()), key) == []


def test_the_provenance_check_catches_a_row_without_source_or_date():
    rows = [
        {"id": "ok", "source": "https://example.com", "as_of": "2026-01-01"},
        {"id": "no-source", "as_of": "2026-01-01"},
        {"id": "no-date", "source": "x"},
        {"id": "bad-date", "source": "x", "as_of": "May 2025"},
    ]
    assert rows_without_provenance(rows, "id") == ["no-source", "no-date", "bad-date"]


def test_accelerator_rows_say_whether_their_numbers_are_dense():
    for row in catalogs.accelerators().rows:
        assert isinstance(row.get("dense"), bool), row["id"]
        assert row.get("status") in (None, "announced"), row["id"]
        assert set(row["tflops"]) >= {"fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"}, row["id"]


def test_a_part_without_tdp_says_why():
    """A null TDP leaves power and energy unknown for every configuration never measured on the part: the row's
    notes must say why its power is missing (not published, a block of a shared SoC, ...): a decision, not a gap."""
    says_why = re.compile("power|tdp", re.I)
    rows = catalogs.accelerators().rows
    silent = [r["id"] for r in rows if r.get("tdp_w") is None and not says_why.search(r.get("notes") or "")]
    assert silent == []


def test_every_measured_system_power_lies_within_the_bounds_its_parts_tdp_gives(built):
    """The floor (idle share x TDP x count) and ceiling (TDP + host allowance, x count) that `constrain` clips
    predictions to hold every MLPerf power result: a TDP entered too low, or a wrong idle share, shows up here."""
    records, _ = built
    measured = records[pd.to_numeric(records["power_w"], errors="coerce").gt(0)]
    featured = RecordFeaturizer.complete(measured)
    floor, ceiling = power_bounds(featured)
    power = pd.to_numeric(featured["power_w"], errors="coerce").to_numpy(float)
    known = np.isfinite(floor) & np.isfinite(ceiling)
    assert known.sum() > 1000
    outside = featured.loc[
        known & ((power < floor) | (power > ceiling)), ["accelerator", "accelerators_total", "power_w"]
    ]
    assert outside.empty, outside.head(10)


NO_ACCELERATOR = {"", "n/a", "na", "none", "-"}


def _v51_results():
    root = shared_data_dir()
    folder = root / "raw/v5.1/inference_results_v5.1" if root else None
    if folder is None or not (folder / "summary_results.json").is_file():
        pytest.skip("v5.1 summary_results.json is not in ../shared")
    return folder


def test_every_accelerator_name_published_in_v51_maps():
    folder = _v51_results()
    summary = json.loads((folder / "summary_results.json").read_text(encoding="utf-8"))
    names = {str(row.get("Accelerator") or "").strip() for row in summary}
    for path in folder.glob("*/*/systems/*.json"):
        system = json.loads(path.read_text(encoding="utf-8"))
        name = str(system.get("accelerator_model_name") or "").strip()
        names.add(name if name.lower() not in NO_ACCELERATOR else system.get("host_processor_model_name", ""))
    names = {name for name in names if name.lower() not in NO_ACCELERATOR}
    catalog = catalogs.accelerators()
    assert len(names) >= 20
    assert sorted(name for name in names if catalog.match(name) is None) == []


def test_datacenter_records_of_every_round_map(built):
    frame, _ = built
    datacenter = frame[frame["system_type"].fillna("").str.contains("datacenter")]
    rounds = [name for name in ("v3.1", "v4.0", "v4.1", "v5.0", "v5.1") if (datacenter["round"] == name).any()]
    assert len(rounds) >= 4, f"the build holds datacenter records of only {rounds}"
    for round_name in rounds:
        share = datacenter.loc[datacenter["round"] == round_name, "accelerator"].notna().mean()
        assert share >= 0.98, f"{round_name}: {share:.1%} of datacenter records map to a catalog accelerator"


@pytest.mark.parametrize(
    "name, ident",
    [
        ("NVIDIA GB300", "nvidia-gb300-nvl72-288gb"),
        ("NVIDIA B300-SXM-270GB", "nvidia-b300-sxm-270gb"),
        ("NVIDIA B300-SXM-288GB-1100W", "nvidia-b300-sxm-270gb"),
        ("NVIDIA GB200", "nvidia-gb200-nvl72-186gb"),
        ("NVIDIA B200-SXM-180GB", "nvidia-b200-sxm-180gb"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "nvidia-rtx-pro-6000-blackwell-server-96gb"),
        ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "nvidia-rtx-pro-6000-blackwell-96gb"),
        ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "nvidia-rtx-pro-6000-blackwell-maxq-96gb"),
        ("NVIDIA RTX PRO 4500 Blackwell", "nvidia-rtx-pro-4500-blackwell-32gb"),
        ("NVIDIA RTX-2000E-Ada-16GB", "nvidia-rtx-2000e-ada-16gb"),
        ("NVIDIA RTX 4000 Ada-PCIe-20GB", "nvidia-rtx-4000-ada-20gb"),
        ("NVIDIA H20", "nvidia-h20-96gb"),
        ("NVIDIA H200-NVL-141GB", "nvidia-h200-nvl-141gb"),
        ("Virtualized NVIDIA H200-SXM-141GB", "nvidia-h200-sxm-141gb"),
        ("NVIDIA GB10", "nvidia-gb10-128gb"),
        ("NVIDIA Jetson AGX Thor 128G", "nvidia-jetson-agx-thor-128gb"),
        ("NVIDIA Vera Rubin VR200", "nvidia-rubin-vr200-288gb"),
        ("AMD Instinct MI350X 288GB HBM3e", "amd-mi350x-288gb"),
        ("AMD Instinct MI355X 288GB HBM3e", "amd-mi355x-288gb"),
        ("AMD Instinct MI325X 256GB HBM3E", "amd-mi325x-256gb"),
        ("AMD Instinct MI300X-NPS1-SPX-192GB-750W", "amd-mi300x-192gb"),
        ("AMD Radeon AI PRO R9700", "amd-radeon-ai-pro-r9700-32gb"),
        ("AMD Radeon 8060S Graphics", "amd-radeon-8060s"),
        ("Intel(R) Arc Pro(R) B60", "intel-arc-pro-b60-24gb"),
        ("[MAXSUN] MS-Intel Arc Pro B60 Dual 48G Turbo", "intel-arc-pro-b60-dual-48gb"),
        ("Intel Arc Pro B50", "intel-arc-pro-b50-16gb"),
        ("Intel Arc Pro B70", "intel-arc-pro-b70-32gb"),
        ("Intel(R) Arc(TM) 140T GPU", "intel-arc-140t-igpu"),
        ("Intel Gaudi 3", "intel-gaudi3-128gb"),
        ("TPU v7", "google-tpu-v7-192gb"),
        ("TPU v6", "google-tpu-v6e-32gb"),
        ("AWS Trainium2", "aws-trainium2-96gb"),
        ("AWS Trainium3", "aws-trainium3-144gb"),
        ("AWS Inferentia2", "aws-inferentia2-32gb"),
        ("NVIDIA H100-SXM-80GB (x8)", "nvidia-h100-sxm-80gb"),
    ],
)
def test_submitted_spellings_map_to_their_part(name, ident):
    row = catalogs.accelerators().match(name)
    assert row is not None and row["id"] == ident


def test_a_heterogeneous_system_is_named_by_the_part_holding_most_accelerators():
    catalog = catalogs.accelerators()
    assert (
        catalog.match("AMD Instinct MI300X 192GB HBM3 (x32), AMD Instinct MI325X 256GB HBM3e (x16)")["id"]
        == "amd-mi300x-192gb"
    )
    assert (
        catalog.match("AMD Instinct MI325X 256GB HBM3E (x16), AMD Instinct MI300X 192GB HBM3 (x8)")["id"]
        == "amd-mi325x-256gb"
    )
    assert catalog.match("NVIDIA H100-SXM-80GB (x8), NVIDIA H200-SXM-141GB (x8)")["id"] == "nvidia-h100-sxm-80gb"


def test_no_alias_takes_a_name_that_mapped_to_another_part_in_the_shipped_dataset():
    shipped = dataset.load()[["accelerator_raw", "accelerator"]].dropna().drop_duplicates()
    catalog = catalogs.accelerators()
    moved = {
        raw: (ident, (catalog.match(raw) or {}).get("id"))
        for raw, ident in shipped.itertuples(index=False)
        if (catalog.match(raw) or {}).get("id") != ident
    }
    assert len(shipped) > 50 and moved == {}


def test_on_demand_prices_are_the_instance_price_divided_by_its_accelerators():
    for row in catalogs.prices():
        if row.get("usd_per_accelerator_hour") and row.get("instance_usd_per_hour"):
            assert row["usd_per_accelerator_hour"] == pytest.approx(
                row["instance_usd_per_hour"] / row["accelerators_per_instance"], abs=0.01
            ), row


def _quote(provider: str, usd: float, as_of: str, accelerator: str = "nvidia-h100-sxm-80gb") -> dict:
    return {
        "accelerator": accelerator,
        "provider": provider,
        "usd_per_accelerator_hour": usd,
        "source": "test",
        "as_of": as_of,
    }


def test_price_book_takes_each_providers_newest_quote_then_the_cheapest():
    book = PriceBook(
        [
            _quote("lambda", 1.0, "2025-01-01"),
            _quote("lambda", 3.0, "2026-10-01"),
            _quote("aws", 2.5, "2026-09-01"),
            _quote("other", 0.5, "2026-10-01"),
            {
                "accelerator": "nvidia-h100-sxm-80gb",
                "provider": "list",
                "purchase_usd": 25000,
                "source": "test",
                "as_of": "2023-04-14",
            },
        ]
    )
    price = book.get("nvidia-h100-sxm-80gb")
    assert (price.provider, price.usd_per_accelerator_hour, price.as_of) == ("aws", 2.5, "2026-09-01")
    assert (price.purchase_usd, price.purchase_as_of) == (25000, "2023-04-14")


def test_a_quote_over_six_months_older_than_the_newest_does_not_undercut_it():
    book = PriceBook([_quote("nebius", 1.0, "2025-06-01"), _quote("runpod", 3.0, "2026-09-01")])
    assert book.get("nvidia-h100-sxm-80gb").provider == "runpod"
    book = PriceBook([_quote("nebius", 1.0, "2026-04-01"), _quote("runpod", 3.0, "2026-09-01")])
    assert book.get("nvidia-h100-sxm-80gb").provider == "nebius"


def test_other_provenance_prices_are_a_last_resort():
    assert PriceBook([_quote("other", 0.5, "2026-10-01")]).get("nvidia-h100-sxm-80gb").provider == "other"


def test_price_dates_warn_when_the_newest_price_is_over_six_months_old():
    book = PriceBook([_quote("aws", 2.0, "2026-05-01"), _quote("aws", 1.0, "2025-01-10", "nvidia-l4-24gb")])
    ids = ["nvidia-h100-sxm-80gb", "nvidia-l4-24gb", "not-priced"]
    fresh = book.dates(ids, "cloud", today=dt.date(2026, 11, 1))
    assert (fresh.oldest, fresh.newest, fresh.stale, fresh.warning()) == (
        dt.date(2025, 1, 10),
        dt.date(2026, 5, 1),
        False,
        None,
    )
    stale = book.dates(ids, "cloud", today=dt.date(2026, 11, 2))
    assert stale.stale and "2026-05-01" in stale.warning() and "--prices" in stale.warning()
    assert book.dates(ids, "own") is None  # no purchase price among them


def test_a_price_file_with_a_bad_date_is_refused_naming_the_row(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump({"prices": [_quote("aws", 2.0, "last week")]}))
    with pytest.raises(catalogs.CatalogError, match=r"prices.yaml: price row 1: as_of"):
        PriceBook.load(path)
    result = runner.invoke(app, ["recommend", "--prices", str(path)])
    assert result.exit_code == 2 and "price row 1: as_of" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def old_price_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prices") / "old.yaml"
    path.write_text(yaml.safe_dump({"prices": [_quote("aws", 2.0, "2020-03-01")]}))
    return path


def test_recommend_prints_the_price_dates_and_warns_when_they_are_old(old_price_file):
    args = ["recommend", "--accelerator", "nvidia-h100-sxm-80gb", "--budget", "20000", "--prices", str(old_price_file)]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "on-demand prices as of 2020-03-01 to 2020-03-01" in table.output
    assert "warning: the newest on-demand price used is from 2020-03-01" in " ".join(table.output.split())
    document = json.loads(runner.invoke(app, args + ["--format", "json"]).output)
    dates = document["request"]["prices_as_of"]
    assert (dates["oldest"], dates["newest"], dates["stale"]) == ("2020-03-01", "2020-03-01", True)


def test_recommend_with_current_catalog_prices_names_their_dates():
    result = runner.invoke(app, ["recommend", "--budget", "2000", "--format", "json", "--top", "3"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    dates = document["request"]["prices_as_of"]
    used = {row["price_source"].rsplit("(", 1)[-1].rstrip(")") for row in document["recommendations"]}
    assert dates["oldest"] == min(used) and dates["newest"] == max(used)
