"""System details: real values from this machine, and graceful degradation."""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import sys

import psutil
import pytest

from comet_callbacks.capture import system
from comet_callbacks.capture.system import (
    collect_gpu_metrics,
    collect_gpu_static_info,
    collect_host_details,
    collect_installed_packages,
    collect_os_packages,
)

HOST_KEYS = {
    "user": str,
    "pythonVersion": str,
    "pythonVersionVerbose": str,
    "pid": int,
    "osType": str,
    "os": str,
    "osRelease": str,
    "machine": str,
    "processor": str,
    "hostname": str,
    "ip": str,
    "networkInterfaceIps": list,
    "command": list,
    "executable": str,
}


def test_host_details_keys_and_types() -> None:
    details = collect_host_details()
    assert set(details) == set(HOST_KEYS)
    for key, typ in HOST_KEYS.items():
        assert isinstance(details[key], typ), key
    assert details["pid"] == os.getpid()
    assert details["pythonVersion"] == platform.python_version()
    assert details["pythonVersionVerbose"] == sys.version
    assert details["osType"] == platform.system()
    assert details["command"] == sys.argv
    assert details["executable"] == sys.executable
    assert all(isinstance(a, str) and a.count(".") == 3 for a in details["networkInterfaceIps"])
    assert details["ip"] in details["networkInterfaceIps"] or details["ip"] == "127.0.0.1"
    if any(not a.startswith("127.") for a in details["networkInterfaceIps"]):
        assert not details["ip"].startswith("127.")


def test_host_details_degrade_per_item(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """psutil failing (restricted container) drops only the network keys."""

    def denied() -> None:
        raise PermissionError("no /proc/net")

    monkeypatch.setattr(psutil, "net_if_addrs", denied)
    with caplog.at_level(logging.DEBUG, logger="comet_callbacks.capture"):
        details = collect_host_details()
    assert "ip" not in details and "networkInterfaceIps" not in details
    assert details["pid"] == os.getpid() and "hostname" in details
    assert len(caplog.records) == 2
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_installed_packages() -> None:
    packages = collect_installed_packages()
    assert f"psutil=={psutil.__version__}" in packages
    assert packages == sorted(packages, key=str.lower)
    assert all("==" in p for p in packages)
    assert len(packages) == len(set(packages))


def test_installed_packages_same_as_importlib_metadata(
    tmp_path: os.PathLike, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast scan lists exactly what ``importlib.metadata`` reports (names as in the
    metadata, not as in folder names), including a legacy egg-info file and a zipped path."""
    import importlib.metadata
    import zipfile

    extra = os.path.join(tmp_path, "extra")
    os.makedirs(os.path.join(extra, "Odd_Name-1.0.dist-info"))
    with open(os.path.join(extra, "Odd_Name-1.0.dist-info", "METADATA"), "w") as fh:
        fh.write("Metadata-Version: 2.1\nName: odd-Name\nVersion: 1.0\n\nName: not-this\n")
    with open(os.path.join(extra, "legacy.egg-info"), "w") as fh:
        fh.write("Metadata-Version: 1.0\nName: Legacy\nVersion: 0.3\n")
    zipped = os.path.join(tmp_path, "z.zip")
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("zpkg-2.0.dist-info/METADATA", "Name: zpkg\nVersion: 2.0\n")
    monkeypatch.setattr(sys, "path", [*sys.path, extra, zipped])

    expected = set()
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"]:
            expected.add(f"{dist.metadata['Name']}=={dist.version}")
    packages = collect_installed_packages()
    assert packages == sorted(expected, key=str.lower)
    assert {"odd-Name==1.0", "Legacy==0.3", "zpkg==2.0"} <= set(packages)
    # cached per sys.path: the second call is the same list (a copy the caller may change)
    again = collect_installed_packages()
    assert again == packages and again is not packages


def test_os_packages_best_effort() -> None:
    packages = collect_os_packages()
    assert isinstance(packages, list)
    if os.path.exists("/var/lib/dpkg/status"):
        assert packages, "dpkg is present, so packages should be listed"
        assert all("==" in p for p in packages)
        assert any(p.startswith(("libc6==", "base-files==", "dpkg==")) for p in packages)


def test_os_packages_without_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert collect_os_packages() == []


def test_os_packages_queried_again_only_when_the_database_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike
) -> None:
    """A fake ``dpkg-query`` counts its runs: a second fit reuses the list, a changed package
    database (its modification time) runs the query again."""
    bin_dir, calls, db = (os.path.join(tmp_path, n) for n in ("bin", "calls", "status"))
    os.makedirs(bin_dir)
    with open(os.path.join(bin_dir, "dpkg-query"), "w") as fh:
        fh.write(f"#!/bin/sh\necho run >> {calls}\nprintf 'zlib==1\\nbash==5\\nzlib==1\\n'\n")
    os.chmod(os.path.join(bin_dir, "dpkg-query"), 0o755)
    with open(db, "w") as fh:
        fh.write("v1")
    monkeypatch.setenv("PATH", bin_dir)
    monkeypatch.setitem(system._OS_PACKAGE_DBS, "dpkg-query", db)

    def runs() -> int:
        with open(calls) as fh:
            return len(fh.readlines())

    assert collect_os_packages() == ["bash==5", "zlib==1"]
    assert collect_os_packages() == ["bash==5", "zlib==1"] and runs() == 1
    os.utime(db, ns=(0, os.stat(db).st_mtime_ns + 10**9))
    assert collect_os_packages() == ["bash==5", "zlib==1"] and runs() == 2


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is not None, reason="NVML installed")
def test_gpu_lists_empty_without_nvml(caplog: pytest.LogCaptureFixture) -> None:
    system._nvml_state.update(tried=False, module=None)  # forget any earlier attempt
    with caplog.at_level(logging.DEBUG, logger="comet_callbacks.capture"):
        assert collect_gpu_static_info() == []
        assert collect_gpu_metrics() == []
        assert collect_gpu_metrics() == []
        assert system.has_gpus() is False
    nvml_logs = [r for r in caplog.records if "NVML" in r.getMessage()]
    assert len(nvml_logs) == 1  # the failed import is tried and logged once


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="needs nvidia-ml-py")
def test_gpu_info_with_nvml() -> None:
    static = collect_gpu_static_info()
    metrics = collect_gpu_metrics()
    assert len(static) == len(metrics)
    for s, m in zip(static, metrics, strict=True):
        assert s["gpuIndex"] == m["gpuId"]
        assert isinstance(s["name"], str) and isinstance(s["uuid"], str)
        assert s["totalMemory"] == m["totalMemory"] > 0
        assert isinstance(s["powerLimit"], int)
        assert all(isinstance(v, int) for v in m.values())
        assert m["freeMemory"] + m["usedMemory"] <= m["totalMemory"]
