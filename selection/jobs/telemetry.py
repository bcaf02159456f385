"""GPU telemetry from NVML (nvidia-ml-py), sampled at most once a second; absent NVML = empty list."""

from __future__ import annotations

import contextlib
import importlib.util
import time
from typing import Any

NVML_AVAILABLE = importlib.util.find_spec("pynvml") is not None


class GpuSampler:
    """Per-device utilisation, memory and power; returns [] (never raises) without NVML or a GPU."""

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self.min_interval_s = min_interval_s
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._last_t = -1e18
        self._last: list[dict[str, Any]] = []
        self._started = False

    def _start(self) -> None:
        self._started = True
        if not NVML_AVAILABLE:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            self._nvml = pynvml
        except Exception:  # no driver / no device: telemetry is optional, the job goes on
            self._nvml = None
            self._handles = []

    def sample(self) -> list[dict[str, Any]]:
        if not self._started:
            self._start()
        if self._nvml is None:
            return []
        now = time.monotonic()
        if now - self._last_t < self.min_interval_s:
            return self._last
        self._last_t = now
        self._last = [d for i, h in enumerate(self._handles) if (d := self._device(i, h))]
        return self._last

    def _device(self, index: int, handle: Any) -> dict[str, Any] | None:
        nv = self._nvml
        try:
            name = nv.nvmlDeviceGetName(handle)
            util = nv.nvmlDeviceGetUtilizationRates(handle)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
        except Exception:
            return None
        try:
            power_w: float | None = nv.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except Exception:  # some boards do not report power
            power_w = None
        return {
            "index": index,
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "util": int(util.gpu),
            "mem_used": float(mem.used),
            "mem_total": float(mem.total),
            "power_w": power_w,
        }

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None
