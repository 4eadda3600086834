"""Records written by flexpredict's own benchmark: `benchmark_results.json` with a `record` object."""

from __future__ import annotations

from pathlib import Path

from .base import Reader, register


@register
class BenchResultsReader(Reader):
    kind = "flexpredict-bench"
    filenames = ("benchmark_results.json",)

    def read(self, path: Path) -> list[dict]:
        data = self.load_json(path)
        if data is None:
            return []
        record = data.get("record") if isinstance(data, dict) else None
        if not isinstance(record, dict):
            self.report.skip(self.relative(path), "expected an object with a 'record' object (flexpredict bench)")
            return []
        self.report.rows_read[self.kind] += 1
        record = dict(record)
        record["source"] = self.relative(path)
        record["source_kind"] = self.kind
        return [record]
