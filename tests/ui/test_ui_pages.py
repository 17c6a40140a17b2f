"""The web UI's pages in a real browser: login, the experiment page, the table, compare, the
registry, another workspace's pages, and what a page may load."""

from __future__ import annotations

import re
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from uihelpers import SHOTS, log_run, login, seed_metric, shot

from comet_callbacks.server.reader import Reader
from comet_callbacks.server.store import SCHEMA_VERSION, series_ids

STEPS = 40
LOGGED = {
    "train/loss": STEPS,
    "train/acc": STEPS,
    "val/loss": STEPS // 5,
    "val/acc": STEPS // 5,
    "accuracy": 1,
}


@pytest.fixture(scope="module")
def runs(ui_server, tmp_path_factory) -> dict[str, Any]:
    """Two finished runs in local/mnist (one with a registered model) and one of bob's."""
    first = log_run("baseline", STEPS, 0.01, ["baseline"], end=False)
    model = tmp_path_factory.mktemp("model") / "weights.bin"
    model.write_bytes(b"\0" * 128)
    first.log_model("net", model)
    first.register_model("net", version="1.0.0", registry_name="digits-net", stages=["staging"])
    first.end()
    second = log_run("wider", STEPS, 0.03, ["sweep"])
    bob_key = ui_server.create_user("bob")
    bob = log_run("bob-private-run", 5, 0.5, ["secret"], "bobs", bob_key, "bob", output=False)
    return {"first": first.key, "second": second.key, "bob": bob.key, "bob_key": bob_key}


def exp_url(server, key: str, project: str = "mnist", ws: str = "local") -> str:
    return f"{server.url}/{ws}/{project}/{key}"


def _drag_zoom(page: Any, fig: Any) -> None:
    """Drag across 40–45 % of a chart's plot area (uPlot's zoom gesture)."""
    over = fig.locator(".u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.40, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.45, y, steps=5)
    page.mouse.up()


def test_printed_link_opens_after_login(ui_server, runs, new_page) -> None:
    page = new_page()
    url = exp_url(ui_server, runs["first"])
    page.goto(url)
    assert urlsplit(page.url).path == "/login"  # not signed in: the login page, no data
    assert page.locator("#api_key").is_visible()
    assert "baseline" not in page.content()
    shot(page, "login")

    link = ui_server.login_url()
    login(page, ui_server)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["comet_ui_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert ui_server.api_key not in session["value"]
    page.goto(url)
    assert page.locator("#exp-name").inner_text() == "baseline"

    # the link is one-time: a second browser cannot reuse it
    other = new_page()
    other.goto(link)
    other.goto(link)
    assert "already used" in other.locator(".error-msg").inner_text()


def test_login_form_with_api_key_and_bad_key(ui_server, runs, new_page) -> None:
    page = new_page()
    page.goto(ui_server.url + "/login")
    page.fill("#api_key", "not-a-key")
    page.click("button[type=submit]")
    assert "not known to this server" in page.locator(".error-msg").inner_text()
    assert "not-a-key" not in page.content()  # never echoed
    page.fill("#api_key", ui_server.api_key)
    page.click("button[type=submit]")
    page.wait_for_url(ui_server.url + "/")
    assert page.locator('[data-workspace="local"] [data-project="mnist"]').is_visible()
    assert page.locator('[data-project="mnist"] [data-col="count"]').inner_text() == "2"
    shot(page, "home")
    page.click("text=Sign out")
    page.wait_for_url(ui_server.url + "/login")
    page.goto(ui_server.url + "/")
    assert urlsplit(page.url).path == "/login"


def test_experiment_page_charts_params_status(ui_server, runs, new_page, visits) -> None:
    page = new_page()
    login(page, ui_server)
    page.goto(exp_url(ui_server, runs["first"]))
    charts = page.locator('[data-panel="charts"] figure.chart')
    assert sorted(charts.evaluate_all("els => els.map(e => e.dataset.metric)")) == sorted(LOGGED)
    for name, count in LOGGED.items():
        fig = page.locator(f'[data-panel="charts"] figure.chart[data-metric="{name}"]')
        fig.locator("canvas").wait_for()
        page.wait_for_function("el => el.dataset.points !== undefined", arg=fig.element_handle())
        assert fig.get_attribute("data-points") == str(count), name
        assert fig.get_attribute("data-exact") == "1"
        note = fig.locator(".fig-meta").inner_text()
        assert note.startswith(f"{count} point") and " · last " in note, note
    groups = page.locator('[data-panel="charts"] .chart-group').evaluate_all(
        "els => els.map(e => e.dataset.group)"
    )
    assert groups == ["train", "val", "general"]
    assert page.locator(".title-row .badge").get_attribute("data-status") == "success"
    assert "baseline" in page.locator(".title-row .tags").inner_text()
    page.wait_for_timeout(300)
    shot(page, "experiment")

    page.click('.tab[data-tab="params"]')
    rows = page.locator("#params-table tbody tr")
    values = dict(
        zip(
            rows.locator("td:first-child").all_inner_texts(),
            rows.locator("td:last-child").all_inner_texts(),
            strict=True,
        )
    )
    assert values["lr"] == "0.01" and values["batch_size"] == "32"
    assert values["optimizer|name"] == "adam"
    page.fill('.table-filter[data-table="params-table"]', "batch")
    assert page.locator("#params-table tbody tr:visible").count() == 1

    page.click('.tab[data-tab="output"]')
    assert "training baseline: done" in page.locator("#output").inner_text()
    assert "tiny run" in page.locator("#output .line.stderr").first.inner_text()
    shot(page, "experiment-output")

    page.click('.tab[data-tab="assets"]')
    assert "notes.txt" in page.locator("#assets-table").inner_text()
    models = page.locator("#models-table").inner_text()
    assert "net" in models and "digits-net 1.0.0" in models and "staging" in models
    with page.expect_download() as dl:
        page.click("#assets-table >> text=download")
    assert Path(dl.value.path()).read_bytes() == b"some notes\n" * 20

    page.click('.tab[data-tab="system"]')
    sys_charts = page.locator('[data-panel="system"] figure.chart')
    assert sys_charts.count() >= 1  # CPU/RAM sampled at start
    assert all(
        m.startswith("sys.")
        for m in sys_charts.evaluate_all("els => els.map(e => e.dataset.metric)")
    )
    assert not visits.errors, visits.errors


def test_zoom_fetches_finer_data(ui_server, new_page) -> None:
    """Server-side downsampling: 30,000 points arrive as about 2,000 (extremes kept), and
    zooming in fetches the range exactly."""
    from comet_callbacks import Experiment

    exp = Experiment(project_name="big", experiment_name="long-run", auto_log_output_logger=False)
    exp.end()
    n = 30_000
    seed_metric(
        ui_server, exp.key, "loss", [1.0 + (50.0 if s == 12_345 else 0.0) - s / n for s in range(n)]
    )
    api = requests.get(
        f"{ui_server.url}/ui-api/series",
        params={"experimentKey": exp.key, "metricName": "loss"},
        headers={"Authorization": ui_server.api_key},
        timeout=10,
    ).json()
    assert api["total"] == n and not api["exact"]
    assert 1000 <= len(api["xs"]) <= 2000
    assert max(api["ys"]) == 51.0 - 12_345 / n and 12_345 in api["xs"]  # the spike survives
    assert min(api["ys"]) == 1.0 - (n - 1) / n
    assert api["xs"] == sorted(api["xs"])

    page = new_page()
    login(page, ui_server)
    page.goto(exp_url(ui_server, exp.key, "big"))
    fig = page.locator('figure.chart[data-metric="loss"]')
    page.wait_for_function("el => el.dataset.points", arg=fig.element_handle())
    assert fig.get_attribute("data-total") == str(n)
    assert int(fig.get_attribute("data-points")) <= 2000
    drawn = int(fig.get_attribute("data-points"))
    assert fig.locator(".fig-meta").inner_text() == f"{n:,} points · {drawn:,} drawn"
    _drag_zoom(page, fig)
    page.wait_for_function("el => el.dataset.exact === '1'", arg=fig.element_handle())
    total = int(fig.get_attribute("data-total"))
    assert 0 < total < 2000 and fig.get_attribute("data-points") == str(total)
    assert fig.locator(".fig-meta").inner_text() == f"zoomed: {total:,} points in range"


def test_a_store_from_before_the_chart_index_is_migrated(tmp_path, monkeypatch) -> None:
    """A schema-4 store (no ``metrics_step`` index) opens: the index is built on start and
    its metrics chart as before."""
    from comet_callbacks.server import store as store_module
    from comet_callbacks.server.embedded import start_server

    db, key = tmp_path / "comet.sqlite", "k" * 32
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 4)  # the store the schema-4 code made
    with start_server(db_path=db, assets_dir=tmp_path / "assets", api_key=key) as server:
        exp = requests.post(
            server.url + "/api/rest/v2/write/experiment/create",
            json={"workspaceName": "local", "projectName": "old", "experimentName": "old"},
            headers={"Authorization": key},
            timeout=10,
        ).json()["experimentKey"]
        with server.store.tx() as tx:  # the rows as the schema-4 code stored them
            tx.conn.executemany(
                "INSERT INTO metrics (exp_key, name, value, value_text, ts, step) "
                "VALUES (?,?,?,?,?,?)",
                ((exp, "loss", float(s % 97), str(s % 97), 1_000 + s, s) for s in range(5000)),
            )
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name='metrics_step'").fetchall()
    monkeypatch.undo()
    with start_server(db_path=db, assets_dir=tmp_path / "assets", api_key=key) as server:
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            indexes = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
            }
            assert "metrics_step" in indexes
        got = requests.get(
            server.url + "/ui-api/series",
            params={"experimentKey": exp, "metricName": "loss"},
            headers={"Authorization": key},
            timeout=10,
        ).json()
        assert got["total"] == 5000 and not got["exact"]
        assert (min(got["ys"]), max(got["ys"])) == (0.0, 96.0)


def test_compare_zoom_fetches_finer_data(ui_server, new_page) -> None:
    """The compare chart refetches each experiment's points for a zoomed range: two runs of
    30,000 points arrive as about 2,000 each, and after a drag-zoom to a twentieth of the x
    range the chart holds every point of that range (1,500 per run instead of about 100)."""
    from comet_callbacks import Experiment

    n, keys = 30_000, []
    for i in range(2):
        exp = Experiment(project_name="big-compare", auto_log_output_logger=False)
        exp.end()
        seed_metric(ui_server, exp.key, "loss", [1.0 + i - s / n for s in range(n)])
        keys.append(exp.key)
    page = new_page()
    login(page, ui_server)
    page.goto(f"{ui_server.url}/local/big-compare/compare?experiments={','.join(keys)}")
    fig = page.locator("#compare-chart")
    page.wait_for_function("el => el.dataset.points", arg=fig.element_handle())
    assert fig.get_attribute("data-totals") == f"{n},{n}" and not fig.get_attribute("data-exact")
    assert all(1000 <= int(p) <= 2000 for p in fig.get_attribute("data-points").split(","))
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/ui-api/series" in r.url else None)
    _drag_zoom(page, fig)
    page.wait_for_function("el => el.dataset.exact === '1'", arg=fig.element_handle())
    totals = [int(t) for t in fig.get_attribute("data-totals").split(",")]
    assert fig.get_attribute("data-points") == ",".join(map(str, totals))
    assert all(1000 < t < 2000 for t in totals), totals  # ~5 % of 30,000 points, every one
    ranged = [urlsplit(u).query for u in seen]
    assert len(ranged) == 2 and all("min=" in q and "max=" in q for q in ranged)
    assert {k for q in ranged for k in keys if k in q} == set(keys)


def test_sql_buckets_are_the_reference_buckets(ui_server) -> None:
    """The step axis is downsampled by SQLite (index range scans), the epoch axis (no index)
    in Python: on the same points (epoch = step), logged out of order, with repeated steps,
    ties and spikes, both send exactly the same points, for the whole range and zoomed."""
    import random
    import time

    from comet_callbacks import Experiment

    exp = Experiment(project_name="buckets", auto_log_output_logger=False)
    exp.end()
    rnd = random.Random(18)
    steps = [s for s in range(0, 9000, 2) for _ in range(rnd.choice((1, 1, 2)))]
    rnd.shuffle(steps)
    values = [float(rnd.randint(0, 50)) if i % 7 else rnd.uniform(-1e3, 1e3) for i in steps]
    ts = int(time.time() * 1000)
    with ui_server.store.tx() as tx:
        series = series_ids(tx.conn, exp.key, ("m",))["m"]
        tx.conn.executemany(
            "INSERT INTO metrics (exp_key, name, value, value_text, ts, step, epoch, context, "
            "system, series) VALUES (?,?,?,?,?,?,?,NULL,0,?)",
            (
                (exp.key, "m", v, repr(v), ts + i, s, s, series)
                for i, (s, v) in enumerate(zip(steps, values, strict=True))
            ),
        )
    h = {"Authorization": ui_server.api_key}

    def get(x: str, **params: Any) -> dict:
        params.update(experimentKey=exp.key, metricName="m", x=x)
        r = requests.get(ui_server.url + "/ui-api/series", params=params, headers=h, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    for params in ({}, {"min": 1001, "max": 7777}, {"min": 5, "max": 600}, {"points": 50}):
        by_step, by_epoch = get("step", **params), get("epoch", **params)
        assert (by_step["x"], by_epoch["x"]) == ("step", "epoch")
        assert by_step["xs"] == by_epoch["xs"] and by_step["ys"] == by_epoch["ys"], params
        assert by_step["total"] == by_epoch["total"]
        inside = [
            v
            for s, v in zip(steps, values, strict=True)
            if params.get("min", 0) <= s <= params.get("max", 1e9)
        ]
        assert by_step["total"] == len(inside)
        assert min(by_step["ys"]) == min(inside) and max(by_step["ys"]) == max(inside)
    assert not get("step")["exact"] and get("step", min=5, max=600)["exact"]


def test_graph_tab_draws_the_model_tree(ui_server, new_page) -> None:
    """A PyTorch printout and a Keras ``to_json()`` become folding trees; other text stays
    text; the raw text is always there."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")  # as tests/test_keras.py
    import keras
    import torch.nn as nn

    from comet_callbacks import Experiment

    torch_model = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU()),
        nn.ModuleList([nn.Linear(8, 8) for _ in range(3)]),
        nn.Linear(8, 10),
    )
    keras_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, name="hidden"), keras.layers.Dense(2, name="out")]
    )
    graphs = {
        "torch": str(torch_model),
        "keras": keras_model.to_json(),
        "text": "Net(\n  (fc): Linear(\n",  # cut short: not a printout, shown as logged
    }
    keys = {}
    for kind, text in graphs.items():
        exp = Experiment(project_name="graphs", experiment_name=kind, auto_log_output_logger=False)
        exp.set_model_graph(text)
        exp.end()
        keys[kind] = exp.key
    page = new_page()
    login(page, ui_server)

    page.goto(exp_url(ui_server, keys["torch"], "graphs") + "#graph")
    box = page.locator('[data-panel="graph"] .graph')
    assert box.get_attribute("data-shape") == "torch"
    summaries = page.locator(".graph-tree summary").all_inner_texts()
    assert summaries[0].startswith("Sequential") and "3 items" in summaries[0]
    assert any(t.startswith("1 ModuleList") for t in summaries)
    leaves = page.locator(".graph-tree .g-leaf").all_inner_texts()
    assert "0-2 3 x Linear(in_features=8, out_features=8, bias=True)" in leaves
    assert "2 Linear(in_features=8, out_features=10, bias=True)" in leaves
    assert page.locator(".graph-tree details:not([open])").count() == 0  # two levels: all open
    page.click('[data-graph="close"]')
    assert page.locator(".graph-tree details[open]").count() == 0
    assert not page.locator(".graph-tree .g-leaf").first.is_visible()
    page.click('[data-graph="open"]')
    assert page.locator(".graph-tree .g-leaf").first.is_visible()
    assert page.locator("pre.graph-raw").text_content() == graphs["torch"]
    shot(page, "graph")

    page.goto(exp_url(ui_server, keys["keras"], "graphs") + "#graph")
    assert box.get_attribute("data-shape") == "json"
    names = page.locator(".graph-tree .g-name").all_inner_texts()
    assert names[:1] == [keras_model.name] and {"hidden", "out"} <= set(names)
    types = page.locator(".graph-tree .g-type").all_inner_texts()
    assert types.count("Dense") == 2
    lines = page.locator(".graph-tree summary").all_inner_texts()
    out = next(t for t in lines if t.startswith("out Dense"))
    assert "units=2" in out  # a folded layer still reads on one line
    assert (
        page.locator(".graph-tree details:not([open]) summary", has_text="out Dense").count() == 1
    )

    page.goto(exp_url(ui_server, keys["text"], "graphs") + "#graph")
    assert box.get_attribute("data-shape") == "text"
    assert page.locator("pre.graph-raw").text_content() == graphs["text"]
    assert page.locator(".graph-tree").count() == 0


def test_project_table_filter_and_compare(ui_server, runs, new_page) -> None:
    page = new_page()
    login(page, ui_server)
    page.goto(ui_server.url + "/local/mnist")
    rows = page.locator("#experiments tbody tr")
    assert sorted(rows.evaluate_all("els => els.map(e => e.dataset.name)")) == ["baseline", "wider"]
    assert set(page.locator("#experiments .badge").all_inner_texts()) == {"success"}
    head = page.locator("#experiments thead").inner_text()
    assert "train/loss" in head and "lr" in head
    shot(page, "project")
    # chosen columns: the picker's choice goes in the URL
    page.click("details.columns summary")
    for box in page.locator(".pick-col input").all():
        box.uncheck()
    page.check('.pick-col input[data-kind="metrics"][value="val/acc"]')
    page.check('.pick-col input[data-kind="params"][value="batch_size"]')
    page.click("#apply-columns")
    page.wait_for_url(re.compile(r".*\?metrics=val%2Facc&params=batch_size$"))
    heads = page.locator("#experiments thead th").all_inner_texts()
    assert [h.split("\n")[0] for h in heads[6:]] == ["val/acc", "batch_size"]
    assert page.locator("#experiments tbody tr").first.locator("td").nth(7).inner_text() == "32"
    page.fill("#exp-filter", "sweep")
    assert page.locator("#experiments tbody tr:visible").count() == 1
    page.fill("#exp-filter", "")
    page.check("#select-all")
    page.click("#compare-btn")
    page.wait_for_url(re.compile(r".*/local/mnist/compare\?experiments=.*"))
    fig = page.locator("#compare-chart")
    page.wait_for_function("el => el.dataset.series", arg=fig.element_handle())
    assert fig.get_attribute("data-series") == "2"
    assert fig.get_attribute("data-points") == f"{STEPS},{STEPS}"  # train/loss is the default
    differs = page.locator("#compare-params tr.differs td:first-child").all_inner_texts()
    assert differs == ["lr"]
    page.wait_for_timeout(300)
    shot(page, "compare")


def test_model_registry_pages(ui_server, runs, new_page) -> None:
    page = new_page()
    login(page, ui_server)
    page.goto(ui_server.url + "/local/model-registry")
    card = page.locator('[data-model="digits-net"]')
    assert "1.0.0" in card.inner_text() and "staging" in card.inner_text()
    shot(page, "registry")
    page.click('[data-model="digits-net"] h2 a')
    page.click("text=baseline")
    assert page.locator("#exp-name").inner_text() == "baseline"


def test_another_workspace_gives_no_data(ui_server, runs, new_page) -> None:
    bob = {"Authorization": runs["bob_key"]}
    admin_page = f"/local/mnist/{runs['first']}"
    for path in (admin_page, "/local/mnist", "/local", "/local/model-registry"):
        r = requests.get(ui_server.url + path, headers=bob, timeout=10)
        assert r.status_code == 403, path
        assert "baseline" not in r.text and "wider" not in r.text
        assert "no access" in r.text
    r = requests.get(
        ui_server.url + "/ui-api/series",
        params={"experimentKey": runs["first"], "metricName": "train/loss"},
        headers=bob,
        timeout=10,
    )
    assert r.status_code == 403 and "xs" not in r.json()
    home = requests.get(ui_server.url + "/", headers=bob, timeout=10)
    assert 'data-workspace="bob"' in home.text and 'data-workspace="local"' not in home.text
    # and the admin does not see bob's workspace either: same rights as the API
    admin_home = requests.get(
        ui_server.url + "/", headers={"Authorization": ui_server.api_key}, timeout=10
    )
    assert (
        "bob-private-run" not in admin_home.text and 'data-workspace="bob"' not in admin_home.text
    )
    page = new_page()
    login(page, ui_server, runs["bob_key"])
    page.goto(ui_server.url + admin_page)
    assert page.locator("h1").inner_text().startswith("403")
    assert page.locator("figure.chart").count() == 0
    shot(page, "no-access")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data") and value:
                self.refs.append(value)


def test_no_external_origin_and_read_only(ui_server, runs, new_page, visits) -> None:
    """Every page kind: nothing refers to another origin, a CSP says so, and GETs change
    nothing in the store."""
    key = ui_server.api_key
    paths = [
        "/",
        "/local",
        "/local/mnist",
        f"/local/mnist/{runs['first']}",
        f"/local/mnist/compare?experiments={runs['first']},{runs['second']}",
        "/local/model-registry",
        "/local/model-registry/digits-net",
        "/login",
    ]
    db = Path(ui_server.db_path)

    def snapshot() -> list[str]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    before = snapshot()
    for path in paths:
        r = requests.get(ui_server.url + path, headers={"Authorization": key}, timeout=10)
        assert r.status_code == 200, path
        assert "default-src 'self'" in r.headers["content-security-policy"]
        parser = _Refs()
        parser.feed(r.text)
        assert parser.refs, path
        for ref in parser.refs:
            assert ref.startswith(("/", "#")) and not ref.startswith("//"), (path, ref)
    page = new_page()
    login(page, ui_server)
    for path in paths[:-1]:
        page.goto(ui_server.url + path)
        page.wait_for_load_state("networkidle")
    assert visits.urls
    foreign = [u for u in visits.urls if not u.startswith(ui_server.url + "/")]
    assert not foreign, foreign
    assert snapshot() == before  # the UI is read-only
    # /docs loads Swagger from a CDN: it is switched off; the API description stays
    assert requests.get(ui_server.url + "/docs", timeout=10).status_code == 404
    assert requests.get(ui_server.url + "/openapi.json", timeout=10).status_code == 200
    static = requests.get(ui_server.url + "/ui-static/vendor/uPlot.LICENSE", timeout=10)
    assert "MIT License" in static.text


def test_chart_axes(ui_server, runs) -> None:
    """step (default), wall time, and epoch falling back to wall time when none was logged."""
    h = {"Authorization": ui_server.api_key}

    def get(**params: str) -> dict:
        params.update(experimentKey=runs["first"], metricName="val/loss")
        r = requests.get(ui_server.url + "/ui-api/series", params=params, headers=h, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    by_step = get()
    assert by_step["x"] == "step" and by_step["xs"] == list(range(0, STEPS, 5))
    by_time = get(x="time")
    assert by_time["x"] == "time" and by_time["ys"] == by_step["ys"]
    assert all(t > 1_600_000_000_000 for t in by_time["xs"])  # epoch milliseconds
    assert get(x="epoch")["x"] == "time"  # no epoch logged for this metric


def test_points_logged_out_of_order_are_drawn_in_x_order(ui_server) -> None:
    """Steps logged out of order come back sorted, also when they arrive after the chart's
    points were first read (the cached series is merged, not appended)."""
    from comet_callbacks import Experiment

    exp = Experiment(project_name="order", auto_log_output_logger=False)
    h = {"Authorization": ui_server.api_key}

    def points() -> list[tuple[int, float]]:
        r = requests.get(
            ui_server.url + "/ui-api/series",
            params={"experimentKey": exp.key, "metricName": "m"},
            headers=h,
            timeout=10,
        ).json()
        return list(zip(r["xs"], r["ys"], strict=True))

    try:
        for step in (5, 1, 3, 0):
            exp.log_metric("m", step * 10.0, step=step)
        assert exp.flush(10)
        assert points() == [(0, 0.0), (1, 10.0), (3, 30.0), (5, 50.0)]
        for step in (4, 9, 2):
            exp.log_metric("m", step * 10.0, step=step)
        assert exp.flush(10)
        assert points() == [(s, s * 10.0) for s in (0, 1, 2, 3, 4, 5, 9)]
    finally:
        exp.end()


def test_bad_requests_answer_clearly(ui_server, runs) -> None:
    h = {"Authorization": ui_server.api_key}
    r = requests.get(
        ui_server.url + "/ui-api/series",
        params={"experimentKey": runs["first"], "metricName": "train/loss", "min": "abc"},
        headers=h,
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["msg"] == "min: expected a number, got 'abc'"
    r = requests.get(ui_server.url + "/local/mnist/0123456789abcdef", headers=h, timeout=10)
    assert r.status_code == 404 and "unknown experiment" in r.text
    r = requests.get(ui_server.url + "/local/nope", headers=h, timeout=10)
    assert r.status_code == 404 and "unknown project" in r.text
    r = requests.get(ui_server.url + "/ui-static/%2e%2e/__init__.py", timeout=10)
    assert r.status_code == 404
    # API paths are untouched by the UI
    assert requests.get(ui_server.url + "/api/rest/v2/nope", timeout=10).status_code == 404
    r = requests.post(
        ui_server.url + "/login",
        data={"api_key": "x"},
        headers={"Origin": "http://evil.example"},
        timeout=10,
    )
    assert r.status_code == 403


def test_screenshot_for_the_readme() -> None:
    """The README shows ``docs/img/experiment.png``; refresh it from this run's screenshot
    when ``UPDATE_UI_SCREENSHOT=1``."""
    import os

    src = SHOTS / "experiment.png"
    assert src.exists() and src.stat().st_size > 10_000
    docs = Path(__file__).resolve().parents[2] / "docs" / "img" / "experiment.png"
    if os.environ.get("UPDATE_UI_SCREENSHOT") == "1":
        docs.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, docs)
    assert docs.exists()


def test_reader_sees_what_the_page_shows(ui_server, runs) -> None:
    """The chart counts come from the same store the API reads."""
    rd = Reader(ui_server.url, ui_server.api_key)
    try:
        assert len(rd.metrics(runs["first"], "train/loss")) == STEPS
    finally:
        rd.close()
