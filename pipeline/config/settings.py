"""Typed settings: the validated, default-filled config (pipeline.config.validate) with names and types.

The JSON schema (schema.yaml) owns shapes, enums and defaults; these classes only name the filled
values, so the stages read ``matching.caliper``, not ``analysis["matching"]["caliper"]``. A key
the schema leaves optional without a default is None here.

Each rule gets only the settings it uses: the Snakefile builds the study's settings once
(``Study.from_config``), takes from them the block or stage view a rule needs (``Analysis.cohort``,
``Analysis.propensity_design``, ...) and hands it to the rule as a plain dict (``to_dict``:
Snakemake compares plain parameters between runs to decide what to rerun). The rule's script
turns it back into the typed object (``from_dict``).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any


class Settings:
    """Base of every settings class: frozen dataclasses built from and turned into plain dicts."""

    @classmethod
    def from_dict(cls, data: dict):
        hints = typing.get_type_hints(cls)
        values = {f.name: _typed(hints[f.name], data.get(f.name)) for f in dataclasses.fields(cls)
                  if f.init}
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain dicts, lists and scalars (tuples become lists), e.g. for a rule's params."""
        return _plain(dataclasses.asdict(self))


def _typed(hint, value):
    """``value`` (plain, from the config) as the type ``hint`` names."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _typed(next(a for a in args if a is not type(None)), value)
    if isinstance(hint, type) and issubclass(hint, Settings):
        return hint.from_dict(value)
    if origin is tuple:
        return tuple(_typed(args[0], v) for v in value)
    if origin is dict:
        return {k: _typed(args[1], v) for k, v in value.items()}
    return value


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- the registry -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variable(Settings):
    type: str
    levels: tuple[str, ...] | None
    min: float | None
    max: float | None
    required: bool | None
    label: str | None
    description: str | None

    def display(self, name: str) -> str:
        return self.label or name


@dataclass(frozen=True)
class ReadOptions(Settings):
    sep: str | None
    decimal: str
    encoding: str
    quotechar: str
    date_format: str | None
    date_formats: dict[str, str]
    sheet: int | str
    na_values: tuple[str, ...]
    keep_default_na: bool


@dataclass(frozen=True)
class Center(Settings):
    path: str
    format: str | None
    read: ReadOptions
    columns: dict[str, str | None]
    codes: dict[str, dict]
    scale: dict[str, float]
    outcome: Outcome | None       # this center's own outcome form; None: the study's


@dataclass(frozen=True)
class Registry(Settings):
    variables: dict[str, Variable]
    centers: dict[str, Center]
    id_scope: str                 # global: ids unique across centers; center: <center>:<id>

    @property
    def id_variable(self) -> str:
        return next(name for name, v in self.variables.items() if v.type == "id")


@dataclass(frozen=True)
class Outcome(Settings):
    """Either dates (time_zero, end, event[, event_date]) or a ready time (time, event).

    A center's own outcome (Center.outcome) has no name, and its ready time may have its own
    ``time_unit`` (None: the study's)."""
    event: str
    name: str | None
    time_zero: str | None
    end: str | None
    event_date: str | None
    time: str | None
    time_unit: str | None

    @property
    def from_dates(self) -> bool:
        return self.time_zero is not None


# --- an analysis --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Treatment(Settings):
    """The treatment column and its two compared levels: text for a category column, 1/0 for a
    binary one (pipeline.config.validate turns the spellings true/false, yes/no into 1/0)."""
    column: str
    treated: str | int
    control: str | int
    labels: dict[str, str] | None

    def label(self, arm: str) -> str:
        """Display name of an arm ("treated" or "control"); a binary column's arm by default as
        "<column> = 1"."""
        level = getattr(self, arm)
        default = level if isinstance(level, str) else f"{self.column} = {level}"
        return (self.labels or {}).get(arm, default)


@dataclass(frozen=True)
class Propensity(Settings):
    model: str
    column: str | None
    splines: dict[str, int]
    within: tuple[str, ...]


@dataclass(frozen=True)
class Matching(Settings):
    method: str
    ratio: int
    caliper: float | None
    std_caliper: bool
    caliper_scale: str
    replace: bool
    order: str
    exact: tuple[str, ...]
    discard: str
    distance: str
    mahalanobis: tuple[str, ...]
    min_controls: float | None
    max_controls: float | None

    def mahalanobis_covariates(self, covariates: tuple[str, ...]) -> tuple[str, ...]:
        """The covariates of the Mahalanobis distance: those listed that the analysis has (a
        subgroup analysis loses its subgroup variable, constant within it), else all of them."""
        if not self.mahalanobis:
            return tuple(covariates)
        return tuple(name for name in self.mahalanobis if name in covariates)


@dataclass(frozen=True)
class Weighting(Settings):
    """Propensity-score weights (design: weighting): pipeline.design.weighting."""
    estimand: str
    stabilize: bool
    trim: float | None


@dataclass(frozen=True)
class Imputation(Settings):
    """Multiple imputation (missing: multiple_imputation): pipeline.imputation."""
    m: int
    approach: str
    iterations: int
    donors: int


@dataclass(frozen=True)
class Survival(Settings):
    rmst_tau: float | None
    landmarks: tuple[float, ...]
    ci: str
    bootstrap: int
    bootstrap_jobs: int
    km_bands: bool


@dataclass(frozen=True)
class Selection(Settings):
    """What the cohort stage uses: who enters the analysis and which columns it keeps."""
    treatment: Treatment
    cohort: tuple[str, ...]
    min_days_at_risk: float
    missing: str
    covariates: tuple[str, ...]
    needed: tuple[str, ...]       # columns every row must have: exact-matching variables, a precomputed score


@dataclass(frozen=True)
class PropensityDesign(Settings):
    """What the propensity stage uses: the model, its covariates and the distance matched on."""
    covariates: tuple[str, ...]
    missing: str
    propensity: Propensity
    caliper_scale: str
    discard: str


@dataclass(frozen=True)
class Analysis(Settings):
    treatment: Treatment
    cohort: tuple[str, ...]
    min_days_at_risk: float
    covariates: tuple[str, ...]
    missing: str
    propensity: Propensity
    design: str
    matching: Matching
    weighting: Weighting
    survival: Survival
    subgroups: tuple[str, ...]
    derived_from: dict[str, Any] | None
    imputation: Imputation

    @property
    def imputed(self) -> bool:
        """Whether missing covariates are multiply imputed (pipeline.imputation)."""
        return self.missing == "multiple_imputation"

    def completed(self) -> "Analysis":
        """The analysis of one completed (imputed) data set: nothing is missing any more."""
        return dataclasses.replace(self, missing="complete_case")

    @property
    def estimand(self) -> str:
        """The estimand the design targets: matching's is the ATT, weighting's its configured one."""
        return self.weighting.estimand if self.design == "weighting" else "ATT"

    @property
    def selection(self) -> Selection:
        exact = self.matching.exact if self.design == "matching" else ()
        needed = (*exact, *self.propensity.within,
                  *((self.propensity.column,) if self.propensity.model == "precomputed" else ()))
        return Selection(self.treatment, self.cohort, self.min_days_at_risk, self.missing, self.covariates,
                         tuple(dict.fromkeys(needed)))

    @property
    def variable_names(self) -> tuple[str, ...]:
        """The variables the analysis's reports describe: covariates, the subgroup variables."""
        subgroup = (self.derived_from or {}).get("subgroup", {}).get("variable")
        return tuple(dict.fromkeys([*self.covariates, *self.subgroups, *([subgroup] if subgroup else [])]))

    @property
    def propensity_design(self) -> PropensityDesign:
        return PropensityDesign(self.covariates, self.missing, self.propensity, self.matching.caliper_scale,
                                self.matching.discard)


# --- the study ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Report(Settings):
    min_cell: int
    relevant_hr: float
    rounding: int | None = None


@dataclass(frozen=True)
class Federated(Settings):
    analyses: tuple[str, ...]
    site: str | None
    time_grid: float
    tau2: str
    hartung_knapp: bool
    pool: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class ReportContext(Settings):
    """What the reports use besides the analyses' own settings."""
    seed: int
    time_unit: str
    outcome: Outcome
    report: Report
    variables: dict[str, Variable]    # those the reported analyses use (labels, levels, types)
    centers: dict[str, str]           # center -> extract path, for provenance


@dataclass(frozen=True)
class Study(Settings):
    seed: int
    time_unit: str
    registry: Registry
    outcome: Outcome
    analyses: dict[str, Analysis]
    report: Report
    federated: Federated

    @classmethod
    def from_config(cls, config: dict) -> "Study":
        """The settings of a config that pipeline.config.validate.prepare_config returned."""
        return cls.from_dict(config)

    def variables_of(self, names) -> dict[str, Variable]:
        """The registry variables among ``names`` (an analysis may also use center and index_year)."""
        return {name: self.registry.variables[name] for name in names if name in self.registry.variables}

    def report_context(self, variable_names) -> ReportContext:
        return ReportContext(self.seed, self.time_unit, self.outcome, self.report, self.variables_of(variable_names),
                             {center: spec.path for center, spec in self.registry.centers.items()})
