"""Build the federated demo: the demo registry split into site studies by center, each a folder with its
own config.yaml (its own center, the consortium's analysis), and a central study of the same centers
that matches exactly on center with a propensity model per center (for the exactness check).

    .venv/bin/python scripts/federated_demo.py federated_demo [--centers center_a center_b center_c]

writes federated_demo/<center>/config.yaml per site and federated_demo/central/config.yaml. Then each
site runs the workflow in its folder and the coordinating site pools the bundles (README).
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ANALYSIS = "nets_federated"
CONSORTIUM_ANALYSIS = {
    "treatment": {"column": "treatment", "treated": "resection", "control": "iat",
                  "labels": {"treated": "resection", "control": "IAT"}},
    "cohort": [],
    "covariates": ["age", "sex", "ecog", "extrahepatic", "liver_burden_gt25"],
    "missing": "complete_case",
    "propensity": {"model": "logistic"},
    # A raw caliper (logit units): a caliper in SDs of the distance would differ between a site and
    # the central run, whose SD is the pooled one.
    "matching": {"method": "nearest", "ratio": 1, "caliper": 0.5, "std_caliper": False, "caliper_scale": "logit",
                 "replace": False, "order": "largest", "exact": [], "discard": "none"},
    "survival": {"landmarks": [12, 36, 60], "ci": "log-log", "bootstrap": 0},
}
FEDERATED = {"analyses": [ANALYSIS], "time_grid": 1, "tau2": "reml", "hartung_knapp": True}


def study_config(demo: dict, centers: list[str], central: bool = False) -> dict:
    """A study of ``centers`` with the consortium's analysis; ``central``: matched exactly on center,
    one propensity model per center (as the sites fit theirs)."""
    analysis = copy.deepcopy(CONSORTIUM_ANALYSIS)
    if central:
        analysis["matching"]["exact"] = ["center"]
        analysis["propensity"]["within"] = ["center"]
    registry = {"variables": demo["registry"]["variables"], "centers": {}}
    for center in centers:
        spec = copy.deepcopy(demo["registry"]["centers"][center])
        spec["path"] = str(REPO / spec["path"])
        registry["centers"][center] = spec
    config = {"seed": demo["seed"], "time_unit": demo["time_unit"], "registry": registry,
              "outcome": demo["outcome"], "analyses": {ANALYSIS: analysis}, "report": demo["report"]}
    if not central:
        config["federated"] = FEDERATED
    return config


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for the site studies and the central study")
    parser.add_argument("--centers", nargs="+", default=["center_a", "center_b"],
                        help="the demo centers, one site each")
    args = parser.parse_args(argv)
    demo = yaml.safe_load((REPO / "config.yaml").read_text())
    studies = {center: study_config(demo, [center]) for center in args.centers}
    studies["central"] = study_config(demo, args.centers, central=True)
    for name, config in studies.items():
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    print(f"wrote {', '.join(str(args.out / name / 'config.yaml') for name in studies)}")


if __name__ == "__main__":
    main()
