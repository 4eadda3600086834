"""Shared fixtures: the real MLPerf results beside the checkout, and the dataset built from them once."""

from __future__ import annotations

import pytest

from flexpredict.ingest import build_dataset, shared_data_dir


@pytest.fixture(scope="session")
def shared_mlperf():
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data/mlperf is not present")
    return path


@pytest.fixture(scope="session")
def built(shared_mlperf):
    """(records, report) of a default build over every shared round."""
    return build_dataset()


@pytest.fixture(autouse=True, scope="session")
def isolated_score_cache(tmp_path_factory):
    """Scores `recommend` remembers, and models `train` writes without --out, go to temporary folders, not the
    user's cache and home (CLI subprocesses inherit them)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FLEXPREDICT_CACHE_DIR", str(tmp_path_factory.mktemp("score-cache")))
    mp.setenv("FLEXPREDICT_HOME", str(tmp_path_factory.mktemp("flexpredict-home")))
    mp.delenv("FLEXPREDICT_MODEL_DIR", raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def crashing_replay() -> str:
    """The name of a replay backend whose H100 runs crash as an engine would, registered only while tests use it."""
    from flexpredict.campaign.backends import REGISTRY, Measurement
    from flexpredict.campaign.backends.replay import ReplayBackend

    class CrashingReplay(ReplayBackend):
        name = "crashing-replay"

        def measure(self, params, run_dir):
            if "h100" in str(params["accelerator"]):
                return Measurement(None, failure="engine crashed: CUDA error: an illegal memory access", seconds=60)
            return super().measure(params, run_dir)

    REGISTRY.register(CrashingReplay)
    yield CrashingReplay.name
    REGISTRY.unregister(CrashingReplay.name)
