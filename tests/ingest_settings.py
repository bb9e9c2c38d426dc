"""Typed ingest settings from the partial config blocks the tests write, with the schema's
defaults filled in as the workflow fills them (pipeline.config.validate.block_with_defaults)."""
import copy

from pipeline.config.settings import Center, Outcome, Registry, Variable
from pipeline.config.validate import block_with_defaults, fill_defaults, load_schema


def as_center(block: dict | None = None) -> Center:
    return Center.from_dict(block_with_defaults(block or {}, "center"))


def as_variables(blocks: dict) -> dict[str, Variable]:
    return {name: Variable.from_dict(block_with_defaults(block, "variable")) for name, block in blocks.items()}


def as_outcome(block: dict) -> Outcome:
    return Outcome.from_dict(block)


def as_registry(block: dict) -> Registry:
    schema = load_schema()
    return Registry.from_dict(fill_defaults(copy.deepcopy(block), schema["properties"]["registry"], schema))
