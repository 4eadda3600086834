"""Predictors behind one interface (fit / predict / predict_interval / save / load), one module each.

from flexpredict.predictors import PREDICTORS, XGBoostPredictor, TARGETS
"""

from .base import PREDICTORS, Predictor, pair_keys
from .lookup import LookupMedianPredictor
from .public_recipe import PublicRecipePredictor
from .roofline import RooflinePredictor
from .siblings import ModelRooflinePredictor, SiblingRooflinePredictor
from .targets import TARGETS, Target
from .xgboost_model import XGBoostPredictor

__all__ = [
    "PREDICTORS",
    "LookupMedianPredictor",
    "ModelRooflinePredictor",
    "Predictor",
    "PublicRecipePredictor",
    "RooflinePredictor",
    "SiblingRooflinePredictor",
    "TARGETS",
    "Target",
    "XGBoostPredictor",
    "pair_keys",
]
