"""Features: catalog physics joined onto records, and the scikit-learn transformer predictors learn from."""

from .physics import physics, resolve_accelerator, roofline
from .transformer import RecordFeaturizer

__all__ = ["RecordFeaturizer", "physics", "resolve_accelerator", "roofline"]
