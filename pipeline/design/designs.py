"""The designs an analysis can use, by the names sensitivity grids (``sensitivity.design``) and the
design forest use: every registered matching method (nearest, ...) and every weighting scheme
(ipw_att, ipw_ate, overlap). A method or scheme added to its registry is a design with no other
change.
"""
from __future__ import annotations

from pipeline.config.settings import Analysis


def _registries():
    from pipeline.design.matching import METHODS
    from pipeline.design.weighting import SCHEMES
    return METHODS, SCHEMES


def design_names() -> list[str]:
    methods, schemes = _registries()
    return [*methods, *(scheme.name for scheme in schemes.values())]


def apply_design(analysis: dict, name: str) -> None:
    """Set a (default-filled) analysis config's design to the one called ``name``: the matching
    method, or the weighting scheme's estimand; its other settings stay."""
    methods, schemes = _registries()
    if name in methods:
        analysis["design"] = "matching"
        analysis["matching"]["method"] = name
        return
    analysis["design"] = "weighting"
    analysis["weighting"]["estimand"] = next(s.estimand for s in schemes.values() if s.name == name)


def design_name(analysis: Analysis) -> str:
    """The analysis's design by name: its matching method or its weighting scheme."""
    if analysis.design == "matching":
        return analysis.matching.method
    return _registries()[1][analysis.weighting.estimand].name


def design_label(name: str) -> str:
    """A design's name for a reader: 'nearest matching', 'IPW (ATE)', 'overlap weights (ATO)'."""
    methods, schemes = _registries()
    if name in methods:
        return f"{name} matching"
    return next(s.label for s in schemes.values() if s.name == name)
