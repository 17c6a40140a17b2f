"""Host, process, package and GPU details for ``write/experiment/system-details`` (WIRE #33).

Everything here is best effort: each item that fails is omitted, logged once at debug level
on the ``comet_callbacks.capture`` logger, and never raised to the caller. A container with a
restricted ``/proc``, a missing ``dpkg`` or no NVML just means fewer keys.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("comet_callbacks.capture")

_OS_PACKAGES_TIMEOUT_S = 10.0


def _try(key: str, fn: Callable[..., Any], out: dict[str, Any], *args: Any) -> None:
    """Store ``fn()`` under ``key``; on any error omit the key with one debug log."""
    try:
        out[key] = fn(*args)
    except Exception as exc:  # best effort by contract
        logger.debug("system details: %s unavailable: %r", key, exc)


def _ipv4_addresses() -> list[str]:
    """All IPv4 addresses of local interfaces, non-loopback first (no network traffic)."""
    import socket

    import psutil

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
    import getpass
    import platform
    import socket

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


def _metadata_header(path: str) -> tuple[str | None, str | None] | None:
    """``(Name, Version)`` from the header block of a metadata file; None if unreadable.

    Reads only up to the two headers (they open every ``METADATA``/``PKG-INFO``), instead of
    handing the whole file (long descriptions included) to the ``email`` parser as
    ``importlib.metadata`` does; the values are the ones it would return.
    """
    name: str | None = None
    version: str | None = None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break  # end of the header block
                if line[0] in " \t":
                    continue  # a folded continuation line
                key, sep, value = line.partition(":")
                if not sep:
                    break
                key = key.strip().lower()
                if key == "name" and name is None:
                    name = value.strip()
                elif key == "version" and version is None:
                    version = value.strip()
                if name is not None and version is not None:
                    break
    except OSError:
        return None
    return name, version


def _dist_metadata(info: str) -> tuple[str | None, str | None] | None:
    """``(Name, Version)`` of one ``*.dist-info``/``*.egg-info`` entry (folder or file)."""
    if os.path.isdir(info):
        for file in ("METADATA", "PKG-INFO"):
            found = _metadata_header(os.path.join(info, file))
            if found is not None:
                return found
        return None
    return _metadata_header(info)  # a legacy single-file ``*.egg-info``


def _scan_path_entry(entry: str, found: set[str]) -> None:
    """Add ``name==version`` of the distributions in one ``sys.path`` folder to ``found``.

    The same search as ``importlib.metadata`` (``*.dist-info``/``*.egg-info`` children, and
    ``EGG-INFO`` inside a ``*.egg`` folder); a zip entry falls back to ``importlib.metadata``.
    """
    root = entry or "."
    try:
        children = os.listdir(root)
    except NotADirectoryError:
        import importlib.metadata  # rare (zipped eggs): the slow, general path

        for dist in importlib.metadata.distributions(path=[entry]):
            try:
                name = dist.metadata["Name"]
            except Exception:
                name = None
            if name:
                found.add(f"{name}=={dist.version}")
        return
    except OSError:
        return
    is_egg = os.path.basename(root).lower().endswith(".egg")
    for child in children:
        low = child.lower()
        if low.endswith((".dist-info", ".egg-info")) or (is_egg and low == "egg-info"):
            meta = _dist_metadata(os.path.join(root, child))
            if meta is not None and meta[0]:
                found.add(f"{meta[0]}=={meta[1]}")


_packages_cache: dict[tuple[str, ...], list[str]] = {}


def collect_installed_packages() -> list[str]:
    """Sorted, de-duplicated ``name==version`` of the installed Python distributions.

    Cached per process for a given ``sys.path`` (a fit pays the scan once, not every time):
    a package installed while the process runs shows up only with a changed ``sys.path``.
    """
    key = tuple(sys.path)
    cached = _packages_cache.get(key)
    if cached is not None:
        return list(cached)
    try:
        found: set[str] = set()
        for entry in key:
            if isinstance(entry, str):
                _scan_path_entry(entry, found)
        packages = sorted(found, key=str.lower)
    except Exception as exc:
        logger.debug("system details: installed packages unavailable: %r", exc)
        return []
    _packages_cache[key] = packages
    return list(packages)


def _run_lines(cmd: list[str]) -> list[str]:
    """Stripped, non-empty stdout lines of ``cmd`` (short timeout; raises on failure)."""
    import subprocess

    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=_OS_PACKAGES_TIMEOUT_S,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


#: package databases whose change time tells that the OS package list changed
_OS_PACKAGE_DBS = {"dpkg-query": "/var/lib/dpkg/status", "rpm": "/var/lib/rpm"}
_os_packages_cache: dict[tuple[Any, ...], list[str]] = {}


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def collect_os_packages() -> list[str]:
    """OS packages as sorted ``name==version`` strings via dpkg or rpm; [] if unavailable.

    Cached per process while the package database is unchanged (its modification time): the
    query costs a subprocess and ~10 ms of CPU, on every fit otherwise.
    """
    import shutil

    try:
        if shutil.which("dpkg-query"):
            tool = "dpkg-query"
            cmd = ["dpkg-query", "-W", "-f=${Package}==${Version}\\n"]
        elif shutil.which("rpm"):
            tool = "rpm"
            cmd = ["rpm", "-qa", "--queryformat", "%{NAME}==%{VERSION}-%{RELEASE}\\n"]
        else:
            logger.debug("system details: no dpkg-query or rpm; OS packages skipped")
            return []
        key = (shutil.which(tool), _mtime_ns(_OS_PACKAGE_DBS[tool]))
        cached = _os_packages_cache.get(key) if key[1] is not None else None
        if cached is not None:
            return list(cached)
        packages = sorted(set(_run_lines(cmd)))
        _os_packages_cache[key] = packages
        return list(packages)
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
            _try("name", lambda h: _text(nv.nvmlDeviceGetName(h)), info, handle)
            _try("uuid", lambda h: _text(nv.nvmlDeviceGetUUID(h)), info, handle)
            _try("totalMemory", lambda h: int(nv.nvmlDeviceGetMemoryInfo(h).total), info, handle)
            _try("powerLimit", lambda h: int(nv.nvmlDeviceGetPowerManagementLimit(h)), info, handle)
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
