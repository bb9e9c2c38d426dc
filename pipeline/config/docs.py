"""docs/config.md, generated from the config schema (its single source): every key with its type,
default and description.

    python -m pipeline.config.docs > docs/config.md

tests/test_docs.py fails when the committed page differs from what the schema generates.
"""
from __future__ import annotations

import json
import sys

from pipeline.config.validate import load_schema

INTRO = """# Study configuration (`config.yaml`)

Every key a study's config may hold, generated from `pipeline/config/schema.yaml` by
`python -m pipeline.config.docs > docs/config.md` (do not edit by hand). `<name>` stands for a key
the study chooses (a variable, a center, an analysis). The repository's `config.yaml` is a complete,
commented example. A config is validated against the schema and checked for meaning (files exist,
columns and levels are known) before any job starts; every problem is listed in one message.
"""


def render(schema: dict) -> str:
    lines = [INTRO]
    _section(lines, schema, schema, path="", depth=2)
    return "\n".join(lines).rstrip() + "\n"


def _section(lines: list[str], node: dict, root: dict, path: str, depth: int) -> None:
    """The keys of an object node as a table, then a section per key that is itself an object."""
    node = _resolve(node, root)
    properties = node.get("properties", {})
    nested = []
    if properties:
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for name, sub in properties.items():
            sub = _resolve(sub, root)
            key = f"{path}.{name}" if path else name
            lines.append(f"| `{key}` | {_type(sub, root)} | {_default(sub)} | {_description(sub)} |")
            if _is_object(sub, root):
                nested.append((key, sub))
        lines.append("")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and _is_object(_resolve(extra, root), root):
        nested.append((f"{path}.<name>" if path else "<name>", _resolve(extra, root)))
    for key, sub in nested:
        lines += [f"{'#' * depth} `{key}`", ""]
        if sub.get("description"):
            lines += [_text(sub["description"]), ""]
        for i, branch in enumerate(sub.get("oneOf", []), start=1):
            lines += [f"Form {i}:", ""]
            _section(lines, branch, root, key, depth + 1)
        _section(lines, sub, root, key, depth + 1)


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def _is_object(node: dict, root: dict) -> bool:
    node = _resolve(node, root)
    if "oneOf" in node:
        return True
    extra = node.get("additionalProperties")
    return "properties" in node or (isinstance(extra, dict) and _is_object(extra, root))


def _type(node: dict, root: dict) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node:
        return "object (see below)"
    kind = node.get("type", "object" if _is_object(node, root) else "any")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(kinds)
    if "items" in node:
        text += f" of {_resolve(node['items'], root).get('type', 'any')}"
    bounds = [f"{word} {node[key]}" for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"),
                                                       ("maximum", "≤")) if key in node]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _default(node: dict) -> str:
    return f"`{json.dumps(node['default'])}`" if "default" in node else ""


def _description(node: dict) -> str:
    return _text(node.get("description", "")).replace("|", "\\|")


def _text(description: str) -> str:
    return " ".join(description.split())


if __name__ == "__main__":
    sys.stdout.write(render(load_schema()))
