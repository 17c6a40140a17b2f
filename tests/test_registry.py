"""Model registry: ``Experiment.register_model`` and :class:`comet_callbacks.registry.Registry`.

All checks read back what the local server stored (``reader.registry_details``, the assets of
each version's experiment model); webhooks are received by a real HTTP listener on loopback.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from modelfiles import make_model_folder, stored_model_files
from quiet import quiet

from comet_callbacks import Experiment
from comet_callbacks.config import Settings
from comet_callbacks.registry import (
    Registry,
    RegistryError,
    next_version,
    normalize_registry_name,
    parse_semver,
    register,
)
from comet_callbacks.rest.client import RestClient
from comet_callbacks.upload import upload_run

#: Start-up capture off: these tests are about the registry, and the box is busy.
QUIET: dict[str, Any] = quiet()


# --------------------------------------------------------------------------- helpers


class WebhookReceiver:
    """A loopback HTTP listener recording every POST (headers and JSON body)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self._cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._cond:
                    outer.calls.append(
                        (
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(body or b"{}"),
                        )
                    )
                    outer._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[str, dict[str, str], dict]]:
        """Wait until ``n`` notifications ``(path, headers, body)`` arrived (or fail)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.calls) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.calls)} of {n} webhook calls arrived"
                self._cond.wait(left)
            return list(self.calls)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Any:
    rcv = WebhookReceiver()
    try:
        yield rcv
    finally:
        rcv.close()


def logged_experiment(folder: Path, model: str = "My Model_v2!", **kw: Any) -> Experiment:
    """A running experiment that logged ``folder`` as model ``model``."""
    exp = Experiment(project_name="registry", **QUIET, **kw)
    exp.log_model(model, folder)
    return exp


def files_of_version(reader: Any, version: dict[str, Any]) -> dict[str, bytes]:
    """The files of the experiment model a registry version points to, read from the server."""
    return stored_model_files(reader, version["experimentModel"]["experimentKey"])


# --------------------------------------------------------------------------- pure helpers


def test_normalize_parse_and_next_version() -> None:
    assert normalize_registry_name("My Model_v2!") == "my-model-v2"
    assert normalize_registry_name("--A  b__C--") == "a-b-c"
    with pytest.raises(RegistryError, match="no letters or digits"):
        normalize_registry_name("!!!")
    assert parse_semver("1.2.3-rc.1+build.5") == (1, 2, 3, "rc.1")
    for bad in ("1.0", "01.0.0", "v1.0.0", "1.0.0.0", ""):
        with pytest.raises(RegistryError, match="not a SemVer"):
            parse_semver(bad)
    assert next_version([]) == "1.0.0"
    assert next_version(["1.0.0", "1.2.9", "1.10.0", "junk"]) == "1.10.1"
    assert next_version(["2.0.0-rc.1"]) == "2.0.1"


# --------------------------------------------------------------------------- register_model


def test_register_twice_gives_patch_versions_with_identical_files(
    comet_env, reader, tmp_path: Path
) -> None:
    run1 = make_model_folder(tmp_path / "a" / "net", seed=1)
    run2 = make_model_folder(tmp_path / "b" / "net", seed=2)
    results = []
    for folder in (tmp_path / "a" / "net", tmp_path / "b" / "net"):
        with logged_experiment(folder) as exp:
            results.append(exp.register_model("My Model_v2!", comment="nightly"))
    assert [r["version"] for r in results] == ["1.0.0", "1.0.1"]
    assert results[0].version == "1.0.0"
    assert results[0]["registry_name"] == results[1]["registry_name"] == "my-model-v2"
    assert results[0]["registry_model_id"] == results[1]["registry_model_id"]
    assert [m["modelName"] for m in reader.registry_models("local")] == ["my-model-v2"]
    details = reader.registry_details("local", "my-model-v2")
    versions = {v["version"]: v for v in details["versions"]}
    assert set(versions) == {"1.0.0", "1.0.1"}
    assert versions["1.0.0"]["registryModelItemId"] == results[0]["item_id"]
    assert versions["1.0.1"]["comment"] == "nightly"
    assert versions["1.0.0"]["experimentModel"]["experimentModelName"] == "My Model_v2!"
    assert files_of_version(reader, versions["1.0.0"]) == run1
    assert files_of_version(reader, versions["1.0.1"]) == run2
    assert run1 != run2


def test_register_explicit_version_stages_and_description(
    comet_env, reader, tmp_path: Path
) -> None:
    make_model_folder(tmp_path / "net")
    with logged_experiment(tmp_path / "net", model="clf") as exp:
        res = exp.register_model(
            "clf",
            version="2.1.0",
            registry_name="Prod Classifier",
            description="the classifier",
            public=True,
            stages=["staging"],
        )
        nxt = exp.register_model("clf", registry_name="Prod Classifier")
    assert res["version"] == "2.1.0" and nxt["version"] == "2.1.1"
    models = reader.registry_models("local")
    assert [(m["modelName"], m["description"], m["isPublic"]) for m in models] == [
        ("prod-classifier", "the classifier", True)
    ]
    stages = {
        v["version"]: v["stages"]
        for v in reader.registry_details("local", "prod-classifier")["versions"]
    }
    assert stages == {"2.1.0": ["staging"], "2.1.1": []}


def test_register_errors_raise_in_strict_mode(comet_env, reader, tmp_path: Path) -> None:
    make_model_folder(tmp_path / "net")
    with logged_experiment(tmp_path / "net", model="net", strict=True) as exp:
        with pytest.raises(RegistryError, match="'other' was never logged"):
            exp.register_model("other")
        with pytest.raises(RegistryError, match="not a SemVer"):
            exp.register_model("net", version="1.0")
        assert exp.register_model("net", version="1.0.0")["version"] == "1.0.0"
        with pytest.raises(RegistryError, match=r"1\.0\.0 .*already exists \(409\)"):
            exp.register_model("net", version="1.0.0")
        key = exp.key
    assert [v["version"] for v in reader.registry_details("local", "net")["versions"]] == ["1.0.0"]
    # the server-side checks of register(): no such experiment model; forbidden workspace
    comet_env.create_user("bob")
    with RestClient(comet_env.url, comet_env.api_key) as client:
        with pytest.raises(RegistryError, match="has no model named 'ghost' on the server"):
            register(client, "local", key, model_name="ghost")
        with pytest.raises(RegistryError, match=r"workspace 'bob'.*\(403\)"):
            register(client, "bob", key, model_name="net")


def test_register_errors_are_logged_not_raised_by_default(
    comet_env, reader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_model_folder(tmp_path / "net")
    with caplog.at_level(logging.ERROR, logger="comet_callbacks"):
        with logged_experiment(tmp_path / "net", model="net") as exp:
            assert exp.register_model("other") is None
            assert exp.register_model("net", version="one") is None
            assert exp.register_model("net", version="3.0.0")["version"] == "3.0.0"
            assert exp.register_model("net", version="3.0.0") is None
            exp.log_metric("still-logging", 1.0)  # the run goes on
            key = exp.key
    text = caplog.text
    assert "'other' was never logged" in text
    assert "'one' is not a SemVer" in text
    assert "already exists (409)" in text
    assert [v["version"] for v in reader.registry_details("local", "net")["versions"]] == ["3.0.0"]
    assert reader.metrics(key, "still-logging")[0]["metricValue"] == "1"


def test_offline_registration_is_performed_on_upload(comet_env, reader, tmp_path: Path) -> None:
    expected = make_model_folder(tmp_path / "net", seed=3)
    exp = Experiment(project_name="registry", mode="offline", **QUIET)
    exp.log_model("Offline Net", tmp_path / "net")
    assert exp.register_model("Offline Net", stages=["candidate"]) is None  # recorded only
    exp.end()
    assert reader.registry_models("local") == []
    res = upload_run(exp.offline_path)
    assert res.complete and res.failed == 0, res.errors
    details = reader.registry_details("local", "offline-net")
    [version] = details["versions"]
    assert version["version"] == "1.0.0" and version["stages"] == ["candidate"]
    assert version["experimentModel"]["experimentKey"] == res.experiment_key
    assert files_of_version(reader, version) == expected


# --------------------------------------------------------------------------- Registry


def test_registry_stages_and_webhook_with_header(
    comet_env, reader, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    make_model_folder(tmp_path / "net")
    reg = Registry.from_settings()
    assert reg.workspace == "local"  # the key's default workspace
    reg.set_webhooks(
        [{"url": receiver.url + "/hook", "header": {"X-Token": "s3cret"}}],
        model_name="My Model_v2!",
    )
    with logged_experiment(tmp_path / "net") as exp:
        exp.register_model("My Model_v2!", stages=["staging"])
    first = receiver.wait_for(1)
    assert first[0][0] == "/hook" and first[0][2]["addedStages"] == ["staging"]
    reg.add_stage("My Model_v2!", "1.0.0", "production")
    [v] = reader.registry_details("local", "my-model-v2")["versions"]
    assert v["stages"] == ["staging", "production"]
    _, headers, body = receiver.wait_for(2)[1]
    assert headers.get("x-token") == "s3cret"
    assert body["event"] == "registry-model-version-stages-changed"
    assert (body["modelName"], body["version"]) == ("my-model-v2", "1.0.0")
    assert body["addedStages"] == ["production"] and body["stages"] == ["staging", "production"]
    reg.remove_stage("my-model-v2", "1.0.0", "staging")
    [v] = reader.registry_details("local", "my-model-v2")["versions"]
    assert v["stages"] == ["production"]
    assert receiver.wait_for(3)[2][2]["removedStages"] == ["staging"]
    with pytest.raises(RegistryError, match="no stage 'archived'"):
        reg.remove_stage("my-model-v2", "1.0.0", "archived")
    reg.close()


def test_registry_webhooks_merge_vs_replace(
    comet_env, reader, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    make_model_folder(tmp_path / "net")
    reg = Registry(RestClient(comet_env.url, comet_env.api_key), "local")
    reg.set_webhooks(receiver.url + "/a")
    reg.set_webhooks([receiver.url + "/b"], model_name="net")  # POST: merged with /a
    with logged_experiment(tmp_path / "net", model="net") as exp:
        exp.register_model("net")
    reg.add_stage("net", "1.0.0", "staging")
    assert sorted(path for path, _, _ in receiver.wait_for(2)) == ["/a", "/b"]
    reg.set_webhooks({"url": receiver.url + "/c"}, replace=True)  # PUT: only /c is left
    reg.add_stage("net", "1.0.0", "production")
    receiver.wait_for(3)
    time.sleep(0.5)  # a (wrong) delivery to /a or /b would arrive now
    assert len(receiver.calls) == 3
    assert receiver.calls[2][0] == "/c"
    assert receiver.calls[2][2]["addedStages"] == ["production"]
    with pytest.raises(RegistryError, match="expected a URL"):
        reg.set_webhooks([42])  # type: ignore[list-item]
    reg.client.close()


def test_registry_management_by_name(comet_env, reader, tmp_path: Path) -> None:
    make_model_folder(tmp_path / "net")
    with logged_experiment(tmp_path / "net", model="net") as exp:
        exp.register_model("net")
        exp.register_model("net")
        exp.register_model("net", registry_name="other")
    client = RestClient(comet_env.url, comet_env.api_key)
    with Registry(client, "local") as reg:
        assert sorted(m["modelName"] for m in reg.list()) == ["net", "other"]
        details = reg.get("NET")
        assert [v["version"] for v in details["versions"]] == ["1.0.0", "1.0.1"]

        reg.update_version("net", "1.0.1", comment="best so far", stages=["qa", "qa", "prod"])
        v = {x["version"]: x for x in reader.registry_details("local", "net")["versions"]}
        assert (v["1.0.1"]["comment"], v["1.0.1"]["stages"]) == ("best so far", ["qa", "prod"])

        reg.set_notes("net", "trained on synthetic data")
        assert reg.get_notes("net") == "trained on synthetic data"
        assert reader.registry_notes("local", "net") == "trained on synthetic data"

        reg.update_model("net", new_name="Net Final", description="final", public=True)
        [m] = [m for m in reader.registry_models("local") if m["modelName"] == "net-final"]
        assert (m["description"], m["isPublic"]) == ("final", True)
        with pytest.raises(RegistryError, match=r"'net-final'.*conflict \(409\)"):
            reg.update_model("net-final", new_name="other")

        reg.delete_version("net-final", "1.0.0")
        assert [x["version"] for x in reg.get("net-final")["versions"]] == ["1.0.1"]
        reg.delete_model("other")
        assert [m["modelName"] for m in reader.registry_models("local")] == ["net-final"]

        # not found: the message names the model / version
        with pytest.raises(
            RegistryError, match=r"registry model 'net' not found .*'local' \(404\)"
        ):
            reg.get("net")
        with pytest.raises(RegistryError, match=r"'net-final' has no version '9\.9\.9'.*1\.0\.1"):
            reg.add_stage("net-final", "9.9.9", "prod")
        with pytest.raises(RegistryError, match="'ghost' not found"):
            reg.delete_model("ghost")
        with pytest.raises(RegistryError, match="'ghost' not found"):
            reg.set_notes("ghost", "x")
    # the client passed in is not closed by the Registry: it still works
    assert client.get_registry_models("local")["registryModels"]
    client.close()

    comet_env.create_user("bob")
    with Registry(RestClient(comet_env.url, comet_env.api_key, retries=0), "bob") as forbidden:
        with pytest.raises(RegistryError, match=r"workspace 'bob'.*\(403\)"):
            forbidden.list()
        forbidden.client.close()


def test_registry_from_settings_uses_configured_workspace(comet_env) -> None:
    with Registry.from_settings(Settings.resolve(workspace="local")) as reg:
        assert reg.workspace == "local" and reg.list() == []
    with RestClient(comet_env.url, comet_env.api_key) as client:
        with pytest.raises(RegistryError, match="needs a workspace"):
            Registry(client, "")
