"""The model graph tab: the text a run logged with ``set_model_graph``, drawn as a tree.

Two shapes are recognised and shown as a collapsible tree (``<details>`` elements: they fold
without any script):

- PyTorch's module printout (``str(model)``, what Lightning and Hugging Face models give):
  one line per module, containers opening with ``Name(`` and closing with ``)``;
- a JSON description such as Keras' ``model.to_json()``: layers by class and name, their
  settings as leaves.

Anything else is shown as it was logged, in a monospace block. The raw text is always one
click away.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html import escape
from typing import Any

#: Deeper levels start folded (the first two are open).
OPEN_LEVELS = 2
#: A graph with more lines or tree entries than this is only shown as text (a tree that
#: big helps no one, and its page would be heavy).
MAX_LINES = 20_000
#: A JSON value longer than this is cut in a leaf (the raw text has it whole).
MAX_VALUE = 120

#: Layer settings worth reading in a folded layer's line (Keras names).
KEY_SETTINGS = (
    "batch_shape",
    "units",
    "filters",
    "kernel_size",
    "strides",
    "pool_size",
    "activation",
    "rate",
    "input_dim",
    "output_dim",
    "num_heads",
    "key_dim",
    "axis",
)

_TORCH_LINE = re.compile(r"^\((?P<name>[^()]*)\): (?P<rest>.*)$")
_TORCH_MODULE = re.compile(r"^(?P<times>\d+ x )?(?P<type>[A-Za-z_][\w.]*)(?P<args>\(.*)?$")


@dataclass
class Node:
    """One tree entry: its label (HTML) and its children."""

    label: str
    children: list[Node] = field(default_factory=list)
    #: whether it starts unfolded (None: by depth, see ``OPEN_LEVELS``)
    open: bool | None = None

    def count(self) -> int:
        return 1 + sum(c.count() for c in self.children)


def _torch_label(line: str) -> str:
    m = _TORCH_LINE.match(line)
    name, rest = (m["name"], m["rest"]) if m else ("", line)
    out = f'<span class="g-name">{escape(name)}</span> ' if name else ""
    mod = _TORCH_MODULE.match(rest)
    if mod is None:
        return out + f'<span class="g-args">{escape(rest)}</span>'
    if mod["times"]:
        out += f'<span class="g-times">{escape(mod["times"].strip())}</span> '
    out += f'<span class="g-type">{escape(mod["type"])}</span>'
    args = mod["args"] or ""
    if args and args != "()":
        out += f'<span class="g-args">{escape(args)}</span>'
    return out


def parse_torch(text: str) -> Node | None:
    """The tree of a PyTorch module printout, or None when ``text`` is not one."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 2 or not lines[0].endswith("(") or lines[-1] != ")":
        return None
    root = Node(_torch_label(lines[0][:-1]))
    stack = [root]
    for line in lines[1:]:
        if not stack:
            return None  # text after the root's closing line
        if line == ")":
            stack.pop()
        elif line.endswith("("):
            node = Node(_torch_label(line[:-1]))
            stack[-1].children.append(node)
            stack.append(node)
        else:
            stack[-1].children.append(Node(_torch_label(line)))
    return root if not stack and root.children else None


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _json_node(label: str, value: Any) -> Node:
    """A JSON value as a node; ``{"class_name", "config"}`` objects (Keras) by class and name."""
    if isinstance(value, dict) and "class_name" in value and isinstance(value.get("config"), dict):
        config = value["config"]
        head = f'<span class="g-type">{escape(str(value["class_name"]))}</span>'
        if config.get("name"):
            head = f'<span class="g-name">{escape(str(config["name"]))}</span> ' + head
        if label:
            head = f'<span class="g-key">{escape(label)}</span> ' + head
        brief = ", ".join(
            f"{k}={_short(config[k])}" for k in KEY_SETTINGS if config.get(k) is not None
        )
        if brief:
            head += f' <span class="g-args">{escape(brief)}</span>'
        node = Node(head)
        layers = config.get("layers")
        for k, v in config.items():
            if k in ("name", "layers") or v is None:  # unset settings are noise
                continue
            node.children.append(_json_node(k, v))
        if isinstance(layers, list):
            for layer in layers:
                child = _json_node("", layer)
                child.open = False  # a layer reads on one line; its settings on demand
                node.children.append(child)
        return node
    if isinstance(value, dict) and value:
        node = Node(f'<span class="g-key">{escape(label or "{}")}</span>')
        node.children = [_json_node(str(k), v) for k, v in value.items()]
        return node
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        node = Node(f'<span class="g-key">{escape(label or "[]")}</span>')
        node.children = [_json_node(f"[{i}]", v) for i, v in enumerate(value)]
        return node
    return Node(
        (f'<span class="g-key">{escape(label)}</span> ' if label else "")
        + f'<span class="g-args">{escape(_short(value))}</span>'
    )


def parse_json(text: str) -> Node | None:
    """The tree of a JSON model description, or None when ``text`` is no JSON object/array."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(value, dict | list) or not value:
        return None
    return _json_node("", value)


def _html(node: Node, depth: int) -> str:
    if not node.children:
        return f'<li class="g-leaf">{node.label}</li>'
    inner = "".join(_html(c, depth + 1) for c in node.children)
    n = len(node.children)
    is_open = depth < OPEN_LEVELS if node.open is None else node.open
    count = f'<span class="g-count">{n} item{"" if n == 1 else "s"}</span>'
    return (
        f"<li><details{' open' if is_open else ''}><summary>{node.label} {count}"
        f"</summary><ul>{inner}</ul></details></li>"
    )


def render(text: str) -> str:
    """HTML of the graph tab for the logged graph ``text`` (every value escaped)."""
    raw = f'<pre class="code graph-raw">{escape(text)}</pre>'
    tree = None
    if text.count("\n") <= MAX_LINES:
        tree = parse_torch(text) or parse_json(text)
    if tree is not None and tree.count() > MAX_LINES:
        tree = None
    if tree is None:
        return f'<div class="graph" data-shape="text">{raw}</div>'
    shape = "json" if text.lstrip().startswith(("{", "[")) else "torch"
    nodes = tree.count()
    return (
        f'<div class="graph" data-shape="{shape}"><div class="toolbar">'
        f'<span class="muted small">{nodes} entries</span>'
        '<button type="button" class="btn-ghost" data-graph="open">Expand all</button>'
        '<button type="button" class="btn-ghost" data-graph="close">Collapse all</button></div>'
        f'<ul class="graph-tree">{_html(tree, 0)}</ul>'
        f'<details class="graph-text"><summary>Raw text</summary>{raw}</details></div>'
    )
