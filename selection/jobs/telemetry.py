"""GPU telemetry from NVML (nvidia-ml-py), sampled at most once a second; absent NVML = empty list.

Only the GPUs the job can see are reported: NVML lists every GPU of the machine, so
CUDA_VISIBLE_DEVICES (indices, GPU UUIDs or their unique prefixes) picks them. Indices are
NVML's (PCI bus) order, which is CUDA's only with CUDA_DEVICE_ORDER=PCI_BUS_ID: set it when you
pin jobs by index on a machine with mixed GPU models.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Sequence
from typing import Any

NVML_AVAILABLE = importlib.util.find_spec("pynvml") is not None


def visible_devices(env: str | None, uuids: Sequence[str]) -> list[int]:
    """NVML indices of the GPUs a CUDA process sees, in its order (its device 0 first).

    `env` is CUDA_VISIBLE_DEVICES (None = unset = all); `uuids` are NVML's UUIDs by index. As
    CUDA does, the list stops at the first entry that names no device; MIG entries are not
    resolved here (their parent GPU is not reported).
    """
    if env is None:
        return list(range(len(uuids)))
    out: list[int] = []
    for raw in env.split(","):
        item = raw.strip()
        if item.isdigit():
            idx = int(item)
            if idx >= len(uuids):
                break
        elif item.startswith("GPU-"):
            hits = [i for i, u in enumerate(uuids) if u.startswith(item)]
            if len(hits) != 1:
                break
            idx = hits[0]
        else:  # "", "-1", "MIG-...": nothing (more) that NVML can name
            break
        if idx not in out:
            out.append(idx)
    return out


class GpuSampler:
    """Per-device utilisation, memory and power; returns [] (never raises) without NVML or a GPU."""

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self.min_interval_s = min_interval_s
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._visible: list[int] = []  # NVML index of each handle; "index" is the job's own
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
            every = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in every]
            self._visible = visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"), uuids)
            self._handles = [every[i] for i in self._visible]
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
        self._last = [
            {**d, "nvml_index": self._visible[i]}
            for i, h in enumerate(self._handles)
            if (d := self._device(i, h))
        ]
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
            "name": _text(name),
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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
