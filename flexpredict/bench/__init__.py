"""The embedded benchmark: MLPerf LoadGen against an inference engine, producing records of the dataset schema.

A thin facade: names are imported from their modules on first use, so `import flexpredict.bench` (and the main CLI)
works without the benchmark's optional dependencies (`pip install 'flexpredict[bench]'`).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "flexpredict.bench.base": ("REGISTRY", "Backend", "BenchError", "Completion", "EngineInfo", "create_backend",
                               "register"),
    "flexpredict.bench.engine_env": ("EngineSetupError", "setup_engine"),
    "flexpredict.bench.prompts": ("PromptSet", "PromptSetError", "load_prompts"),
    "flexpredict.bench.runner": ("RunConfig", "append_records", "run_benchmark", "run_sweep"),
    "flexpredict.bench.slo": ("Slo", "resolve_slo"),
    "flexpredict.bench.system": ("PowerSampler", "SystemInfo", "capture_system"),
    "flexpredict.bench.tiny_model": ("make_tiny_model",),
    "flexpredict.bench.openai_endpoint": ("OpenAIEndpoint",),
    "flexpredict.bench.vllm_server": ("VllmServer",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'flexpredict.bench' has no attribute '{name}'")
    return getattr(importlib.import_module(_WHERE[name]), name)
