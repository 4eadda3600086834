"""Active benchmarking campaigns: Optuna chooses what to measure next, on one machine or many workers.

    from flexpredict.campaign import load_campaign, Worker

    campaign = load_campaign("experiments/campaigns/llama2-70b-replay.yaml")
    Worker(campaign).run()            # propose -> measure -> append -> refit, until the budget is spent

Layout: `definition` (YAML -> dataclasses), `candidates` (the configurations and their similarity), `backends/`
(what measures: `replay`, `bench`), `surrogate` (the predictors refitted per batch), `acquisition/` (one Optuna
sampler per strategy), `study` (storage, heartbeat, retry, lock), `loop` (the worker), `commands` (the CLI).

A thin facade: names are imported from their modules on first use, so the main CLI starts without loading Optuna,
scikit-learn and XGBoost.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "flexpredict.campaign.acquisition": ("CandidateSampler", "Context", "create_sampler"),
    "flexpredict.campaign.backends": ("Measurement", "MeasurementBackend", "create_backend", "register"),
    "flexpredict.campaign.candidates": ("CandidateSet", "config_key"),
    "flexpredict.campaign.definition": (
        "Budget",
        "Campaign",
        "CampaignError",
        "Objective",
        "Parameter",
        "load_campaign",
        "parse_campaign",
    ),
    "flexpredict.campaign.loop": ("Outcome", "Worker", "campaign_dir"),
    "flexpredict.campaign.study": ("open_storage", "open_study", "status", "summary"),
    "flexpredict.campaign.surrogate": ("Surrogate",),
    "flexpredict.predictors.knobs": ("KnobPredictor",),
}
__getattr__, __all__ = lazy_exports("flexpredict.campaign", _EXPORTS)
