"""Study configuration: JSON-schema validation, defaults, and the semantic checks run before any job.

Every problem found is collected and raised together as one `ConfigError`, so a user fixes the
config in one pass and never sees a traceback.
"""
from __future__ import annotations

import copy
import functools
import itertools
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from pipeline.config.checks import registry_problems
from pipeline.config.settings import Analysis, Propensity, Study, Treatment, Variable
from pipeline.design.designs import apply_design
from pipeline.errors import ConfigError
from pipeline.ingest.harmonize import BINARY_TOKENS, DTYPES, outcome_roles

SCHEMA_PATH = Path(__file__).parent / "schema.yaml"

COVARIATE_TYPES = {"numeric", "integer", "binary", "category"}


def load_schema() -> dict:
    """The config schema, its method choices taken from the method registries (a method added
    there is a valid ``matching.method`` / ``propensity.model`` / ``weighting.estimand`` and a
    design of ``sensitivity.design`` with no other change)."""
    from pipeline.design.designs import design_names
    from pipeline.design.matching import METHODS
    from pipeline.design.propensity import MODELS
    from pipeline.design.weighting import SCHEMES

    schema = copy.deepcopy(_schema_file())
    analysis = schema["$defs"]["analysis"]["properties"]
    analysis["matching"]["properties"]["method"]["enum"] = list(METHODS)
    analysis["propensity"]["properties"]["model"]["enum"] = list(MODELS)
    analysis["weighting"]["properties"]["estimand"]["enum"] = list(SCHEMES)
    analysis["sensitivity"]["properties"]["design"]["items"]["enum"] = design_names()
    return schema


@functools.cache
def _schema_file() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def prepare_config(config: dict, workdir: Path | str = ".") -> dict:
    """Validate `config` and return a copy with every default filled in.

    Raises ConfigError naming each offending key, file or column.
    """
    schema = load_schema()
    _validate_schema(config, schema)
    config = fill_defaults(copy.deepcopy(config), schema, schema)
    config["analyses"] = expand_analyses(config["analyses"], config["registry"]["variables"])
    _validate_schema(config, schema)  # the derived analyses too (e.g. a grid value of the wrong type)
    problems = semantic_problems(config, Path(workdir))
    if problems:
        raise ConfigError("the config has problems:\n  - " + "\n  - ".join(problems))
    _use_treatment_levels(config)
    return config


def _validate_schema(config: dict, schema: dict) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = [f"{_key_path(e)}: {_schema_message(e)}" for e in errors]
        raise ConfigError("the config does not match its schema:\n  - " + "\n  - ".join(lines))


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"{error.message} (allowed: {', '.join(sorted(error.schema.get('properties', {})))})"
    if error.validator == "oneOf" and error.context:
        return "; or ".join(sorted({c.message for c in error.context}))
    return error.message


def fill_defaults(instance, schema: dict, root: dict):
    """Fill `default`s of object properties recursively (through $ref, additionalProperties, and the
    branch of a oneOf that the instance matches)."""
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return instance
    for branch in schema.get("oneOf", []):
        if jsonschema.Draft202012Validator(branch).is_valid(instance):
            return fill_defaults(instance, branch, root)
    for name, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])
        if name in instance:
            instance[name] = fill_defaults(instance[name], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        known = schema.get("properties", {})
        for name in instance:
            if name not in known:
                instance[name] = fill_defaults(instance[name], extra, root)
    return instance


def block_with_defaults(block: dict, definition: str) -> dict:
    """A copy of one config block (e.g. a center) with its schema defaults; ``definition`` names
    the block's entry in the schema's $defs (center, analysis, variable)."""
    schema = load_schema()
    return fill_defaults(copy.deepcopy(block), schema["$defs"][definition], schema)


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref:
        node = root
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node
    return schema


# --- derived analyses: subgroups and sensitivity grids ----------------------------------------

def expand_analyses(analyses: dict, variables: dict) -> dict:
    """Each analysis, followed by its sensitivity variants and its subgroup analyses.

    A derived analysis is a complete analysis of its own (its own cohort, propensity model and
    matching: matching is redone within a subgroup), with `derived_from` naming its parent.
    """
    expanded = {}
    for name, analysis in analyses.items():
        expanded[name] = analysis
        expanded.update(sensitivity_variants(name, analysis))
        expanded.update(subgroup_analyses(name, analysis, variables))
    return expanded


def _derived(analysis: dict, parent: str, **origin) -> dict:
    child = copy.deepcopy(analysis)
    child["subgroups"], child["sensitivity"] = [], {}
    child["derived_from"] = {"analysis": parent, **origin}
    return child


def sensitivity_variants(name: str, analysis: dict) -> dict:
    """Every combination of the grid's values, named by its values; ``design`` values
    (pipeline.design.designs) set the design with its method or estimand. A combination that
    repeats the analysis or an earlier combination (e.g. the analysis's own design, or weighting
    designs that differ only in matching settings) is left out."""
    grid = _grid(analysis["sensitivity"])
    variants, seen = {}, [_design_settings(analysis)]
    for combination in itertools.product(*[values for _, _, values in grid]) if grid else []:
        child = _derived(analysis, name, variant={})
        for (block, key, _), value in zip(grid, combination):
            if block == "design":
                apply_design(child, value)
                child["derived_from"]["variant"]["design"] = value
            else:
                child[block][key] = value
                child["derived_from"]["variant"][f"{block}.{key}"] = value
        if _design_settings(child) in seen:
            continue
        seen.append(_design_settings(child))
        suffix = "_".join(f"{key}-{value}" for (_, key, _), value in zip(grid, combination))
        variants[f"{name}__{suffix}"] = child
    return variants


def _grid(sensitivity: dict) -> list[tuple[str, str, list]]:
    """(block, key, values) per varied setting; the list of designs is one entry of its own."""
    grid = []
    for block, settings in sensitivity.items():
        if block == "design":
            grid.append(("design", "design", settings))
        else:
            grid += [(block, key, values) for key, values in settings.items()]
    return grid


WEIGHTING_USES_OF_MATCHING = ("caliper_scale", "discard")
"""The matching settings a weighting design uses: both decide the propensity stage's discards."""


def _design_settings(analysis: dict) -> dict:
    """The settings that make the analysis what it is: not where it comes from, and of the matching
    and weighting blocks only what its design uses."""
    own = {k: v for k, v in analysis.items() if k not in ("derived_from", "sensitivity", "subgroups")}
    if own["design"] == "weighting":
        own["matching"] = {k: v for k, v in own["matching"].items() if k in WEIGHTING_USES_OF_MATCHING}
    else:
        own.pop("weighting")
    return own


def subgroup_analyses(name: str, analysis: dict, variables: dict) -> dict:
    subgroups = {}
    for variable in analysis["subgroups"]:
        spec = variables.get(variable, {})
        levels = spec.get("levels", []) if spec.get("type") == "category" else [0, 1]
        for level in levels:
            child = _derived(analysis, name, subgroup={"variable": variable, "level": level})
            child["cohort"] = [*analysis["cohort"], f"{variable} == {level!r}"]
            child["covariates"] = [c for c in analysis["covariates"] if c != variable]
            subgroups[f"{name}__{variable}_{level}"] = child
    return subgroups


# --- semantic checks --------------------------------------------------------------------------

def semantic_problems(config: dict, workdir: Path) -> list[str]:
    """Everything the schema cannot express: names that exist, types that fit together, files and
    their columns.

    The checks read the typed settings of the schema-valid, filled config: the ingest helpers they
    reuse (column mapping, header reading, required variables) take those, and a key's value is an
    attribute instead of a lookup with a default.
    """
    study = Study.from_config(config)
    columns = analysis_columns(study)
    problems = []
    for name, analysis in study.analyses.items():
        problems += [f"analyses.{name}.{p}" for p in analysis_problems(analysis, study, columns)]
    problems += [f"federated.analyses: '{name}' is not an analysis (nor a subgroup or sensitivity variant)"
                 for name in study.federated.analyses if name not in study.analyses]
    return problems + registry_problems(study.registry, study.outcome, workdir)


def analysis_columns(study: Study) -> dict[str, str]:
    """Variable name -> type, for every column an analysis may refer to."""
    columns = {name: spec.type for name, spec in study.registry.variables.items()}
    columns["center"] = "category"
    if study.outcome.from_dates:
        columns["index_year"] = "integer"
    return columns


def analysis_problems(analysis: Analysis, study: Study, columns: dict[str, str]) -> list[str]:
    problems = _treatment_problems(analysis.treatment, study.registry.variables)
    outcomes = [study.outcome, *(c.outcome for c in study.registry.centers.values() if c.outcome is not None)]
    outcome_vars = {var for outcome in outcomes for var in outcome_roles(outcome).values()}
    for cov in analysis.covariates:
        if cov not in columns:
            problems.append(f"covariates: '{cov}' is not a registry variable")
        elif columns[cov] not in COVARIATE_TYPES:
            problems.append(f"covariates: '{cov}' has type {columns[cov]}; covariates must be "
                            "numeric, integer, binary or category")
        elif cov in outcome_vars or cov == analysis.treatment.column:
            problems.append(f"covariates: '{cov}' is the treatment or part of the outcome")
    problems += _cohort_problems(analysis.cohort, columns)
    problems += _propensity_problems(analysis.propensity, analysis.covariates, columns)
    for var in analysis.subgroups:
        if columns.get(var) not in {"binary", "category"}:
            problems.append(f"subgroups: '{var}' must be a binary or category registry variable")
    for key, names in (("matching.exact", analysis.matching.exact), ("propensity.within", analysis.propensity.within)):
        for var in names:
            if var not in columns:
                problems.append(f"{key}: '{var}' is not a registry variable (or center, index_year)")
            elif columns[var] in {"id", "date", "numeric"}:
                problems.append(f"{key}: '{var}' has type {columns[var]}; it needs a category, binary or "
                                "integer variable")
    problems += _matching_problems(analysis)
    return problems


def _matching_problems(analysis: Analysis) -> list[str]:
    """Settings of the matching block that only some methods or distances use."""
    matching = analysis.matching
    subgroup = (analysis.derived_from or {}).get("subgroup", {}).get("variable")
    problems = [f"matching.mahalanobis: '{var}' is not a covariate of the analysis"
                for var in matching.mahalanobis if var not in analysis.covariates and var != subgroup]
    if matching.distance == "mahalanobis" and not matching.mahalanobis_covariates(analysis.covariates):
        problems.append("matching.distance: mahalanobis needs covariates")
    if analysis.imputed and analysis.imputation.approach == "across" and matching.distance == "mahalanobis":
        problems.append("matching.distance: mahalanobis needs complete covariates; with missing: "
                        "multiple_imputation and imputation.approach: across the one matching has none "
                        "(use approach within)")
    if matching.replace and matching.method != "nearest":
        problems.append(f"matching.replace: {matching.method} matching is without replacement")
    bounds = [key for key in ("min_controls", "max_controls") if getattr(matching, key) is not None]
    if bounds and matching.method != "full":
        problems += [f"matching.{key}: applies to method full only" for key in bounds]
    elif len(bounds) == 2 and matching.min_controls > matching.max_controls:
        problems.append("matching.min_controls: must not exceed max_controls")
    return problems


def _treatment_problems(treatment: Treatment, variables: dict[str, Variable]) -> list[str]:
    column = treatment.column
    if column not in variables:
        return [f"treatment.column: '{column}' is not a registry variable"]
    spec = variables[column]
    if spec.type not in ("category", "binary"):
        return [f"treatment.column: '{column}' must be a category or binary variable"]
    known = list(spec.levels or ()) if spec.type == "category" else "a binary column: 1/0 or true/false"
    arms = {"treated": treatment.treated, "control": treatment.control}
    levels = {arm: treatment_level(level, spec) for arm, level in arms.items()}
    problems = [f"treatment.{arm}: '{arms[arm]}' is not a level of {column} ({known})"
                for arm, level in levels.items() if level is None]
    if arms["treated"] == arms["control"] or (None not in levels.values() and levels["treated"] == levels["control"]):
        problems.append("treatment: treated and control must differ")
    return problems


def treatment_level(level, spec: Variable) -> str | int | None:
    """A configured treatment level as the harmonized column holds it, None when it is not one of
    its levels: for a category column the level's text (an unquoted number matches its text), for
    a binary column 1 or 0 from any spelling a binary cell accepts (1/0, true/false, yes/no)."""
    if spec.type == "binary":
        return BINARY_TOKENS.get(str(level).strip().casefold())
    text = None if isinstance(level, bool) else str(level)
    return text if text in (spec.levels or ()) else None


def _use_treatment_levels(config: dict) -> None:
    """Each analysis's treated and control levels, in place, as the harmonized column holds them
    (``treated: true`` of a binary column becomes 1): the stages compare them with its values."""
    for analysis in config["analyses"].values():
        treatment = analysis["treatment"]
        spec = Variable.from_dict(config["registry"]["variables"][treatment["column"]])
        for arm in ("treated", "control"):
            treatment[arm] = treatment_level(treatment[arm], spec)


def _propensity_problems(propensity: Propensity, covariates: tuple[str, ...], columns: dict[str, str]) -> list[str]:
    problems = []
    if propensity.model == "precomputed":
        if propensity.column is None:
            problems.append("propensity: model precomputed needs `column`")
        elif columns.get(propensity.column) != "numeric":
            problems.append(f"propensity.column: '{propensity.column}' must be a numeric registry variable")
    problems += [f"propensity.splines: '{name}' is not a numeric or integer covariate of the analysis"
                 for name in propensity.splines
                 if name not in covariates or columns.get(name) not in ("numeric", "integer")]
    return problems


def _cohort_problems(steps: tuple[str, ...], columns: dict[str, str]) -> list[str]:
    """Evaluate each query on an empty frame of the right dtypes: syntax errors and unknown names
    show up here instead of halfway through a run."""
    empty = pd.DataFrame({name: pd.Series(dtype=DTYPES[kind]) for name, kind in columns.items()})
    problems = []
    for i, query in enumerate(steps):
        try:
            result = empty.query(query)
        except Exception as exc:  # pandas raises many types for a bad expression
            problems.append(f"cohort[{i}]: cannot evaluate {query!r}: {exc}")
            continue
        if not isinstance(result, pd.DataFrame):
            problems.append(f"cohort[{i}]: {query!r} is not a row filter")
    return problems
