"""The embedded benchmark: MLPerf LoadGen against an inference engine, producing records of the dataset schema.

A thin facade: names are imported from their modules on first use, so `import flexpredict.bench` (and the main CLI)
starts without loading LoadGen and the HTTP clients.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "flexpredict.bench.base": (
        "REGISTRY",
        "Backend",
        "BenchError",
        "Completion",
        "EngineInfo",
        "create_backend",
        "register",
    ),
    "flexpredict.bench.engine_env": ("EngineSetupError", "setup_engine"),
    "flexpredict.bench.memory": ("KvCachePlan", "ModelDoesNotFit", "plan_cpu_kv_cache"),
    "flexpredict.bench.prompts": ("PromptSet", "PromptSetError", "load_prompts", "synthetic_prompts"),
    "flexpredict.bench.runner": ("RunConfig", "run_benchmark", "run_sweep"),
    "flexpredict.bench.slo": ("Slo", "resolve_slo"),
    "flexpredict.bench.system": ("PowerSampler", "SystemInfo", "capture_system"),
    "flexpredict.bench.tiny_model": ("make_tiny_model",),
    "flexpredict.bench.openai_endpoint": ("OpenAIEndpoint",),
    "flexpredict.bench.vllm_server": ("VllmServer",),
}
__getattr__, __all__ = lazy_exports("flexpredict.bench", _EXPORTS)
