"""Feature layer: catalog joins and physics (`physics`), and the scikit-learn transformer (`RecordFeaturizer`).

`RecordFeaturizer` is imported on first use: importing scikit-learn costs most of a second, and the fast paths
(`recommend` from remembered scores, catalog lookups) need only the physics.
"""

from .physics import physics, resolve_accelerator, roofline

__all__ = ["RecordFeaturizer", "physics", "resolve_accelerator", "roofline"]


def __getattr__(name: str):
    if name == "RecordFeaturizer":
        from .transformer import RecordFeaturizer

        return RecordFeaturizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
