"""Predictors behind one interface (fit / predict / predict_interval / save / load), one module each.

    from flexpredict.predictors import PREDICTORS, XGBoostPredictor, TARGETS

A thin facade: names are imported from their modules on first use, so reading `targets` (campaign definitions,
`campaign status`) does not load scikit-learn and XGBoost.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "flexpredict.predictors.base": ("PREDICTORS", "Predictor", "pair_keys"),
    "flexpredict.predictors.lookup": ("LookupMedianPredictor",),
    "flexpredict.predictors.public_recipe": ("PublicRecipePredictor",),
    "flexpredict.predictors.roofline": ("RooflinePredictor",),
    "flexpredict.predictors.siblings": ("ModelRooflinePredictor", "SiblingRooflinePredictor"),
    "flexpredict.predictors.targets": ("TARGETS", "Target"),
    "flexpredict.predictors.xgboost_model": ("XGBoostPredictor",),
}
__getattr__, __all__ = lazy_exports("flexpredict.predictors", _EXPORTS)
