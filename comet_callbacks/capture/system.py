"""Host, process, package and GPU details for ``write/experiment/system-details`` (WIRE #33).

Everything here is best effort: each item that fails is omitted, logged once at debug level
on the ``comet_callbacks.capture`` logger, and never raised to the caller. A container with a
restricted ``/proc``, a missing ``dpkg`` or no NVML just means fewer keys.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import psutil

logger = logging.getLogger("comet_callbacks.capture")

_OS_PACKAGES_TIMEOUT_S = 10.0


def _try(key: str, fn: Callable[[], Any], out: dict[str, Any]) -> None:
    """Store ``fn()`` under ``key``; on any error omit the key with one debug log."""
    try:
        out[key] = fn()
    except Exception as exc:  # best effort by contract
        logger.debug("system details: %s unavailable: %r", key, exc)


def _ipv4_addresses() -> list[str]:
    """All IPv4 addresses of local interfaces, non-loopback first (no network traffic)."""
    addrs: list[str] = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family == socket.AF_INET and entry.address and entry.address not in addrs:
                addrs.append(entry.address)
    addrs.sort(key=lambda a: a.startswith("127."))  # stable: keeps interface order otherwise
    return addrs


def _primary_ip() -> str:
    """The first non-loopback IPv4 address, else ``127.0.0.1``.

    Deliberately not the UDP-connect trick: that is a network call and may hang offline.
    """
    for addr in _ipv4_addresses():
        if not addr.startswith("127."):
            return addr
    return "127.0.0.1"


def collect_host_details() -> dict[str, Any]:
    """Host and process keys of write #33, in camelCase; failed items are omitted."""
    out: dict[str, Any] = {}
    _try("user", getpass.getuser, out)
    _try("pythonVersion", platform.python_version, out)
    _try("pythonVersionVerbose", lambda: sys.version, out)
    _try("pid", os.getpid, out)
    _try("osType", platform.system, out)
    _try("os", platform.platform, out)
    _try("osRelease", platform.release, out)
    _try("machine", platform.machine, out)
    _try("processor", platform.processor, out)
    _try("hostname", socket.gethostname, out)
    _try("ip", _primary_ip, out)
    _try("networkInterfaceIps", _ipv4_addresses, out)
    _try("command", lambda: [str(a) for a in sys.argv], out)
    _try("executable", lambda: sys.executable, out)
    return out


def collect_installed_packages() -> list[str]:
    """Sorted, de-duplicated ``name==version`` of the installed Python distributions."""
    try:
        found: set[str] = set()
        for dist in importlib.metadata.distributions():
            try:
                name = dist.metadata["Name"]
            except Exception:
                name = None
            if name:
                found.add(f"{name}=={dist.version}")
        return sorted(found, key=str.lower)
    except Exception as exc:
        logger.debug("system details: installed packages unavailable: %r", exc)
        return []


def _run_lines(cmd: list[str]) -> list[str]:
    """Stripped, non-empty stdout lines of ``cmd`` (short timeout; raises on failure)."""
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=_OS_PACKAGES_TIMEOUT_S,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def collect_os_packages() -> list[str]:
    """OS packages as sorted ``name==version`` strings via dpkg or rpm; [] if unavailable."""
    try:
        if shutil.which("dpkg-query"):
            lines = _run_lines(["dpkg-query", "-W", "-f=${Package}==${Version}\\n"])
        elif shutil.which("rpm"):
            lines = _run_lines(["rpm", "-qa", "--queryformat", "%{NAME}==%{VERSION}-%{RELEASE}\\n"])
        else:
            logger.debug("system details: no dpkg-query or rpm; OS packages skipped")
            return []
        return sorted(set(lines))
    except Exception as exc:
        logger.debug("system details: OS packages unavailable: %r", exc)
        return []


# --- NVML -------------------------------------------------------------------------------------
# pynvml (nvidia-ml-py) is optional. It is imported and initialised at most once per process,
# under a lock, and the outcome (module or None) is cached so a machine without GPUs pays the
# failed import only once.

_nvml_lock = threading.Lock()
_nvml_state: dict[str, Any] = {"tried": False, "module": None}


def _nvml() -> Any | None:
    """The initialised ``pynvml`` module, or None when it or a driver is unavailable."""
    if _nvml_state["tried"]:
        return _nvml_state["module"]
    with _nvml_lock:
        if not _nvml_state["tried"]:
            try:
                import pynvml  # type: ignore[import-not-found]

                pynvml.nvmlInit()
                _nvml_state["module"] = pynvml
            except Exception as exc:
                logger.debug("GPU capture skipped: NVML unavailable: %r", exc)
            _nvml_state["tried"] = True
    return _nvml_state["module"]


def _text(value: Any) -> str:
    """NVML returns bytes in older bindings and str in newer ones."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def collect_gpu_static_info() -> list[dict[str, Any]]:
    """Per GPU ``{gpuIndex, name, uuid, totalMemory (bytes), powerLimit (mW)}``; [] without NVML."""
    nv = _nvml()
    if nv is None:
        return []
    try:
        gpus: list[dict[str, Any]] = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            info: dict[str, Any] = {"gpuIndex": index}
            _try("name", lambda h=handle: _text(nv.nvmlDeviceGetName(h)), info)
            _try("uuid", lambda h=handle: _text(nv.nvmlDeviceGetUUID(h)), info)
            _try("totalMemory", lambda h=handle: int(nv.nvmlDeviceGetMemoryInfo(h).total), info)
            _try("powerLimit", lambda h=handle: int(nv.nvmlDeviceGetPowerManagementLimit(h)), info)
            gpus.append(info)
        return gpus
    except Exception as exc:
        logger.debug("GPU static info unavailable: %r", exc)
        return []


def collect_gpu_metrics() -> list[dict[str, int]]:
    """Per GPU ``{gpuId, freeMemory, usedMemory, gpuUtilization, totalMemory}``, all ints.

    [] without NVML; a failure is logged once (this runs on every monitor tick).
    """
    nv = _nvml()
    if nv is None:
        return []
    try:
        gpus: list[dict[str, int]] = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            try:
                util = int(nv.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:  # some GPUs (e.g. MIG slices) do not report utilisation
                util = 0
            gpus.append(
                {
                    "gpuId": index,
                    "freeMemory": int(mem.free),
                    "usedMemory": int(mem.used),
                    "gpuUtilization": util,
                    "totalMemory": int(mem.total),
                }
            )
        return gpus
    except Exception as exc:
        # Sampled periodically: log the first failure only.
        if not _nvml_state.get("metrics_failed"):
            _nvml_state["metrics_failed"] = True
            logger.debug("GPU metrics unavailable: %r", exc)
        return []


def has_gpus() -> bool:
    """True when NVML is usable and reports at least one device."""
    nv = _nvml()
    if nv is None:
        return False
    try:
        return int(nv.nvmlDeviceGetCount()) > 0
    except Exception as exc:
        logger.debug("GPU count unavailable: %r", exc)
        return False
