"""A results tree laid out like `mlcommons/inference_results_vX.Y`.

`<division>/<submitter>/results/<Platform>/<benchmark>/<scenario>/performance/run_1/mlperf_log_summary.txt` (and
`mlperf_log_detail.txt`), joined with `<division>/<submitter>/systems/<Platform>.json` and
`<division>/<submitter>/measurements/<Platform>/<benchmark>/<scenario>/*.json` (newer rounds: a `measurements.json`
or `measurements/` folder inside the results folder). When the tree root has a `summary_results.json` (the round's
published table), its power, accuracy and availability are joined by Location (however it is spelled), its results
without a log in the tree still become records, and logs it does not list become records flagged
`published = False`. The scenario is the folder's (an Interactive log says `Scenario : Server`); compliance runs
(`TEST01`...`TEST09` folders inside a scenario folder) are audits, never records. Works on a fresh clone of any round.
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import normalize as norm
from .base import Reader, Reconciliation, register
from .loadgen_log import LoadGenResult, LogFormatError, parse_detail, parse_summary, result_from_detail
from .summary_rows import SummaryFields, apply_power, apply_result, key_of, power_of, to_record, total_accelerators

SUMMARY_RESULTS_FIELDS = SummaryFields(
    submitter="Submitter",
    division="Category",
    system_type="Suite",
    system_name="System",
    platform="Platform",
    benchmark="Model",
    used_model="UsedModel",
    scenario="Scenario",
    accuracy="Accuracy",
    nodes="Nodes",
    host_cpu="Processor",
    host_cpus="host_processors_per_node",
    host_cores="host_processor_core_count",
    accelerator="Accelerator",
    accelerators="a#",
    location="Location",
    framework="Software",
    operating_system="operating_system",
    errors="errors",
    round="version",
    weights="weight_data_types",
    availability="Availability",
    result="Performance_Result",
    units="Performance_Units",
    power_result="Power_Result",
    power_units="Power_Units",
)
_LOG_NAMES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
_ROUND_IN_PATH = re.compile(r"(?:^|[_\-/])v?(\d+\.\d+)(?:$|[_\-/])")
_COMPLIANCE = re.compile(r"^TEST\d+$", re.IGNORECASE)


@register
class ResultsTreeReader(Reader):
    kind = "results-tree"
    filenames = _LOG_NAMES

    def __init__(self, path, report, root=None):
        super().__init__(path, report, root)
        self._systems: dict[Path, dict | None] = {}
        self._summaries: dict[Path, dict[tuple[str, str], dict]] = {}
        self._seen: set[tuple[Path, tuple[str, str]]] = set()
        self._tables: dict[Path, Reconciliation] = {}  # tree -> its Reconciliation (trees with a published table)

    def find(self) -> list[Path]:
        if not self.path.is_dir():
            return [self.path] if self.path.name in _LOG_NAMES else []
        runs: dict[Path, Path] = {}
        # results/<Platform>/<benchmark>/<scenario>/performance/run_1/<log>; the summary preferred, a run with only a
        # detail log still counts; compliance runs (TEST01... inside a scenario folder) are audits
        for path in sorted(self.files_named(*_LOG_NAMES), key=lambda p: _LOG_NAMES.index(p.name)):
            parts = path.parts
            if (
                len(parts) >= 7
                and parts[-7] == "results"
                and parts[-3:-1] == ("performance", "run_1")
                and not _COMPLIANCE.match(parts[-4])
            ):
                runs.setdefault(path.parent, path)
        return sorted(runs.values())

    def read(self, path: Path) -> list[dict]:
        parts = path.parts
        try:
            at = len(parts) - 1 - parts[::-1].index("results")
        except ValueError:
            self.report.skip(self.relative(path), "not under <division>/<submitter>/results/")
            return []
        if at < 2 or len(parts) - at != 7:
            self.report.skip(
                self.relative(path), "expected results/<Platform>/<benchmark>/<scenario>/performance/run_1/"
            )
            return []
        tree = Path(*parts[: at - 2])
        division, submitter = parts[at - 2], parts[at - 1]
        platform, bench_dir, scenario_dir = parts[at + 1], parts[at + 2], parts[at + 3]
        result = self._parse_logs(path)
        if result is None:
            return []
        where = "/".join((division, submitter, "results", platform, bench_dir, scenario_dir))
        index = self._summary_index(tree)
        scenario = norm.scenario(scenario_dir)
        summary_key = (where.lower(), scenario or scenario_dir)
        published = index.get(summary_key)
        if (tree, summary_key) in self._seen:  # the same result's folder spelled twice (case): read it once
            return []
        self._seen.add((tree, summary_key))
        table = self._tables.get(tree)
        if table is not None:
            if published is not None:
                table.matched += 1
            else:
                table.log_only += 1

        result_dir = path.parents[2]
        system = self._system(tree / division / submitter / "systems" / f"{platform}.json") or {}
        record = self._from_system(system, division=division, submitter=submitter, platform=platform)
        record.update(
            {
                "round": self._round(tree, published),
                "benchmark": norm.benchmark(bench_dir),
                # the folder names the scenario: LoadGen runs Interactive as a Server run and logs it as such
                "scenario": scenario
                or norm.scenario((published or {}).get(SUMMARY_RESULTS_FIELDS.scenario))
                or norm.scenario(result.scenario),
                "valid": result.valid,
                "source": self.relative(path),
                "source_kind": self.kind,
                "weight_data_types": self._weights(
                    result_dir, tree / division / submitter / "measurements" / platform / bench_dir, scenario_dir
                ),
                "target_qps": result.settings.get("target_qps"),
                "location": where,
                "published": None if table is None else published is not None,
            }
        )
        record.update(result.values)
        record.update(result.bounds())
        if published is not None:
            self._join_published(record, published)
        else:
            record["accuracy_raw"] = self._accuracy(result_dir / "accuracy" / "accuracy.txt")
        return [record]

    def finish(self) -> list[dict]:
        """Published results whose log is not in the tree (e.g. a partial clone) still become records."""
        records = []
        for tree, index in self._summaries.items():
            source = self.relative(tree / "summary_results.json")
            for key, row in index.items():
                if (tree, key) not in self._seen:
                    self._tables[tree].table_only += 1
                    records.append(
                        to_record(
                            row,
                            SUMMARY_RESULTS_FIELDS,
                            source=source,
                            source_kind="summary-results",
                            power=power_of(row, SUMMARY_RESULTS_FIELDS),
                        )
                    )
        return records

    # -- parts ---------------------------------------------------------------------------------------------------

    def _parse_logs(self, path: Path) -> LoadGenResult | None:
        summary, detail = path.parent / _LOG_NAMES[0], path.parent / _LOG_NAMES[1]
        try:
            if summary.exists():
                result = parse_summary(summary.read_text(encoding="utf-8", errors="replace"))
                if detail.exists():  # the detail log counts errors the summary may not show
                    entries = parse_detail(detail.read_text(encoding="utf-8", errors="replace"))
                    result.errors = max(result.errors, int(entries.get("error_count", 0) or 0))
                return result
            return result_from_detail(parse_detail(detail.read_text(encoding="utf-8", errors="replace")))
        except LogFormatError as exc:
            self.report.skip(self.relative(path), str(exc))
        except OSError as exc:
            self.report.skip(self.relative(path), f"unreadable: {exc}")
        return None

    def _system(self, path: Path) -> dict | None:
        if path not in self._systems:
            data = self.load_json(path, dict, "a JSON object describing the system") if path.exists() else None
            if not path.exists():
                self.report.skip(self.relative(path), "systems JSON missing: hardware fields left empty")
            elif data is not None:
                self.report.files_read["systems-json"] += 1
            self._systems[path] = data
        return self._systems[path]

    def _summary_index(self, tree: Path) -> dict[tuple[str, str], dict]:
        if tree not in self._summaries:
            index: dict[tuple[str, str], dict] = {}
            path = tree / "summary_results.json"
            rows = self.load_json(path) if path.exists() else None
            if isinstance(rows, list):
                self.report.files_read["summary-results"] += 1
                self.report.rows_read["summary-results"] += len(rows)
                label = self.relative(path)
                table = self.report.table(
                    label, label.rsplit("summary_results.json", 1)[0], (self.kind, "summary-results")
                )
                self._tables[tree] = table
                for row in rows:
                    if not isinstance(row, dict):
                        self.report.dropped.update(["published row is not a JSON object"])
                        continue
                    key = key_of(row, SUMMARY_RESULTS_FIELDS)
                    if key in index:
                        table.doubled.append("/".join(key))
                    index.setdefault(key, row)
                table.published = len(index)
            elif rows is not None:
                self.report.skip(self.relative(path), "expected a JSON list of results")
            self._summaries[tree] = index
        return self._summaries[tree]

    @staticmethod
    def _from_system(system: dict, *, division: str, submitter: str, platform: str) -> dict:
        return {
            "accelerators_total": total_accelerators(system),
            "division": division,
            "submitter": submitter,
            "system_id": platform,
            "system_name": norm.clean_text(system.get("system_name")),
            "system_type": norm.clean_text(system.get("system_type")),
            "availability": norm.clean_text(system.get("status")),
            "accelerator_raw": norm.clean_text(system.get("accelerator_model_name")),
            "accelerators_per_node": norm.to_int(system.get("accelerators_per_node")),
            "nodes": norm.to_int(system.get("number_of_nodes")),
            "accelerator_memory_gb": norm.memory_gb(system.get("accelerator_memory_capacity")),
            "host_cpu": norm.clean_text(system.get("host_processor_model_name")),
            "host_cpus_per_node": norm.to_int(system.get("host_processors_per_node")),
            "host_cpu_cores": norm.to_int(system.get("host_processor_core_count")),
            "host_memory_gb": norm.memory_gb(system.get("host_memory_capacity")),
            "framework_raw": norm.clean_text(system.get("framework")),
            "operating_system": norm.clean_text(system.get("operating_system")),
        }

    def _weights(self, result_dir: Path, folder: Path, scenario_dir: str) -> str | None:
        """weight_data_types from the measurements JSON of this result: inside the results folder (newer rounds:
        `measurements.json` or `measurements/*.json`), else `measurements/<Platform>/<benchmark>/<scenario>/`
        (any scenario spelling)."""
        wanted = norm.scenario(scenario_dir)
        candidates = [result_dir / "measurements.json", *sorted((result_dir / "measurements").glob("*.json"))]
        if folder.is_dir():
            for sub in sorted(folder.iterdir()):
                if sub.is_dir() and norm.scenario(sub.name) == wanted:
                    candidates += sorted(sub.glob("*.json"))
        for path in candidates:
            data = self.load_json(path) if path.is_file() else None
            if isinstance(data, dict) and data.get("weight_data_types"):
                return str(data["weight_data_types"])
        return None

    @staticmethod
    def _accuracy(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8", errors="replace")[-2000:] if path.exists() else None
        except OSError:
            return None

    @staticmethod
    def _round(tree: Path, published: dict | None) -> str | None:
        if published and published.get("version"):
            text = str(published["version"])
            return text if text.startswith("v") else f"v{text}"
        for part in reversed(tree.resolve().parts):
            match = _ROUND_IN_PATH.search(part)
            if match:
                return f"v{match.group(1)}"
        return None

    @staticmethod
    def _join_published(record: dict, row: dict) -> None:
        """The published table is the reference for the headline number, accuracy, availability and power."""
        fields = SUMMARY_RESULTS_FIELDS
        record["accuracy_raw"] = norm.clean_text(row.get(fields.accuracy))
        record["availability"] = norm.clean_text(row.get(fields.availability)) or record.get("availability")
        record["used_model"] = norm.clean_text(row.get(fields.used_model))
        record["weight_data_types"] = record.get("weight_data_types") or norm.clean_text(row.get(fields.weights))
        record["accelerators_total"] = record.get("accelerators_total") or total_accelerators(row)
        if (norm.to_int(row.get(fields.errors)) or 0) > 0:
            record["valid"] = False
        value, unit = norm.to_float(row.get(fields.result)), norm.clean_text(row.get(fields.units))
        record["throughput"], record["throughput_unit"] = value, unit
        apply_result(record, value, unit)
        apply_power(record, *power_of(row, fields))
