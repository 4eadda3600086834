"""What the benchmark ran on, and how much power it drew.

The record carries the same hardware/software fields as an MLPerf system description (accelerator, host CPU, memory,
software stack), so own runs and MLPerf results can be learned from together. Power: GPU board power through NVML
and CPU package power through RAPL (/sys/class/powercap), each where the machine exposes it.
"""

from __future__ import annotations

import os
import platform
import socket
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")


@dataclass
class SystemInfo:
    hostname: str
    host_cpu: str
    host_sockets: int
    host_cores_per_socket: int
    host_memory_gb: float
    operating_system: str
    gpus: list[dict] = field(default_factory=list)
    """One {name, memory_gb} per visible NVIDIA GPU (NVML); empty on CPU-only hosts."""
    driver: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def cpu_only(self) -> bool:
        return not self.gpus


def capture_system() -> SystemInfo:
    cpu, sockets, cores = _cpu()
    gpus, driver = _nvml_gpus()
    return SystemInfo(
        hostname=socket.gethostname(),
        host_cpu=cpu,
        host_sockets=sockets,
        host_cores_per_socket=cores,
        host_memory_gb=_memory_gb(),
        operating_system=_os_name(),
        gpus=gpus,
        driver=driver,
        versions={
            name: version
            for name in ("flexpredict", "mlcommons-loadgen", "nvidia-ml-py")
            if (version := _version(name))
        }
        | {"python": platform.python_version()},
    )


def _cpu() -> tuple[str, int, int]:
    """(model name, sockets, cores per socket) from /proc/cpuinfo; platform fallbacks elsewhere."""
    name, sockets, cores = None, set(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and name is None:
                name = value
            elif key == "physical id":
                sockets.add(value)
            elif key == "cpu cores" and cores is None:
                cores = int(value)
    except OSError:
        pass
    n_sockets = max(len(sockets), 1)
    return (
        name or platform.processor() or platform.machine(),
        n_sockets,
        cores or max((os.cpu_count() or 1) // n_sockets, 1),
    )


def _memory_gb() -> float:
    """MemTotal in GiB (memory capacities are quoted in binary units, as in MLPerf system descriptions)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _nvml():
    """pynvml, initialised; None without nvidia-ml-py or an NVIDIA driver (a CPU-only host)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    return pynvml


def _nvml_gpus() -> tuple[list[dict], str | None]:
    pynvml = _nvml()
    if pynvml is None:
        return [], None
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(
                {
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "memory_gb": round(pynvml.nvmlDeviceGetMemoryInfo(handle).total / 1e9, 1),
                }
            )
        driver = pynvml.nvmlSystemGetDriverVersion()
        return gpus, driver.decode() if isinstance(driver, bytes) else driver
    finally:
        pynvml.nvmlShutdown()


class PowerSampler:
    """Samples GPU power (NVML) and CPU package energy (RAPL) in a background thread while a run is going."""

    def __init__(self, interval_s: float = 0.5, powercap: Path = POWERCAP):
        self.interval_s = interval_s
        self.rapl = _rapl_domains(powercap)
        self._pynvml: Any = None  # the pynvml module once NVML is up
        self._gpu_handles: list = []
        self._gpu_watts: list[float] = []
        self._rapl_uj = {path: 0 for path in self.rapl}
        self._last: dict[Path, int | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = self._t1 = 0.0

    def __enter__(self) -> PowerSampler:
        self._pynvml = _nvml()
        if self._pynvml is not None:
            count = self._pynvml.nvmlDeviceGetCount()
            self._gpu_handles = [self._pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        self._last = {path: _read_int(path / "energy_uj") for path in self.rapl}
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._t1 = time.monotonic()
        if self._pynvml is not None:
            self._pynvml.nvmlShutdown()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        if self._gpu_handles:
            try:
                watts = sum(self._pynvml.nvmlDeviceGetPowerUsage(h) for h in self._gpu_handles) / 1000
                self._gpu_watts.append(watts)
            except self._pynvml.NVMLError:
                pass  # a missed sample: the average comes from the others
        for path, max_uj in self.rapl.items():
            now, last = _read_int(path / "energy_uj"), self._last[path]
            if now is None or last is None:
                continue
            delta = now - last
            self._rapl_uj[path] += delta if delta >= 0 else delta + max_uj  # the counter wrapped
            self._last[path] = now

    def summary(self) -> dict:
        """Average watts per source and in total (None where nothing could be read)."""
        elapsed = max(self._t1 - self._t0, 1e-9)
        gpu_w = sum(self._gpu_watts) / len(self._gpu_watts) if self._gpu_watts else None
        cpu_w = sum(self._rapl_uj.values()) / 1e6 / elapsed if self.rapl else None
        present = [w for w in (gpu_w, cpu_w) if w is not None]
        return {
            "power_w": sum(present) if present else None,
            "gpu_w": gpu_w,
            "cpu_package_w": cpu_w,
            "gpu_samples": len(self._gpu_watts),
            "rapl_domains": [p.name for p in self.rapl],
            "duration_s": round(elapsed, 3),
            "interval_s": self.interval_s,
        }


def _rapl_domains(root: Path) -> dict[Path, int]:
    """Readable top-level RAPL package domains (intel-rapl:N, not its sub-zones) -> counter range in uJ."""
    domains = {}
    for zone in sorted(root.glob("intel-rapl:*")) if root.is_dir() else []:
        if zone.name.count(":") != 1:
            continue
        energy, limit = _read_int(zone / "energy_uj"), _read_int(zone / "max_energy_range_uj")
        if energy is not None and limit:
            domains[zone] = limit
    return domains


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
