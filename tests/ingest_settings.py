"""Typed ingest settings from the partial config blocks the tests write, with the schema's
defaults filled in as the workflow fills them (pipeline.config.validate.block_with_defaults)."""
from pipeline.config.settings import Center, Outcome, Registry, Variable
from pipeline.config.validate import block_with_defaults


def as_center(block: dict | None = None) -> Center:
    return Center.from_dict(block_with_defaults(block or {}, "center"))


def as_variables(blocks: dict) -> dict[str, Variable]:
    return {name: Variable.from_dict(block_with_defaults(block, "variable")) for name, block in blocks.items()}


def as_outcome(block: dict) -> Outcome:
    return Outcome.from_dict(block)


def as_registry(block: dict) -> Registry:
    return Registry(as_variables(block["variables"]),
                    {name: as_center(center) for name, center in block["centers"].items()})
