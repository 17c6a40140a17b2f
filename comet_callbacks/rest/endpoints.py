"""Every endpoint of the Comet REST v2 write document, plus the reads the client needs.

Each method builds the exact :class:`~.call.Call` of WIRE.md §2–3 and hands it to
``self._dispatch``. :class:`~.client.RestClient` dispatches by sending it; :class:`CallBuilder`
dispatches by returning it (that is how the sender and the offline log get their events), so
each endpoint's encoding is written once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .call import Call, FilePart, RawJSON

__all__ = [
    "Endpoints",
    "CallBuilder",
    "encode_metric_value",
    "query_bool",
    "metric_item",
    "metric_item_of_body",
    "parameter_item",
    "parameter_item_of_body",
    "check_parameter_source",
    "PARAMETER_SOURCES",
    "FastMetricEncoder",
    "closing_calls",
    "experiment_link",
    "BATCH_METRIC_PATH",
    "BATCH_PARAMETER_PATH",
]

#: The clientlib batch endpoints (BATCH.md §2); ``/clientlib/`` stands for the clientlib base.
BATCH_METRIC_PATH = "/clientlib/batch/logger/experiment/metric"
BATCH_PARAMETER_PATH = "/clientlib/batch/logger/experiment/parameter"
#: Parameter sources of the batch items: user calls, integrations / capture, argv.
PARAMETER_SOURCES = ("manual", "auto-logged", "cli")


def query_bool(value: bool) -> str:
    """Query booleans are ``true`` / ``false`` (WIRE.md §1)."""
    return "true" if value else "false"


def encode_metric_value(value: float | int | str) -> float | int | str:
    """Numbers as numbers; NaN and ±Inf as ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (WIRE.md §1)."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    return value


def metric_item(
    name: str,
    value: float | int | str,
    step: int | None = None,
    epoch: int | None = None,
    context: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """One metric batch item: all six keys, ``null`` where absent (BATCH.md §2)."""
    return {
        "metricName": name,
        "metricValue": encode_metric_value(value),
        "step": step,
        "epoch": epoch,
        "context": context,
        "timestamp": timestamp,
    }


def metric_item_of_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The batch item of a per-point metric body (as :meth:`Endpoints.log_metric` builds it
    and the event log records it): the same point, all six keys."""
    return {
        "metricName": body["metricName"],
        "metricValue": body["metricValue"],
        "step": body.get("step"),
        "epoch": body.get("epoch"),
        "context": body.get("context"),
        "timestamp": body.get("timestamp"),
    }


def parameter_item_of_body(body: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """The batch item of a per-point parameter body (:meth:`Endpoints.log_parameter`);
    ``source`` is the event's :attr:`Call.source` (None: ``manual``)."""
    return parameter_item(
        body["parameterName"],
        body.get("parameterValue"),
        body.get("step"),
        source=source or "manual",
        timestamp=body.get("timestamp"),
    )


def check_parameter_source(source: Any) -> str:
    """``source`` if it is one of :data:`PARAMETER_SOURCES`, else a ValueError naming it."""
    if source not in PARAMETER_SOURCES:
        raise ValueError(
            f"parameter source must be one of {', '.join(PARAMETER_SOURCES)}, got {source!r}"[:200]
        )
    return source  # type: ignore[no-any-return]


def parameter_item(
    name: str,
    value: Any,
    step: int | None = None,
    source: str = "manual",
    context: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """One parameter batch item: all six keys, ``null`` where absent (BATCH.md §2)."""
    return {
        "parameterName": name,
        "parameterValue": value,
        "step": step,
        "source": source,
        "context": context,
        "timestamp": timestamp,
    }


_METRIC_KEYS = ("metricName", "metricValue", "step", "epoch", "context", "timestamp")
_PARAMETER_KEYS = ("parameterName", "parameterValue", "step", "source", "context", "timestamp")


def _items(values: Sequence[Mapping[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    first = keys[0]
    for i, v in enumerate(values):
        if type(v) is dict and type(v.get(first)) is str:  # the common case, checked cheaply
            out.append({k: v.get(k) for k in keys})
            continue
        if not isinstance(v, Mapping) or not isinstance(v.get(keys[0]), str):
            raise TypeError(
                f"values[{i}] must be a mapping with a string {keys[0]!r}, got {v!r}"[:300]
            )
        out.append({k: v.get(k) for k in keys})
    return out


class FastMetricEncoder:
    """**Fast path** for metric points, the bulk of all traffic: formats the JSON text of
    :meth:`Endpoints.log_metric`'s event-log line and of :meth:`Endpoints.log_metric_batch`'s
    body directly from ``(name, value, step, epoch, context, time.time())`` tuples, about 5x
    cheaper than building the dicts and ``json.dumps``-ing them.

    It is the same encoding, not a second one: ``tests/test_sender_fastpath.py`` compares both
    texts byte for byte with what the generic path (the endpoint method, then
    :func:`~comet_callbacks.offline.event_line` or :meth:`Call.body_text`) makes of the same
    points. Any change to those endpoints must keep that test passing.
    """

    __slots__ = ("key", "_key_json", "_names", "_heads")

    #: metric names whose JSON text is cached (a run has a handful; this bounds a runaway one)
    NAME_CACHE = 100_000

    def __init__(self, experiment_key: str) -> None:
        self.key = experiment_key
        self._key_json = json.dumps(experiment_key)
        self._names: dict[str, str] = {}
        self._heads: dict[str, str] = {}

    def _name(self, name: str) -> str:
        jn = self._names.get(name)
        if jn is None:
            jn = json.dumps(name, ensure_ascii=False)
            if len(self._names) < self.NAME_CACHE:
                self._names[name] = jn
        return jn

    @staticmethod
    def _value(value: float | int) -> str:
        if type(value) is float:
            if value - value != 0.0:  # NaN or +-Inf: strings on the wire (WIRE.md §1)
                return '"NaN"' if value != value else ('"Infinity"' if value > 0 else '"-Infinity"')
            return repr(value)
        return str(int(value))

    def event_line(self, seq: int, item: tuple[Any, ...]) -> str:
        """The event-log line (no newline) of ``calls.log_metric(key, *item)`` numbered ``seq``."""
        name, value, step, epoch, context, t = item
        head = self._heads.get(name)
        if head is None:  # everything between the seq and the value, per metric name
            head = (
                ',"call":{"method":"POST","path":"write/experiment/metric","json":'
                f'{{"experimentKey":{self._key_json},"metricName":{self._name(name)},'
                '"metricValue":'
            )
            if len(self._heads) < self.NAME_CACHE:
                self._heads[name] = head
        if type(value) is float and value - value == 0.0:  # finite: the common case
            text = repr(value)
        else:
            text = self._value(value)
        if context is None:
            if epoch is None:
                tail = "" if step is None else f',"step":{step}'
            else:
                tail = f',"epoch":{epoch}' if step is None else f',"step":{step},"epoch":{epoch}'
        else:
            tail = ',"context":' + json.dumps(context, ensure_ascii=False)
            if step is not None:
                tail += ',"step":' + str(step)
            if epoch is not None:
                tail += ',"epoch":' + str(epoch)
        return f'{{"seq":{seq}{head}{text}{tail},"timestamp":{int(t * 1000)}}}}}}}'

    @staticmethod
    def item_of_line(line: str) -> tuple[int, str, int] | None:
        """``(seq, batch item JSON text, timestamp)`` of an event-log line exactly as
        :meth:`event_line` writes it, without parsing the JSON (``upload`` reads millions);
        None for any other line, which the caller then parses the generic way.

        Only the canonical text is taken (names and contexts without ``\\u`` escapes but for
        control characters, numbers as ``repr``/``str`` write them), so the item is byte for
        byte :func:`metric_item_of_body` of the parsed line.
        """
        m = _METRIC_LINE.match(line)
        if m is None:
            return None
        seq, name, value, context, step, epoch, ts = m.groups()
        if value[0] != '"':  # e.g. 1.50, 1e+400, -0: not what json.dumps writes of the number
            if "." in value or "e" in value:
                if value != repr(float(value)):
                    return None
            elif value == "-0":  # the only integer text the pattern takes that str() does not write
                return None
        item = (
            f'{{"metricName":{name},"metricValue":{value},"step":{step or "null"},'
            f'"epoch":{epoch or "null"},"context":{context or "null"},"timestamp":{ts}}}'
        )
        return int(seq), item, int(ts)

    def batch_call(self, items: Sequence[tuple[Any, ...] | Mapping[str, Any] | str]) -> Call:
        """``calls.log_metric_batch(key, ...)`` of these points: each a metric tuple, a batch
        item dict (:func:`metric_item_of_body` of an event read back from disk) or a batch
        item's JSON text (:meth:`item_of_line`)."""
        texts = []
        for item in items:
            if type(item) is str:
                texts.append(item)
                continue
            if type(item) is not tuple:
                texts.append(
                    json.dumps(item, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
                )
                continue
            name, value, step, epoch, context, t = item
            texts.append(
                f'{{"metricName":{self._name(name)},"metricValue":{self._value(value)},'
                f'"step":{"null" if step is None else int(step)},'
                f'"epoch":{"null" if epoch is None else int(epoch)},'
                f'"context":{"null" if context is None else json.dumps(context, ensure_ascii=False)},'
                f'"timestamp":{int(t * 1000)}}}'
            )
        body = f'{{"experimentKey":{self._key_json},"values":[{",".join(texts)}]}}'
        return Call("POST", BATCH_METRIC_PATH, json=RawJSON(body), gzip=True)


# The pattern is written for the speed of Python's regex engine, which runs it once per line of
# a run being uploaded: an optional part is an alternation with an empty branch ("(?:X|)", not
# "(?:X)?": sre runs a repeated group through its costly general loop): a sixth cheaper.

# a JSON string as json.dumps(ensure_ascii=False) writes it: a control character as its short
# escape \b \t \n \f \r or else as \u00XX in lowercase hex, and nothing else escaped but " and
# \; without any escape first (the common case), then "unrolled" (plain characters, then one
# or more of an escape followed by plain characters)
_JSTR = (
    r'"[^"\\\x00-\x1f]*"'
    r'|"[^"\\\x00-\x1f]*(?:(?:\\["\\bfnrt]|\\u00(?:0[0-7bef]|1[0-9a-f]))[^"\\\x00-\x1f]*)+"'
)
# an integer as str() writes it, of at most 100 digits: json.loads refuses one longer than
# sys.get_int_max_str_digits() (640 at the least), so such a line is the generic parser's
_JDIGITS = r"(?:0|[1-9][0-9]{0,99})"
_JINT = r"(?:0|-?[1-9][0-9]{0,99})"
#: A metric line of the event log as :meth:`FastMetricEncoder.event_line` writes it.
_METRIC_LINE = re.compile(
    r'\{"seq":(' + _JDIGITS + r'),"call":\{"method":"POST","path":"write/experiment/metric",'
    r'"json":\{"experimentKey":"[^"\\\x00-\x1f]*","metricName":(' + _JSTR + r"),"
    r'"metricValue":(-?' + _JDIGITS + r'(?:\.[0-9]+|)(?:e[-+][0-9]+|)|"NaN"|"Infinity"|"-Infinity")'
    r'(?:,"context":(' + _JSTR + r')|)(?:,"step":(' + _JINT + r')|)(?:,"epoch":(' + _JINT + r")|)"
    r',"timestamp":(' + _JINT + r")\}\}\}\n?\Z"
)


def closing_calls(
    experiment_key: str, status: str, end_ms: int, start_ms: int | None = None
) -> list[Call]:
    """The calls that end an experiment, in order: its status (and ``hasCrashed`` unless it
    succeeded), its start/end time (``start_ms`` None keeps the server's start) and ``stop``.
    Sent by ``Experiment.end()`` and, for a run that died before ending, by ``upload``."""
    out = [calls.log_other(experiment_key, "status", status, timestamp=end_ms)]
    if status != "success":
        out.append(calls.log_other(experiment_key, "hasCrashed", True, timestamp=end_ms))
    out.append(calls.set_start_end_time(experiment_key, start_ms, end_ms))
    out.append(calls.stop_experiment(experiment_key))
    return out


def experiment_link(root: str, workspace: str | None, project: str, experiment_key: str) -> str:
    """The experiment's page when the server did not give a ``link``: ``<root>/<workspace>/
    <project>/<key>``."""
    return f"{root.rstrip('/')}/{workspace}/{project}/{experiment_key}"


def _q(**kw: Any) -> dict[str, str]:
    """Query dict in the given order, without ``None``; booleans as true/false."""
    out = {}
    for k, v in kw.items():
        if v is None:
            continue
        out[k] = query_bool(v) if isinstance(v, bool) else str(v)
    return out


def _b(**kw: Any) -> dict[str, Any]:
    """JSON body without ``None`` values (absent means "not given")."""
    return {k: v for k, v in kw.items() if v is not None}


def _t(
    context: str | None, step: int | None, epoch: int | None, timestamp: int | None
) -> dict[str, Any]:
    return _b(context=context, step=step, epoch=epoch, timestamp=timestamp)


def _require(name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if (
        not isinstance(value, kind)
        or isinstance(value, bool)
        and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise TypeError(
            f"{name} must be {getattr(kind, '__name__', kind)}, got {type(value).__name__}: {value!r}"[
                :300
            ]
        )


class Endpoints:
    """One method per endpoint. Subclasses define ``_dispatch(call)``."""

    def _dispatch(self, call: Call) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- workspaces & experiments

    def create_workspace(self, name: str, plan: str | None = None) -> Any:
        """#1 Create a workspace."""
        _require("name", name, str)
        return self._dispatch(Call("POST", "write/workspace/new", json=_b(name=name, plan=plan)))

    def create_experiment(
        self, workspace_name: str, project_name: str, experiment_name: str | None = None
    ) -> Any:
        """#2 Create an experiment (the project is created when missing). Returns ``experimentKey``, ``link``..."""
        _require("workspace_name", workspace_name, str)
        _require("project_name", project_name, str)
        body = _b(
            workspaceName=workspace_name, projectName=project_name, experimentName=experiment_name
        )
        return self._dispatch(Call("POST", "write/experiment/create", json=body))

    def stop_experiment(self, experiment_key: str) -> Any:
        """#3 Mark the experiment as no longer running."""
        return self._dispatch(
            Call("GET", "write/experiment/stop", _q(experimentKey=experiment_key))
        )

    def archive_experiment(self, experiment_key: str) -> Any:
        """#4 Archive an experiment."""
        return self._dispatch(
            Call("GET", "write/experiment/archive", _q(experimentKey=experiment_key))
        )

    def move_experiments(
        self,
        target_workspace_name: str,
        target_project_name: str,
        experiment_keys: Sequence[str],
        symlink: bool = False,
    ) -> Any:
        """#5 Move (``symlink=False``) or link (``True``) experiments into another project."""
        body = {
            "targetWorkspaceName": target_workspace_name,
            "targetProjectName": target_project_name,
            "experimentKeys": list(experiment_keys),
            "symlink": bool(symlink),
        }
        return self._dispatch(Call("POST", "write/experiment/move", json=body))

    def symlink_experiment(self, experiment_key: str, project_name: str) -> Any:
        """#6 Show an experiment in another project too (the document's ``exerimentKey`` typo is not sent)."""
        return self._dispatch(
            Call(
                "GET",
                "write/project/symlink",
                _q(experimentKey=experiment_key, projectName=project_name),
            )
        )

    def delete_experiment(self, experiment_key: str) -> Any:
        """#7 Delete an experiment."""
        return self._dispatch(
            Call("GET", "write/experiment/delete", _q(experimentKey=experiment_key))
        )

    def restore_experiment(self, experiment_key: str) -> Any:
        """#8 Restore an archived experiment."""
        return self._dispatch(
            Call("GET", "write/experiment/restore", _q(experimentKey=experiment_key))
        )

    # ----------------------------------------------------------------- projects

    def create_project(
        self,
        workspace_name: str,
        project_name: str,
        project_description: str | None = None,
        is_public: bool = False,
    ) -> Any:
        """#9 Create a project; returns ``projectId``."""
        body = {
            "workspaceName": workspace_name,
            "projectName": project_name,
            "projectDescription": project_description,
            "isPublic": bool(is_public),
        }
        return self._dispatch(Call("POST", "write/project/create", json=body))

    def delete_project(
        self,
        workspace_name: str | None = None,
        project_name: str | None = None,
        *,
        project_id: str | None = None,
        delete_all_experiments: bool = False,
    ) -> Any:
        """#10 Delete a project by id or by workspace and name, optionally with its experiments."""
        if project_id is None and (workspace_name is None or project_name is None):
            raise ValueError("delete_project needs project_id, or workspace_name and project_name")
        body = _b(workspaceName=workspace_name, projectName=project_name, projectId=project_id)
        body["deleteAllExperiments"] = bool(delete_all_experiments)
        return self._dispatch(Call("POST", "write/project/delete", json=body))

    def update_project(
        self,
        project_id: str | None = None,
        *,
        workspace_name: str | None = None,
        project_name: str | None = None,
        new_project_name: str | None = None,
        new_project_description: str | None = None,
        is_public: bool | None = None,
    ) -> Any:
        """#11 Rename / describe / publish a project, named by exactly one of id or workspace+name."""
        by_name = workspace_name is not None or project_name is not None
        if (project_id is None) == (not by_name) or (
            by_name and (workspace_name is None or project_name is None)
        ):
            raise ValueError(
                "update_project needs exactly one of project_id, or workspace_name and project_name"
            )
        body = _b(
            projectId=project_id,
            workspaceName=workspace_name,
            projectName=project_name,
            newProjectName=new_project_name,
            newProjectDescription=new_project_description,
            isPublic=is_public,
        )
        return self._dispatch(Call("POST", "write/project/update", json=body))

    def set_project_notes(self, project_id: str, notes: str) -> Any:
        """#12 Replace a project's notes."""
        return self._dispatch(
            Call("POST", "write/project/notes", json={"projectId": project_id, "notes": notes})
        )

    def add_project_share_link(self, project_id: str) -> Any:
        """#13 Create a share link; returns ``shareCode``."""
        return self._dispatch(Call("GET", "write/project/add-share-link", _q(projectId=project_id)))

    def delete_project_share_link(self, project_id: str, share_code: str) -> Any:
        """#14 Remove a share link."""
        return self._dispatch(
            Call(
                "GET",
                "write/project/delete-project-share-link",
                _q(projectId=project_id, shareCode=share_code),
            )
        )

    # ----------------------------------------------------------------- model registry

    def create_registry_model(
        self,
        experiment_model_id: str,
        registry_model_name: str,
        version: str,
        *,
        description: str | None = None,
        is_public: bool | None = None,
        comment: str | None = None,
        stages: Sequence[str] | None = None,
    ) -> Any:
        """#15 Register a new registry model with its first version."""
        body = _b(
            experimentModelId=experiment_model_id,
            registryModelName=registry_model_name,
            version=version,
            description=description,
            isPublic=is_public,
            comment=comment,
            stages=list(stages) if stages is not None else None,
        )
        return self._dispatch(Call("POST", "write/registry-model", json=body))

    def create_registry_model_version(
        self,
        experiment_model_id: str,
        registry_model_name: str,
        version: str,
        *,
        comment: str | None = None,
        stages: Sequence[str] | None = None,
    ) -> Any:
        """#16 Add a version to an existing registry model."""
        body = _b(
            experimentModelId=experiment_model_id,
            registryModelName=registry_model_name,
            version=version,
            comment=comment,
            stages=list(stages) if stages is not None else None,
        )
        return self._dispatch(Call("POST", "write/registry-model/item", json=body))

    def update_registry_model_version(
        self,
        registry_model_item_id: str,
        *,
        comment: str | None = None,
        stages: Sequence[str] | None = None,
    ) -> Any:
        """#17 Update a version's comment and/or stages."""
        body = _b(
            registryModelItemId=registry_model_item_id,
            comment=comment,
            stages=list(stages) if stages is not None else None,
        )
        return self._dispatch(Call("POST", "write/registry-model/item/update", json=body))

    def delete_registry_model_version(self, model_item_id: str) -> Any:
        """#18 Delete one version."""
        return self._dispatch(
            Call("GET", "write/registry-model/item/delete", _q(modelItemId=model_item_id))
        )

    def update_registry_model(
        self,
        registry_model_id: str,
        *,
        registry_model_name: str | None = None,
        description: str | None = None,
        is_public: bool | None = None,
    ) -> Any:
        """#19 Rename / describe / publish a registry model."""
        body = _b(
            registryModelId=registry_model_id,
            registryModelName=registry_model_name,
            description=description,
            isPublic=is_public,
        )
        return self._dispatch(Call("POST", "write/registry-model/update", json=body))

    def set_registry_model_notes(
        self, workspace_name: str, registry_model_name: str, notes: str
    ) -> Any:
        """#20 Replace a registry model's notes."""
        body = {
            "workspaceName": workspace_name,
            "registryModelName": registry_model_name,
            "notes": notes,
        }
        return self._dispatch(Call("POST", "write/registry-model/notes", json=body))

    def delete_registry_model(self, workspace_name: str, model_name: str) -> Any:
        """#21 Delete a registry model with all its versions."""
        return self._dispatch(
            Call(
                "GET",
                "write/registry-model/delete",
                _q(workspaceName=workspace_name, modelName=model_name),
            )
        )

    def add_registry_model_version_stage(self, model_item_id: str, stage: str) -> Any:
        """#22 Add a stage (e.g. ``production``) to a version."""
        return self._dispatch(
            Call(
                "GET", "write/registry-model/item/stage", _q(modelItemId=model_item_id, stage=stage)
            )
        )

    def delete_registry_model_version_stage(self, model_item_id: str, stage: str) -> Any:
        """#23 Remove a stage from a version."""
        return self._dispatch(
            Call(
                "GET",
                "write/registry-model/item/stage/delete",
                _q(modelItemId=model_item_id, stage=stage),
            )
        )

    # ----------------------------------------------------------------- experiment data

    def set_status(self, experiment_key: str) -> Any:
        """#24 Keep-alive beat; answers the beat and monitor intervals."""
        return self._dispatch(
            Call("GET", "write/experiment/set-status", _q(experimentKey=experiment_key))
        )

    def set_start_end_time(
        self,
        experiment_key: str,
        start_time_millis: int | None = None,
        end_time_millis: int | None = None,
    ) -> Any:
        """#25 Set start and/or end time (absent ones are left unchanged)."""
        body = _b(
            experimentKey=experiment_key,
            startTimeMillis=start_time_millis,
            endTimeMillis=end_time_millis,
        )
        return self._dispatch(Call("POST", "write/experiment/set-start-end-time", json=body))

    def log_other(
        self,
        experiment_key: str,
        key: str,
        value: str | int | float | bool,
        timestamp: int | None = None,
    ) -> Any:
        """#26 Log an "other" value (the key ``Name`` renames the experiment)."""
        body = _b(experimentKey=experiment_key, key=key, value=value, timestamp=timestamp)
        return self._dispatch(Call("POST", "write/experiment/log-other", json=body))

    def log_parameter(
        self,
        experiment_key: str,
        name: str,
        value: Any,
        step: int | None = None,
        timestamp: int | None = None,
        source: str = "manual",
    ) -> Any:
        """#27 Log one (already flattened) parameter. ``source`` (:data:`PARAMETER_SOURCES`)
        is not part of this request: it travels with the call (:attr:`Call.source`) to the
        value's item, should the value go in a parameter batch."""
        check_parameter_source(source)
        body = _b(
            experimentKey=experiment_key,
            parameterName=name,
            parameterValue=value,
            step=step,
            timestamp=timestamp,
        )
        if value is None:
            body["parameterValue"] = None
        return self._dispatch(
            Call(
                "POST",
                "write/experiment/parameter",
                json=body,
                source=None if source == "manual" else source,
            )
        )

    def log_metric(
        self,
        experiment_key: str,
        name: str,
        value: float | int | str,
        step: int | None = None,
        epoch: int | None = None,
        context: str | None = None,
        timestamp: int | None = None,
    ) -> Any:
        """#28 Log one metric value (NaN/±Inf are sent as strings)."""
        body = {
            "experimentKey": experiment_key,
            "metricName": name,
            "metricValue": encode_metric_value(value),
        }
        body.update(_t(context, step, epoch, timestamp))
        return self._dispatch(Call("POST", "write/experiment/metric", json=body))

    def log_metric_batch(self, experiment_key: str, values: Sequence[Mapping[str, Any]]) -> Any:
        """Clientlib batch: many metric points in one gzip request (BATCH.md §2; ≤ 1000 items).

        ``values`` are :func:`metric_item` dicts; each is sent with all six keys.
        """
        items = _items(values, _METRIC_KEYS)
        for item in items:
            item["metricValue"] = encode_metric_value(item["metricValue"])
        body = {"experimentKey": experiment_key, "values": items}
        return self._dispatch(Call("POST", BATCH_METRIC_PATH, json=body, gzip=True))

    def log_parameter_batch(self, experiment_key: str, values: Sequence[Mapping[str, Any]]) -> Any:
        """Clientlib batch: many (flattened) parameter values in one gzip request (BATCH.md §2).

        ``values`` are :func:`parameter_item` dicts; each is sent with all six keys.
        """
        items = _items(values, _PARAMETER_KEYS)
        body = {"experimentKey": experiment_key, "values": items}
        return self._dispatch(Call("POST", BATCH_PARAMETER_PATH, json=body, gzip=True))

    def log_html(
        self, experiment_key: str, html: str, override: bool = False, timestamp: int | None = None
    ) -> Any:
        """#29 Append (or, with ``override``, replace) the experiment's HTML."""
        body = _b(
            experimentKey=experiment_key, html=html, override=bool(override), timestamp=timestamp
        )
        return self._dispatch(Call("POST", "write/experiment/html", json=body))

    def upload_asset(
        self,
        experiment_key: str,
        file: FilePart,
        *,
        file_name: str | None = None,
        extension: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        context: str | None = None,
        type: str | None = None,
        overwrite: bool | None = None,
        grouping_name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """#30 Upload an asset as multipart ``file`` (+ ``metadata`` part as compact, sorted JSON)."""
        if extension is not None:
            extension = extension.lstrip(".")
        query = _q(
            experimentKey=experiment_key,
            fileName=file_name,
            extension=extension,
            step=step,
            epoch=epoch,
            context=context,
            type=type,
            overwrite=overwrite,
            groupingName=grouping_name,
        )
        meta = (
            json.dumps(dict(metadata), separators=(",", ":"), sort_keys=True, default=str)
            if metadata
            else None
        )
        return self._dispatch(
            Call("POST", "write/experiment/upload-asset", query, file=file, metadata=meta)
        )

    def upload_text_sample(
        self,
        experiment_key: str,
        content: str,
        step: int | None = None,
        context: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """#31 Log a text sample (metadata is sent as base64 JSON, as the document says)."""
        import base64

        meta = None
        if metadata:
            meta = base64.b64encode(
                json.dumps(
                    dict(metadata), separators=(",", ":"), sort_keys=True, default=str
                ).encode()
            ).decode()
        body = _b(
            experimentKey=experiment_key, content=content, step=step, context=context, metadata=meta
        )
        return self._dispatch(Call("POST", "write/experiment/upload-text-sample", json=body))

    def upload_git_patch(self, experiment_key: str, zip_bytes: bytes) -> Any:
        """#32 Upload the git patch: a zip holding one entry, ``git_diff.patch``."""
        part = FilePart("git_diff.zip", data=zip_bytes, content_type="application/zip")
        return self._dispatch(
            Call("POST", "write/experiment/git/patch", _q(experimentKey=experiment_key), file=part)
        )

    def log_system_details(
        self,
        experiment_key: str,
        *,
        user: str | None = None,
        python_version: str | None = None,
        python_version_verbose: str | None = None,
        pid: int | None = None,
        os_type: str | None = None,
        os: str | None = None,
        os_release: str | None = None,
        machine: str | None = None,
        processor: str | None = None,
        ip: str | None = None,
        hostname: str | None = None,
        command: Sequence[str] | None = None,
        executable: str | None = None,
        network_interface_ips: Sequence[str] | None = None,
        os_packages: Sequence[str] | None = None,
        installed_packages: Sequence[str] | None = None,
        gpu_static_info_list: Sequence[Mapping[str, Any]] | None = None,
        log_additional_system_info_list: Sequence[Mapping[str, Any]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Any:
        """#33 A partial update of the system details: only the given keys are sent and replaced."""
        body = _b(
            experimentKey=experiment_key,
            user=user,
            pythonVersion=python_version,
            pythonVersionVerbose=python_version_verbose,
            pid=pid,
            osType=os_type,
            os=os,
            osRelease=os_release,
            machine=machine,
            processor=processor,
            ip=ip,
            hostname=hostname,
            command=list(command) if command is not None else None,
            executable=executable,
            networkInterfaceIps=list(network_interface_ips)
            if network_interface_ips is not None
            else None,
            osPackages=list(os_packages) if os_packages is not None else None,
            installedPackages=list(installed_packages) if installed_packages is not None else None,
            gpuStaticInfoList=[dict(g) for g in gpu_static_info_list]
            if gpu_static_info_list is not None
            else None,
            logAdditionalSystemInfoList=[dict(i) for i in log_additional_system_info_list]
            if log_additional_system_info_list is not None
            else None,
            env=dict(env) if env is not None else None,
        )
        return self._dispatch(Call("POST", "write/experiment/system-details", json=body))

    def log_git_metadata(
        self,
        experiment_key: str,
        user: str | None = None,
        root: str | None = None,
        branch: str | None = None,
        parent: str | None = None,
        origin: str | None = None,
    ) -> Any:
        """#34 Git metadata; every key is sent, ``null`` when unknown."""
        body = {
            "experimentKey": experiment_key,
            "user": user,
            "root": root,
            "branch": branch,
            "parent": parent,
            "origin": origin,
        }
        return self._dispatch(Call("POST", "write/experiment/git/metadata", json=body))

    def log_output(
        self,
        experiment_key: str,
        output_lines: Sequence[Mapping[str, Any]],
        context: str | None = None,
    ) -> Any:
        """#35 Output lines ``{output, stderr, localTimestamp, offset}``; the context goes as
        ``runContext``, the key the service is known to read (WIRE §3 #7)."""
        body = _b(experimentKey=experiment_key, runContext=context)
        body["outputLines"] = [dict(line) for line in output_lines]
        return self._dispatch(Call("POST", "write/experiment/output", json=body))

    def set_graph(self, experiment_key: str, graph: str) -> Any:
        """#36 The model graph (text)."""
        return self._dispatch(
            Call(
                "POST",
                "write/experiment/graph",
                json={"experimentKey": experiment_key, "graph": graph},
            )
        )

    def set_code(self, experiment_key: str, code: str) -> Any:
        """#37 The entry script's source."""
        return self._dispatch(
            Call(
                "POST",
                "write/experiment/code",
                json={"experimentKey": experiment_key, "code": code},
            )
        )

    def add_tags(self, experiment_key: str, tags: Sequence[str]) -> Any:
        """#38 Add tags to the existing ones."""
        return self._dispatch(
            Call(
                "POST",
                "write/experiment/tags",
                json={"experimentKey": experiment_key, "addedTags": list(tags)},
            )
        )

    def log_cloud_details(
        self, experiment_key: str, provider: str, metadata: Mapping[str, Any]
    ) -> Any:
        """#39 Cloud provider details."""
        body = {"experimentKey": experiment_key, "provider": provider, "metadata": dict(metadata)}
        return self._dispatch(Call("POST", "write/experiment/cloud-details", json=body))

    def set_file_path(self, experiment_key: str, file_path: str) -> Any:
        """#40 The entry script's path."""
        return self._dispatch(
            Call(
                "POST",
                "write/experiment/file-path",
                json={"experimentKey": experiment_key, "filePath": file_path},
            )
        )

    def log_gpu_metrics(
        self,
        experiment_key: str,
        gpus: Sequence[Mapping[str, int]],
        context: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        timestamp: int | None = None,
    ) -> Any:
        """#41 One GPU sample per GPU (bytes, percent)."""
        body: dict[str, Any] = {"experimentKey": experiment_key, "gpus": [dict(g) for g in gpus]}
        body.update(_t(context, step, epoch, timestamp))
        return self._dispatch(Call("POST", "write/experiment/gpu-metrics", json=body))

    def log_ram_metrics(
        self,
        experiment_key: str,
        total_ram: int,
        used_ram: int,
        context: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        timestamp: int | None = None,
    ) -> Any:
        """#42 RAM sample in bytes."""
        body: dict[str, Any] = {
            "experimentKey": experiment_key,
            "totalRam": int(total_ram),
            "usedRam": int(used_ram),
        }
        body.update(_t(context, step, epoch, timestamp))
        return self._dispatch(Call("POST", "write/experiment/ram-metrics", json=body))

    def log_cpu_metrics(
        self,
        experiment_key: str,
        cpu_percent_utilization: Sequence[float],
        context: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        timestamp: int | None = None,
    ) -> Any:
        """#43 CPU sample: one percent per CPU."""
        body: dict[str, Any] = {
            "experimentKey": experiment_key,
            "cpuPercentUtilization": list(cpu_percent_utilization),
        }
        body.update(_t(context, step, epoch, timestamp))
        return self._dispatch(Call("POST", "write/experiment/cpu-metrics", json=body))

    def log_load_metrics(
        self,
        experiment_key: str,
        load_average: float,
        context: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        timestamp: int | None = None,
    ) -> Any:
        """#44 1-minute load average."""
        body: dict[str, Any] = {"experimentKey": experiment_key, "loadAverage": load_average}
        body.update(_t(context, step, epoch, timestamp))
        return self._dispatch(Call("POST", "write/experiment/load-metrics", json=body))

    # ----------------------------------------------------------------- artifacts, viz, assets

    def upsert_artifact(
        self,
        artifact_name: str,
        experiment_key: str,
        artifact_type: str,
        version: str | None = None,
        is_public: bool | None = None,
    ) -> Any:
        """#45 Create or update an artifact version."""
        body = _b(
            artifactName=artifact_name,
            experimentKey=experiment_key,
            artifactType=artifact_type,
            version=version,
            isPublic=is_public,
        )
        return self._dispatch(Call("POST", "write/artifacts/upsert", json=body))

    def set_artifact_state(
        self,
        experiment_key: str,
        artifact_version_id: str,
        state: str,
        is_public: bool | None = None,
    ) -> Any:
        """#46 Close (``CLOSED``) or fail (``ERROR``) an artifact version."""
        if state not in ("CLOSED", "ERROR"):
            raise ValueError(f"state must be 'CLOSED' or 'ERROR', got {state!r}")
        body = _b(
            experimentKey=experiment_key,
            artifactVersionId=artifact_version_id,
            state=state,
            isPublic=is_public,
        )
        return self._dispatch(Call("POST", "write/artifacts/state", json=body))

    def save_viz_store(self, instance_id: str, project_id: str, store: str) -> Any:
        """#47 Save a visualization instance's store."""
        body = {"instanceId": instance_id, "projectId": project_id, "store": store}
        return self._dispatch(Call("POST", "write/viz-instance/store/save", json=body))

    def log_remote_assets(
        self, experiment_key: str, remote_assets: Sequence[Mapping[str, Any]]
    ) -> Any:
        """#48 Log remote assets (links) in one batch."""
        body = {"remoteAssets": [_b(**dict(a)) for a in remote_assets]}
        return self._dispatch(
            Call(
                "POST",
                "write/experiment/assets/remote/batch",
                _q(experimentKey=experiment_key),
                json=body,
            )
        )

    def delete_asset(self, experiment_key: str, asset_id: str) -> Any:
        """#49 Delete an asset (sent as GET, like the SDK: WIRE.md §3 #3)."""
        return self._dispatch(
            Call(
                "GET",
                "write/experiment/asset/delete",
                _q(experimentKey=experiment_key, assetId=asset_id),
            )
        )

    def add_asset_tags(self, experiment_key: str, asset_id: str, tags: Sequence[str]) -> Any:
        """#50 Tag an asset."""
        body = {"experimentKey": experiment_key, "assetId": asset_id, "tags": list(tags)}
        return self._dispatch(Call("POST", "write/experiment/asset/tag", json=body))

    def delete_asset_tag(self, experiment_key: str, asset_id: str, tag: str) -> Any:
        """#51 Remove one tag from an asset."""
        return self._dispatch(
            Call(
                "GET",
                "write/experiment/asset/tag/delete",
                _q(experimentKey=experiment_key, assetId=asset_id, tag=tag),
            )
        )

    def upload_template(self, body: Mapping[str, Any] | None = None) -> Any:
        """#52 Upload a panel template (the document defines no body: it is passed through)."""
        return self._dispatch(Call("POST", "write/template/upload", json=dict(body or {})))

    def send_rpc(self, body: Mapping[str, Any] | None = None) -> Any:
        """#53 Send an RPC (the document defines no body: it is passed through)."""
        return self._dispatch(Call("POST", "write/experiment/rpc/send", json=dict(body or {})))

    # ----------------------------------------------------------------- webhooks & accounts

    def update_webhooks(self, webhook_configs: Sequence[Mapping[str, Any]]) -> Any:
        """#54 Merge webhook configurations into the stored ones (answers 204)."""
        return self._dispatch(
            Call(
                "POST",
                "webhooks/config",
                json={"webhookConfigs": [dict(c) for c in webhook_configs]},
            )
        )

    def replace_webhooks(self, webhook_configs: Sequence[Mapping[str, Any]]) -> Any:
        """#55 Replace the stored webhook configuration (answers 204)."""
        return self._dispatch(
            Call(
                "PUT",
                "webhooks/config",
                json={"webhookConfigs": [dict(c) for c in webhook_configs]},
            )
        )

    def create_service_account(
        self,
        name: str,
        team_name: str,
        organization_name: str,
        authorized_workspaces: Sequence[str] | None = None,
    ) -> Any:
        """#56/#57 Create a service account (limited to ``authorized_workspaces`` when given)."""
        body: dict[str, Any] = {
            "name": name,
            "teamName": team_name,
            "organizationName": organization_name,
        }
        if authorized_workspaces is not None:
            body["authorizedWorkspaces"] = list(authorized_workspaces)
        return self._dispatch(Call("POST", "write/service-account", json=body))

    def rotate_api_key(self, user_name: str) -> Any:
        """#58 Rotate a service account's key; the old key stops working at once."""
        return self._dispatch(Call("GET", "write/api/rotate", _q(userName=user_name)))

    def add_workspace_member(self, user_name: str, workspace_name: str, admin: bool = False) -> Any:
        """#59 Add a user to a workspace."""
        body = {"userName": user_name, "workspaceName": workspace_name, "admin": bool(admin)}
        return self._dispatch(Call("POST", "write/add-workspace-member", json=body))

    # ----------------------------------------------------------------- reads the client needs

    def get_experiment_metadata(self, experiment_key: str) -> Any:
        """Read an experiment (404 when the key is unknown)."""
        return self._dispatch(Call("GET", "experiment/metadata", _q(experimentKey=experiment_key)))

    def get_experiment_models(self, experiment_key: str) -> Any:
        """The experiment's models: ``{"models": [{experimentModelId, modelName, ...}]}``."""
        return self._dispatch(Call("GET", "experiment/model", _q(experimentKey=experiment_key)))

    def get_registry_models(self, workspace_name: str) -> Any:
        """The workspace's registry models."""
        return self._dispatch(Call("GET", "registry-model", _q(workspaceName=workspace_name)))

    def get_registry_model_details(self, workspace_name: str, model_name: str) -> Any:
        """A registry model with its versions."""
        return self._dispatch(
            Call(
                "GET",
                "registry-model/details",
                _q(workspaceName=workspace_name, modelName=model_name),
            )
        )

    def get_account_details(self) -> Any:
        """``{"userName", "defaultWorkspaceName"}`` of the key's owner."""
        return self._dispatch(Call("GET", "account-details"))

    def get_server_version(self) -> Any:
        """The version probe ``/clientlib/isAlive/ver`` (no key needed)."""
        return self._dispatch(Call("GET", "/clientlib/isAlive/ver"))


class CallBuilder(Endpoints):
    """Builds calls without sending them: ``CallBuilder().log_metric(...)`` returns a :class:`Call`."""

    def _dispatch(self, call: Call) -> Call:
        return call


#: A shared builder (stateless).
calls = CallBuilder()
