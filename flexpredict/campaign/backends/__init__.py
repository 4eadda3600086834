"""Measurement backends, one module each: `replay` (a held dataset answers) and `bench` (vLLM through LoadGen)."""

from .base import REGISTRY, Measurement, MeasurementBackend, create_backend, register

__all__ = ["REGISTRY", "Measurement", "MeasurementBackend", "create_backend", "register"]
