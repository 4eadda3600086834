"""Feature layer: catalog joins and physics (`physics`), and the scikit-learn transformer (`RecordFeaturizer`).

`RecordFeaturizer` is imported on first use: importing scikit-learn costs most of a second, and the fast paths
(`recommend` from remembered scores, catalog lookups) need only the physics.
"""

from ..lazy import lazy_exports
from .physics import physics as physics
from .physics import resolve_accelerator as resolve_accelerator
from .physics import roofline as roofline

__getattr__, _lazy = lazy_exports("flexpredict.features", {"flexpredict.features.transformer": ("RecordFeaturizer",)})
__all__ = sorted(_lazy + ["physics", "resolve_accelerator", "roofline"])
