"""Settings: precedence (argument > environment > config file > default), modes, errors, base URL."""

from __future__ import annotations

import base64
import json
import os

import pytest

from comet_callbacks.config import (
    DEFAULT_ROOT,
    FIELDS,
    ConfigError,
    Settings,
    resolve_root,
    scrub,
)

KEY = "cfgSecretKeyABCDEF123456"
_parse_names = {f.name: f.parse.__name__ for f in FIELDS}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A clean cwd and HOME, so no real .comet.config is read."""
    cwd = tmp_path / "cwd"
    home = tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    return cwd, home


def _write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _ini(entries: dict[tuple[str, str], str]) -> str:
    sections: dict[str, list[str]] = {}
    for (section, key), value in entries.items():
        sections.setdefault(section, []).append(f"{key} = {value}")
    return "".join(f"[{s}]\n" + "\n".join(lines) + "\n\n" for s, lines in sections.items())


# Three valid raw values per parser (file, environment, argument) and what each parses to.
SAMPLES = {
    "_parse_str": [("from-file", "from-file"), ("from-env", "from-env"), ("from-arg", "from-arg")],
    "_parse_url": [
        ("http://file.test:1", "http://file.test:1"),
        ("http://env.test:2", "http://env.test:2"),
        ("https://arg.test", "https://arg.test"),
    ],
    "_parse_float": [("1.5", 1.5), ("2", 2.0), ("3.25", 3.25)],
    "_parse_int": [("5", 5), ("6", 6), ("7", 7)],
    "_parse_bool": [("yes", True), ("0", False), ("true", True)],
    "_parse_mode": [("offline", "offline"), ("disabled", "disabled"), ("ONLINE", "online")],
    "_parse_log_model": [("all", "all"), ("false", False), ("best", "best")],
    "_parse_summary_level": [("0", 0), ("2", 2), (" 1 ", 1)],
}


def test_every_field_has_samples():
    assert set(_parse_names.values()) <= set(SAMPLES), "add samples for a new parser"
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    assert len({f.env for f in FIELDS}) == len(FIELDS)
    for f in FIELDS:
        assert f.env.startswith("COMET_")


@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_precedence_per_field(f, isolated):
    cwd, _ = isolated
    (file_raw, file_val), (env_raw, env_val), (arg_raw, arg_val) = SAMPLES[f.parse.__name__]
    section, key = f.file_key()
    _write(cwd / ".comet.config", _ini({(section, key): file_raw}))

    s = Settings.resolve(env={})
    assert getattr(s, f.name) == file_val
    assert s.sources[f.name].startswith("config file ")
    assert ".comet.config, line 2" in s.sources[f.name]

    s = Settings.resolve(env={f.env: env_raw})
    assert getattr(s, f.name) == env_val
    assert s.sources[f.name] == f"environment variable {f.env}"

    s = Settings.resolve(env={f.env: env_raw}, **{f.name: arg_raw})
    assert getattr(s, f.name) == arg_val
    assert s.sources[f.name] == "argument"

    os.remove(cwd / ".comet.config")
    s = Settings.resolve(env={})
    assert getattr(s, f.name) == f.default
    assert s.sources[f.name] == "default"


def test_empty_env_value_falls_through(isolated):
    cwd, _ = isolated
    _write(cwd / ".comet.config", "[comet]\nworkspace = ws-file\n")
    s = Settings.resolve(env={"COMET_WORKSPACE": ""})
    assert s.workspace == "ws-file"


def test_none_argument_falls_through():
    s = Settings.resolve(env={"COMET_WORKSPACE": "ws-env"}, workspace=None)
    assert s.workspace == "ws-env"


def test_typed_arguments_accepted_and_validated():
    s = Settings.resolve(env={}, timeout_api=3, workers=2, strict=True)
    assert s.timeout_api == 3.0 and isinstance(s.timeout_api, float)
    assert s.workers == 2 and s.strict is True
    with pytest.raises(ConfigError) as e:
        Settings.resolve(env={}, timeout_api=-1)
    assert "timeout_api" in str(e.value) and "argument" in str(e.value)
    with pytest.raises(ConfigError):
        Settings.resolve(env={}, workers=0)


def test_unknown_argument_rejected():
    with pytest.raises(TypeError, match="unknown setting"):
        Settings.resolve(env={}, not_a_setting=1)


def test_sections_comet_auto_log_and_timeout(isolated):
    cwd, _ = isolated
    _write(
        cwd / ".comet.config",
        "[comet]\napi_key = " + KEY + "\nproject_name = proj\nworkspace = ws\n\n"
        "[comet_auto_log]\ngit_patch = false\nenv_gpu = no\noutput_logger = 1\n\n"
        "[comet_timeout]\napi = 4.5\nupload = 120\ncleaning = 7\n",
    )
    s = Settings.resolve(env={})
    assert (s.api_key, s.project_name, s.workspace) == (KEY, "proj", "ws")
    assert (
        s.auto_log_git_patch is False
        and s.auto_log_env_gpu is False
        and s.auto_log_output_logger is True
    )
    assert s.auto_log_code is True  # default untouched
    assert (s.timeout_api, s.timeout_upload, s.timeout_cleaning) == (4.5, 120.0, 7.0)
    assert s.sources["timeout_upload"].endswith("line 13")


def test_section_and_key_names_are_case_insensitive(isolated):
    cwd, _ = isolated
    _write(cwd / ".comet.config", "[COMET]\nWORKSPACE = ws-upper\n")
    assert Settings.resolve(env={}).workspace == "ws-upper"


def test_config_file_order(isolated, tmp_path):
    cwd, home = isolated
    _write(
        home / ".comet.config",
        "[comet]\nworkspace = ws-home\nproject_name = p-home\nexperiment_name = e-home\n",
    )
    s = Settings.resolve(env={})
    assert (s.workspace, s.project_name, s.experiment_name) == ("ws-home", "p-home", "e-home")
    assert str(home / ".comet.config") in s.sources["workspace"]

    # ./.comet.config wins over ~/.comet.config, key by key
    _write(cwd / ".comet.config", "[comet]\nworkspace = ws-cwd\nproject_name = p-cwd\n")
    s = Settings.resolve(env={})
    assert (s.workspace, s.project_name, s.experiment_name) == ("ws-cwd", "p-cwd", "e-home")
    assert str(cwd / ".comet.config") in s.sources["workspace"]

    # COMET_CONFIG wins over both
    explicit = _write(tmp_path / "explicit.ini", "[comet]\nworkspace = ws-explicit\n")
    s = Settings.resolve(env={"COMET_CONFIG": explicit})
    assert (s.workspace, s.project_name, s.experiment_name) == ("ws-explicit", "p-cwd", "e-home")
    assert s.sources["workspace"] == f"config file {explicit}, line 2"

    # the environment still beats every file
    s = Settings.resolve(env={"COMET_CONFIG": explicit, "COMET_WORKSPACE": "ws-env"})
    assert s.workspace == "ws-env"


def test_comet_config_expands_user(isolated):
    _, home = isolated
    _write(home / "my.ini", "[comet]\nworkspace = ws-tilde\n")
    assert Settings.resolve(env={"COMET_CONFIG": "~/my.ini"}).workspace == "ws-tilde"


# --------------------------------------------------------------------------- modes


@pytest.mark.parametrize(
    "env, mode",
    [
        ({}, "offline"),
        ({"COMET_API_KEY": KEY}, "online"),
        ({"COMET_URL_OVERRIDE": "http://127.0.0.1:9"}, "online"),
        ({"COMET_API_KEY": KEY, "COMET_START_ONLINE": "false"}, "offline"),
        ({"COMET_API_KEY": KEY, "COMET_START_ONLINE": "true"}, "online"),
        ({"COMET_MODE": "offline", "COMET_API_KEY": KEY}, "offline"),
        ({"COMET_MODE": "Online"}, "online"),
        ({"COMET_MODE": "disabled", "COMET_API_KEY": KEY}, "disabled"),
        ({"COMET_API_KEY": KEY, "COMET_AUTO_LOG_DISABLE": "true"}, "disabled"),
        ({"COMET_MODE": "online", "COMET_AUTO_LOG_DISABLE": "1"}, "disabled"),
        ({"COMET_MODE": "online", "COMET_START_ONLINE": "false"}, "online"),
    ],
)
def test_effective_mode(env, mode):
    assert Settings.resolve(env=env).effective_mode == mode


def test_mode_from_file_and_argument(isolated):
    cwd, _ = isolated
    _write(cwd / ".comet.config", "[comet]\napi_key = " + KEY + "\nstart_online = false\n")
    assert Settings.resolve(env={}).effective_mode == "offline"
    assert Settings.resolve(env={}, mode="online").effective_mode == "online"


# --------------------------------------------------------------------------- errors


def _error(env=None, **kw) -> ConfigError:
    env = dict(env or {})
    env.setdefault("COMET_API_KEY", KEY)  # present everywhere, so every message is checked for it
    with pytest.raises(ConfigError) as info:
        Settings.resolve(env=env, **kw)
    err = info.value
    text = str(err)
    assert KEY not in text and KEY not in repr(err)
    assert isinstance(err, ValueError)
    return err


def test_error_bad_mode():
    err = _error({"COMET_MODE": "onlin"})
    assert err.setting == "mode"
    assert "environment variable COMET_MODE" in str(err)
    assert "'onlin'" in str(err)
    assert "online, offline, disabled" in str(err)


def test_error_non_numeric_timeout():
    err = _error({"COMET_TIMEOUT_API": "soon"})
    assert err.setting == "timeout_api"
    assert "COMET_TIMEOUT_API" in str(err) and "number of seconds" in str(err)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_error_timeout_not_positive_finite(value):
    err = _error({"COMET_TIMEOUT_UPLOAD": value})
    assert err.setting == "timeout_upload" and "positive" in str(err)


@pytest.mark.parametrize(
    "value", ["127.0.0.1:8080", "www.comet.com/clientlib/", "ftp://x.test", "http://"]
)
def test_error_url_without_scheme_or_host(value):
    err = _error({"COMET_URL_OVERRIDE": value})
    assert err.setting == "url_override"
    assert "COMET_URL_OVERRIDE" in str(err) and "http://" in str(err)


def test_error_bad_boolean():
    err = _error({"COMET_STRICT": "maybe"})
    assert err.setting == "strict"
    assert "COMET_STRICT" in str(err) and "true/false" in str(err)


def test_error_bad_integer():
    err = _error({"COMET_SENDER_WORKERS": "many"})
    assert err.setting == "workers" and "COMET_SENDER_WORKERS" in str(err) and "integer" in str(err)


def test_error_bad_log_model():
    err = _error({"COMET_LOG_MODEL": "sometimes"})
    assert err.setting == "log_model" and "best" in str(err) and "all" in str(err)


def test_error_comet_config_missing(tmp_path):
    missing = str(tmp_path / "nope.ini")
    err = _error({"COMET_CONFIG": missing})
    assert "COMET_CONFIG" in str(err) and missing in str(err) and "does not exist" in str(err)


def test_error_comet_config_unreadable(tmp_path):
    # A directory cannot be read as a file (chmod tricks do not work as root).
    d = tmp_path / "adir"
    d.mkdir()
    err = _error({"COMET_CONFIG": str(d)})
    assert str(d) in str(err) and "cannot be read" in str(err)


def test_error_config_not_utf8(tmp_path):
    p = tmp_path / "latin.ini"
    p.write_bytes(b"[comet]\nworkspace = caf\xe9\n")
    err = _error({"COMET_CONFIG": str(p)})
    assert str(p) in str(err) and "cannot be read" in str(err)


@pytest.mark.parametrize(
    "text",
    [
        f"api_key = {KEY}\n",  # no section header
        f"[comet]\napi_key = {KEY}\nthis line is broken\n",
        f"[comet]\napi_key = {KEY}\napi_key = {KEY}\n",  # duplicate option
        "[comet\nworkspace = x\n",
    ],
    ids=["no-section", "bad-line", "duplicate", "bad-header"],
)
def test_error_invalid_ini(tmp_path, isolated, text):
    p = _write(tmp_path / "bad.ini", text)
    err = _error({"COMET_CONFIG": p})
    assert p in str(err) and "not a valid INI file" in str(err)
    # the same file found in the cwd is reported too
    cwd, _ = isolated
    _write(cwd / ".comet.config", text)
    err = _error({})
    assert str(cwd / ".comet.config") in str(err)


@pytest.mark.parametrize(
    "text, setting, line, where",
    [
        (
            "[comet]\nworkspace = ws\n\n[comet_timeout]\napi = soon\n",
            "timeout_api",
            5,
            "[comet_timeout] api",
        ),
        ("[comet]\nmode = onlin\n", "mode", 2, "[comet] mode"),
        ("# c\n[comet_auto_log]\n\ncode = perhaps\n", "auto_log_code", 4, "[comet_auto_log] code"),
        ("[comet]\nurl_override = localhost:8080\n", "url_override", 2, "[comet] url_override"),
    ],
)
def test_error_bad_value_in_file_names_file_and_line(isolated, text, setting, line, where):
    cwd, _ = isolated
    path = _write(cwd / ".comet.config", text)
    err = _error({})
    assert err.setting == setting
    assert f"{path}, line {line}" in str(err)
    assert where in str(err)


def test_error_message_never_contains_key_from_file(isolated):
    cwd, _ = isolated
    _write(cwd / ".comet.config", f"[comet]\napi_key = {KEY}\nstrict = sure\n")
    with pytest.raises(ConfigError) as info:
        Settings.resolve(env={})
    assert KEY not in str(info.value)
    assert "strict" in str(info.value)


def test_api_key_config_error_is_redacted():
    err = ConfigError("api_key", "argument", KEY, "expected a string")
    assert KEY not in str(err) and "<redacted>" in str(err)


# --------------------------------------------------------------------------- redaction


def test_repr_redacts_key():
    key = "reprSecretKey987654*" + base64.b64encode(b'{"baseUrl":"http://h.test"}').decode()
    s = Settings.resolve(env={"COMET_API_KEY": key, "COMET_WORKSPACE": "ws"})
    for text in (repr(s), str(s), repr(s.sources), f"{s}"):
        assert key not in text and "reprSecretKey987654" not in text
    assert "api_key='<redacted>'" in repr(s)
    assert "workspace='ws'" in repr(s)
    assert s.api_key == key  # the value itself is intact
    # registered as a secret: scrub removes the whole key and its raw part
    assert scrub(f"x {key} y reprSecretKey987654") == "x <redacted> y <redacted>"
    assert "reprSecretKey987654" not in repr(s.replace(workspace="w2"))


def test_repr_without_key():
    s = Settings.resolve(env={})
    assert "api_key=None" in repr(s)


# --------------------------------------------------------------------------- base URL (WIRE §1)


def _payload_key(obj, *, urlsafe=False, pad=True) -> str:
    raw = json.dumps(obj).encode()
    enc = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    return "rawKeyPart1234*" + (enc if pad else enc.rstrip("="))


@pytest.mark.parametrize(
    "override, root",
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://www.comet.com/clientlib/", "https://www.comet.com"),
        ("https://comet.example.test:8443/some/sub/path/", "https://comet.example.test:8443"),
        ("  http://localhost:5000  ", "http://localhost:5000"),
    ],
)
def test_root_from_override(override, root):
    assert resolve_root(override, None) == root
    # the override beats a key payload
    assert resolve_root(override, _payload_key({"baseUrl": "https://other.test"})) == root
    assert Settings.resolve(env={"COMET_URL_OVERRIDE": override.strip()}).root == root


def test_base_url_payload_is_large_enough_for_both_alphabets():
    # '?>' encodes to '/' and '+' characters, so the two alphabets really differ here.
    obj = {"baseUrl": "https://alt.test:9443/", "x": "?>?>~~~"}
    std = _payload_key(obj)
    url = _payload_key(obj, urlsafe=True)
    assert std != url and ("+" in std or "/" in std) and ("-" in url or "_" in url)


@pytest.mark.parametrize("urlsafe", [False, True], ids=["std", "urlsafe"])
@pytest.mark.parametrize("pad", [True, False], ids=["padded", "unpadded"])
@pytest.mark.parametrize("extra", ["?>?>~~~", "a", "ab"])
def test_root_from_key_payload(urlsafe, pad, extra):
    key = _payload_key(
        {"baseUrl": "https://alt.test:9443/clientlib/", "x": extra}, urlsafe=urlsafe, pad=pad
    )
    assert resolve_root(None, key) == "https://alt.test:9443"
    assert resolve_root("", key) == "https://alt.test:9443"
    assert Settings.resolve(env={"COMET_API_KEY": key}).root == "https://alt.test:9443"


@pytest.mark.parametrize(
    "key",
    [
        "plainkey",
        "rawKeyPart1234*",
        "rawKeyPart1234*!!!not-base64!!!",
        "rawKeyPart1234*" + base64.b64encode(b"\xff\xfe\x00garbage").decode(),
        "rawKeyPart1234*" + base64.b64encode(b"[1, 2]").decode(),
        "rawKeyPart1234*" + base64.b64encode(b'{"other": 1}').decode(),
        "rawKeyPart1234*" + base64.b64encode(b'{"baseUrl": 42}').decode(),
        "rawKeyPart1234*" + base64.b64encode(b'{"baseUrl": "not a url"}').decode(),
    ],
    ids=[
        "plain",
        "empty-payload",
        "not-base64",
        "not-utf8",
        "not-object",
        "no-baseUrl",
        "baseUrl-int",
        "baseUrl-bad",
    ],
)
def test_undecodable_payload_falls_back_to_default(key):
    assert resolve_root(None, key) == DEFAULT_ROOT == "https://www.comet.com"


def test_default_root():
    assert resolve_root(None, None) == "https://www.comet.com"
    assert Settings.resolve(env={}).root == "https://www.comet.com"


def test_replace_keeps_values_and_marks_argument():
    s = Settings.resolve(env={"COMET_WORKSPACE": "ws"})
    t = s.replace(project_name="p2")
    assert t.project_name == "p2" and t.workspace == "ws"
    assert t.sources["project_name"] == "argument"
    assert s.project_name is None  # the original is unchanged
    with pytest.raises(TypeError):
        s.replace(bogus=1)
    with pytest.raises(AttributeError):
        _ = s.no_such_field


def test_colon_delimiter_and_line_numbers(isolated):
    cwd, _ = isolated
    path = _write(
        cwd / ".comet.config",
        "; comment\n[comet]\nworkspace: ws-colon\n\n[comet_timeout]\napi: soon\n",
    )
    err = _error({})
    assert f"{path}, line 6" in str(err)
    _write(cwd / ".comet.config", "[comet]\nworkspace: ws-colon\nurl_override = http://h.test:1\n")
    s = Settings.resolve(env={})
    assert s.workspace == "ws-colon" and s.sources["workspace"].endswith("line 2")
    assert s.url_override == "http://h.test:1" and s.sources["url_override"].endswith("line 3")


def test_every_project_error_derives_from_one_exported_base() -> None:
    import comet_callbacks
    from comet_callbacks import rest
    from comet_callbacks.registry import RegistryError

    base = comet_callbacks.CometCallbacksError
    assert "CometCallbacksError" in comet_callbacks.__all__
    errors = [comet_callbacks.ConfigError, comet_callbacks.ExperimentError, RegistryError]
    errors += [getattr(rest, n) for n in rest.__all__ if n.endswith("Error")]
    assert len(errors) > 10
    for cls in errors:
        assert issubclass(cls, base), cls
    # the built-in bases stay, so existing ``except ValueError`` / ``RuntimeError`` still work
    assert issubclass(comet_callbacks.ConfigError, ValueError)
    assert issubclass(comet_callbacks.ExperimentError, RuntimeError)
    with pytest.raises(base, match="invalid mode"):
        Settings.resolve(env={"COMET_MODE": "onlin"})


def test_settings_has_one_typed_attribute_per_field() -> None:
    from typing import get_type_hints

    hints = get_type_hints(Settings)
    assert [n for n in hints if n not in ("values", "sources")] == [f.name for f in FIELDS]
    s = Settings.resolve(env={"COMET_SENDER_WORKERS": "3"})
    assert s.workers == 3 and s.values["workers"] == 3
    assert s.replace(workers=5).workers == 5 and s.workers == 3
    with pytest.raises(AttributeError):
        s.wokers  # type: ignore[attr-defined]  # noqa: B018
