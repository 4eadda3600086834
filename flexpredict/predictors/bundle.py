"""A trained predictor per target, saved together with its metadata: what `train` writes and everything loads.

Layout: `<dir>/manifest.json` (targets, training-data hash, library versions, metrics) and one folder per target
holding the predictor's JSON state and XGBoost's UBJ booster. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from .. import catalogs
from .base import Predictor
from .constraints import constrain
from .targets import TARGETS, make_predictor

MANIFEST = "manifest.json"


class DamagedModelError(ValueError):
    """A model folder whose manifest or predictor files cannot be read; the message names the file and the fix."""


def data_hash(records: pd.DataFrame) -> str:
    """Content hash of the training records (ids and target values), for the model card and reproducibility."""
    digest = hashlib.sha256()
    digest.update(
        pd.util.hash_pandas_object(records[["record_id"] + [t.column for t in TARGETS.values()]], index=False)
        .to_numpy()
        .tobytes()
    )
    return digest.hexdigest()[:16]


@dataclass
class ModelBundle:
    predictors: dict[str, Predictor]
    manifest: dict = field(default_factory=dict)

    # -- training ----------------------------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        records: pd.DataFrame,
        *,
        predictor: str = "xgboost",
        targets: list[str] | None = None,
        params: dict | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
    ) -> ModelBundle:
        """Fit one predictor per target on the records that measured it."""
        chosen = targets or list(TARGETS)
        fitted: dict[str, Predictor] = {}
        rows: dict[str, int] = {}
        started = time.perf_counter()
        for done, name in enumerate(chosen):
            if on_progress:
                on_progress(done, len(chosen), name)
            target = TARGETS[name]
            subset, y = training_rows(records, name)
            if len(subset) < 20:
                continue
            fitted[name] = make_predictor(predictor, target, params).fit(subset, y)
            rows[name] = len(subset)
        if on_progress:
            on_progress(len(chosen), len(chosen), "done")
        manifest = {
            "predictor": predictor,
            "targets": {n: {"rows": rows[n], "unit": TARGETS[n].unit} for n in fitted},
            "training_data_hash": data_hash(records),
            "training_records": len(records),
            "training_rounds": _counts(records["round"]),
            "training_sources": _counts(records["source_kind"]),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "train_seconds": round(time.perf_counter() - started, 1),
            "versions": _versions(),
            "metrics": {},
        }
        return cls(fitted, manifest)

    # -- prediction --------------------------------------------------------------------------------------------

    def predict(self, records: pd.DataFrame) -> pd.DataFrame:
        """pred_<target>, pred_<target>_lo/_hi (90 % interval) and ood_<target> per record; `ood` if any; `fits`;
        unknown_<target> where a target that needs its physics cannot have it (`Target.unknowable`: power on a
        part with no TDP and no measured power; its energy then is unknown too).
        Physics and consistency hold (`constraints.constrain`): no prediction for what does not fit, power within
        its bounds, energy = power / throughput, token latencies within the scenario's bound."""
        from ..features import RecordFeaturizer

        out = pd.DataFrame(index=records.index)
        completed = RecordFeaturizer.complete(records)  # once for every target
        completed.index = records.index
        records = completed
        any_ood = np.zeros(len(records), dtype=bool)
        for name, predictor in self.predictors.items():
            target = TARGETS[name]
            mask = target.mask(records).to_numpy()
            pred = np.full(len(records), np.nan)
            lo, hi = pred.copy(), pred.copy()
            ood = np.zeros(len(records), dtype=bool)
            if mask.any():
                subset = records.loc[mask]
                p, low, high = predictor.predict_interval(subset)
                scale = target.scale(subset)
                p, low, high = p * scale, low * scale, high * scale
                if target.floor is not None:  # never faster than physics allows (the truth is above it too)
                    bound = np.nan_to_num(target.floor(subset), nan=0.0)
                    p, low, high = np.maximum(p, bound), np.maximum(low, bound), np.maximum(high, bound)
                unknowable = target.unknowable(subset, predictor.seen_accelerators_)
                p, low, high = (np.where(unknowable, np.nan, values) for values in (p, low, high))
                pred[mask], lo[mask], hi[mask] = p, low, high
                ood[mask] = predictor.out_of_distribution(subset)
                if target.physics_required:
                    out[f"unknown_{name}"] = np.zeros(len(records), dtype=bool)
                    out.loc[mask, f"unknown_{name}"] = unknowable
            out[f"pred_{name}"], out[f"pred_{name}_lo"], out[f"pred_{name}_hi"] = pred, lo, hi
            out[f"ood_{name}"] = pd.array(np.where(mask, ood, False), dtype="boolean")
            any_ood |= mask & ood
        out["ood"] = any_ood
        return constrain(records, out)

    # -- persistence -------------------------------------------------------------------------------------------

    def save(self, folder: Path | str) -> Path:
        """Write the bundle into `folder` (which should be new or empty: `train` fills a fresh folder and swaps it
        in with `io.replaced_folder`)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, predictor in self.predictors.items():
            predictor.save(folder / name)
        (folder / MANIFEST).write_text(json.dumps(self.manifest, indent=1, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: Path | str | None = None, targets: tuple[str, ...] | None = None) -> ModelBundle:
        """Load a saved bundle (default: the shipped model); `targets` loads only those that exist among them.

        Raises FileNotFoundError (no model there) or DamagedModelError (a file that cannot be read), one line each.
        """
        folder = Path(folder) if folder else catalogs.default_model_dir()
        path = folder / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{folder}: no trained model here (run `flexpredict train --out {folder}`)")
        current = path
        try:
            manifest = json.loads(path.read_text())
            names = [n for n in manifest["targets"] if targets is None or n in targets]
            predictors = {}
            for name in names:
                current = folder / name
                predictors[name] = Predictor.load(current)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # json, XGBoost and missing-key errors alike
            first = (str(exc).splitlines() or [exc.__class__.__name__])[0][:160]
            raise DamagedModelError(f"{current}: damaged model file ({first}); {restore_hint(folder)}") from None
        return cls(predictors, manifest)

    def check_replaces(self, folder: Path) -> None:
        """Refuse to write a bundle with no targets, or with fewer targets than the model already in `folder`."""
        if not self.predictors:
            raise ValueError(
                f"0 usable rows for every target ({self.manifest.get('training_records', 0)} records "
                "read): nothing written"
            )
        manifest = folder / MANIFEST
        if not manifest.exists():
            return
        try:
            existing = set(json.loads(manifest.read_text()).get("targets", {}))
        except (OSError, ValueError, AttributeError):
            return  # a damaged model may be replaced
        lost = sorted(existing - set(self.predictors))
        if lost:
            raise ValueError(
                f"{folder}: the new model would lose target(s) {', '.join(lost)} (too few rows); "
                "nothing written (use another --out)"
            )


def restore_hint(folder: Path) -> str:
    """How to get a working model back into `folder`."""
    if Path(folder).resolve() == catalogs.default_model_dir().resolve():
        return (
            "restore the shipped model with `git checkout -- models/default` or "
            "`pip install --force-reinstall flexpredict`"
        )
    return f"retrain it with `flexpredict train --out {folder}`"


def training_rows(records: pd.DataFrame, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows that measured a target, one per (run group, value): accuracy twins are not counted twice."""
    target = TARGETS[name]
    values = target.values(records) / target.scale(records)
    keep = target.mask(records) & values.notna() & np.isfinite(values)
    subset = records.loc[keep].assign(_y=values[keep])
    subset = subset.drop_duplicates(["run_group", "_y"]).reset_index(drop=True)
    return subset.drop(columns="_y"), subset["_y"].to_numpy()


def _counts(values: pd.Series) -> dict[str, int]:
    """Records per value (round, source kind): which data a model learned from, for its card."""
    return {str(k): int(v) for k, v in values.fillna("(none)").value_counts().sort_index().items()}


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in ("flexpredict", "xgboost", "xgboost-cpu", "scikit-learn", "pandas", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
