"""What the sites of a federated analysis share, read by the workflow when it loads (so this module
imports nothing heavy).

The config hash (``consortium_settings``) covers what must be equal across sites for their bundles to
pool: the analysis's settings, the harmonized definition of the variables it uses, the time unit and
the federated block's pooling settings. It leaves out what each site sets for itself: its registry
(extract paths, read options, column names, codes, per-center outcome forms), the seed, the report
settings, the site's name, the analyses it bundles and survival.bootstrap_jobs (how the bootstrap is
split, not what it computes).
"""
from __future__ import annotations

from pipeline.config.settings import Analysis, Federated, Variable

DISPLAY_ONLY = ("label", "description")
"""Variable keys that change no number (left out of the hash)."""


def consortium_settings(name: str, analysis: Analysis, variables: dict[str, Variable], time_unit: str,
                        federated: Federated) -> dict:
    """The settings every site's bundle of analysis ``name`` must share (their hash is the bundle's
    config_hash); ``variables``: the registry variables the analysis uses."""
    settings = analysis.to_dict()
    settings["survival"].pop("bootstrap_jobs")
    return {
        "analysis": name,
        "settings": settings,
        "variables": {var: {k: v for k, v in spec.to_dict().items() if k not in DISPLAY_ONLY}
                      for var, spec in sorted(variables.items())},
        "time_unit": time_unit,
        "federated": {"time_grid": federated.time_grid, "tau2": federated.tau2,
                      "hartung_knapp": federated.hartung_knapp},
    }


def site_name(federated: Federated, centers) -> str:
    """federated.site, else the site's centers' ids joined by "+"."""
    return federated.site or "+".join(sorted(centers))
