"""Config validation: schema errors and semantic problems come back as one readable ConfigError."""
import subprocess
import sys

import pytest
import yaml

from pipeline.config.settings import Study
from pipeline.config.validate import (analysis_columns, analysis_problems, expand_analyses, fill_defaults, load_schema,
                                      prepare_config)
from pipeline.errors import ConfigError
from tests.conftest import REPO


def test_demo_config_is_valid_and_gets_defaults(demo_config):
    study = prepare_config(demo_config, REPO)
    assert study["report"]["min_cell"] == 5
    assert study["analyses"]["all_patients"]["matching"]["caliper"] == 0.2
    assert len(study["registry"]["centers"]) == 9


def test_defaults_fill_nested_blocks_left_out(demo_config):
    analysis = demo_config["analyses"]["all_patients"]
    for key in ("matching", "survival", "propensity", "missing", "cohort"):
        analysis.pop(key)
    schema = load_schema()
    filled = fill_defaults(demo_config, schema, schema)["analyses"]["all_patients"]
    assert filled["matching"]["ratio"] == 1 and filled["matching"]["order"] == "largest"
    assert filled["survival"]["ci"] == "log-log" and filled["survival"]["bootstrap"] == 1000
    assert filled["propensity"] == {"model": "logistic", "splines": {}, "within": []}
    assert filled["missing"] == "complete_case" and filled["cohort"] == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["analyses"]["all_patients"]["matching"].update(ratio=0), "analyses.all_patients.matching.ratio"),
    (lambda c: c["analyses"]["all_patients"]["matching"].update(order="biggest"), "'biggest' is not one of"),
    (lambda c: c["analyses"]["all_patients"]["matching"].update(caliper=-0.1), "matching.caliper"),
    (lambda c: c.update(colour="blue"), "'colour' was unexpected"),
    (lambda c: c["registry"]["variables"]["age"].update(type="float"), "registry.variables.age.type"),
    (lambda c: c.update(time_unit="fortnights"), "time_unit"),
    # what the semantic checks no longer look at, because the schema says it
    (lambda c: c["registry"].update(variables={}), "registry.variables: {} should be non-empty"),
    (lambda c: c["registry"]["variables"].update(ki67="numeric"), "registry.variables.ki67: 'numeric' is not of type"),
    (lambda c: c["registry"]["variables"]["sex"].update(levels=[]), "variables.sex.levels: [] should be non-empty"),
    (lambda c: c["registry"]["variables"]["sex"].update(levels="female"), "registry.variables.sex.levels"),
    (lambda c: c["registry"]["variables"]["sex"].update(levels=["f", "f"]), "registry.variables.sex.levels"),
    (lambda c: c["registry"]["variables"]["age"].update(min="ten"), "registry.variables.age.min"),
    (lambda c: c["registry"]["variables"]["age"].update(max=True), "registry.variables.age.max"),
    (lambda c: c["registry"]["variables"]["treatment"].update(required="yes"), "registry.variables.treatment.required"),
    (lambda c: c["registry"].update(centers={}), "registry.centers: {} should be non-empty"),
    (lambda c: c["registry"]["centers"]["center_e"].pop("path"), "registry.centers.center_e: 'path' is a required"),
    (lambda c: c["registry"]["centers"]["center_e"].update(format="sav"), "registry.centers.center_e.format"),
    (lambda c: c["registry"]["centers"]["center_b"]["read"].update(decimal=";"), "center_b.read.decimal"),
    (lambda c: c["registry"]["centers"]["center_b"]["read"].update(quotechar="''"), "center_b.read.quotechar"),
    (lambda c: c["registry"]["centers"]["center_b"]["read"].update(sep=";;"), "center_b.read.sep"),
    (lambda c: c["registry"]["centers"]["center_a"]["codes"].update(sex="M"), "center_a.codes.sex"),
    (lambda c: c["registry"]["centers"]["center_a"].update(scale={"age": 0}), "center_a.scale.age"),
    (lambda c: c["outcome"].pop("end"), "outcome: 'end' is a required property"),
    (lambda c: c["outcome"].update(time="age"), "outcome: Additional properties are not allowed"),
])
def test_schema_errors_name_the_key(demo_config, mutate, expected):
    mutate(demo_config)
    with pytest.raises(ConfigError) as err:
        prepare_config(demo_config, REPO)
    assert expected in str(err.value)


def _problems(config, **changes):
    analysis = config["analyses"]["all_patients"]
    for key, value in changes.items():
        analysis[key] = value
    schema = load_schema()
    study = Study.from_config(fill_defaults(config, schema, schema))
    return analysis_problems(study.analyses["all_patients"], study, analysis_columns(study))


def test_unknown_covariate_and_non_covariate_types(demo_config):
    problems = _problems(demo_config, covariates=["age", "weight", "treatment_date", "death"])
    text = "\n".join(problems)
    assert "'weight' is not a registry variable" in text
    assert "'treatment_date' has type date" in text
    assert "'death' is the treatment or part of the outcome" in text


def test_treatment_levels_must_exist(demo_config):
    problems = _problems(demo_config, treatment={"column": "treatment", "treated": "surgery", "control": "iat"})
    assert problems == ["treatment.treated: 'surgery' is not a level of treatment (['resection', 'iat'])"]


def test_bad_cohort_queries_are_caught_before_running(demo_config):
    problems = _problems(demo_config, cohort=["liver_burden_gt25 == 1", "tumour_size > 5", "age >"])
    assert len(problems) == 2
    assert problems[0].startswith("cohort[1]: cannot evaluate 'tumour_size > 5'")
    assert problems[1].startswith("cohort[2]: cannot evaluate 'age >'")


def test_derived_center_and_index_year_are_usable(demo_config):
    assert _problems(demo_config, cohort=["index_year >= 1995", "center != 'x'"],
                     covariates=["age", "index_year", "center"]) == []


def test_precomputed_model_needs_a_numeric_column(demo_config):
    problems = _problems(demo_config, propensity={"model": "precomputed"})
    assert problems == ["propensity: model precomputed needs `column`"]


def test_subgroups_and_sensitivity_grid_fan_out(demo_config):
    analysis = demo_config["analyses"]["all_patients"]
    analysis["subgroups"] = ["functional", "primary_site"]
    analysis["sensitivity"] = {"matching": {"caliper": [0.1, 0.25]}, "propensity": {"model": ["gradient_boosting"]}}
    schema = load_schema()
    config = fill_defaults(demo_config, schema, schema)
    expanded = expand_analyses(config["analyses"], config["registry"]["variables"])
    names = [n for n in expanded if n.startswith("all_patients")]
    assert names == [
        "all_patients",
        "all_patients__caliper-0.1_model-gradient_boosting", "all_patients__caliper-0.25_model-gradient_boosting",
        "all_patients__functional_0", "all_patients__functional_1",
        "all_patients__primary_site_pancreas", "all_patients__primary_site_small_bowel",
        "all_patients__primary_site_other",
    ]
    variant = expanded["all_patients__caliper-0.1_model-gradient_boosting"]
    assert variant["matching"]["caliper"] == 0.1 and variant["propensity"]["model"] == "gradient_boosting"
    assert expanded["all_patients"]["matching"]["caliper"] == 0.2, "the parent keeps its settings"
    pancreas = expanded["all_patients__primary_site_pancreas"]
    assert pancreas["cohort"] == ["primary_site == 'pancreas'"]
    assert "primary_site" not in pancreas["covariates"]
    assert pancreas["derived_from"] == {"analysis": "all_patients",
                                        "subgroup": {"variable": "primary_site", "level": "pancreas"}}


def test_subgroup_variable_must_be_categorical(demo_config):
    assert _problems(demo_config, subgroups=["age"]) == [
        "subgroups: 'age' must be a binary or category registry variable"]


def test_splines_name_a_continuous_covariate(demo_config):
    covariates = demo_config["analyses"]["all_patients"]["covariates"]
    assert "age" in covariates and "ki67" not in covariates and "functional" in covariates
    problems = _problems(demo_config, propensity={"splines": {"age": 4, "ki67": 3, "functional": 3}})
    assert problems == ["propensity.splines: 'ki67' is not a numeric or integer covariate of the analysis",
                        "propensity.splines: 'functional' is not a numeric or integer covariate of the analysis"]


def test_every_semantic_problem_comes_in_one_config_error(demo_config):
    demo_config["registry"]["variables"]["age"]["min"] = 120
    demo_config["registry"]["centers"]["center_a"]["columns"]["not_there"] = "age"
    demo_config["analyses"]["all_patients"]["covariates"].append("weight")
    with pytest.raises(ConfigError) as err:
        prepare_config(demo_config, REPO)
    lines = str(err.value).splitlines()
    assert lines[0] == "the config has problems:"
    assert "  - analyses.all_patients.covariates: 'weight' is not a registry variable" in lines
    assert "  - registry.variables.age: min 120 is greater than max 100" in lines
    assert "  - registry.centers.center_a (resources/registry/center_a.csv): mapped column 'not_there' is not in " \
           "the file's header" in lines


def test_exact_matching_variables_must_exist(demo_config):
    demo_config["analyses"]["all_patients"]["matching"]["exact"] = ["center", "ward"]
    with pytest.raises(ConfigError) as caught:
        prepare_config(demo_config, REPO)
    assert "analyses.all_patients.matching.exact: 'ward' is not a registry variable" in str(caught.value)
    assert "'center'" not in str(caught.value)


def test_method_choices_come_from_the_registries():
    from pipeline.design.matching import METHODS
    from pipeline.design.propensity import MODELS

    analysis = load_schema()["$defs"]["analysis"]["properties"]
    assert analysis["matching"]["properties"]["method"]["enum"] == list(METHODS)
    assert analysis["propensity"]["properties"]["model"]["enum"] == list(MODELS)


def test_every_registered_method_resolves_to_its_kind():
    from pipeline.design.matching import METHODS
    from pipeline.design.matching.common import MatchingMethod
    from pipeline.design.propensity import MODELS
    from pipeline.design.propensity.common import PropensityModel

    assert all(isinstance(METHODS[name], MatchingMethod) for name in METHODS)
    assert all(isinstance(MODELS[name], PropensityModel) for name in MODELS)
    assert "nearest" in METHODS and "mahalanobis" not in METHODS


def test_validating_a_config_leaves_the_numerical_libraries_unimported(demo_config):
    """Snakemake validates the config each time it reads the workflow: the method modules' numba,
    scipy and ortools would be a second of start-up before any job."""
    code = ("import sys, yaml; from pipeline.config.validate import prepare_config; "
            "prepare_config(yaml.safe_load(sys.stdin), sys.argv[1]); "
            "print(sorted(m for m in ('numba', 'scipy', 'ortools', 'sklearn', 'statsmodels') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(REPO)], input=yaml.safe_dump(demo_config),
                          capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"


# --- a binary treatment column, the centers' own id numbering and outcome forms -----------------

def _binary_treatment(config, treated, control):
    analysis = config["analyses"]["all_patients"]
    analysis.update(treatment={"column": "functional", "treated": treated, "control": control}, subgroups=[],
                    covariates=[c for c in analysis["covariates"] if c != "functional"])
    return config


@pytest.mark.parametrize("treated, control", [(1, 0), (True, False), ("yes", "no"), ("1", "0"), (0, 1)])
def test_a_binary_treatment_column_accepts_the_binary_spellings(demo_config, treated, control):
    study = Study.from_config(prepare_config(_binary_treatment(demo_config, treated, control), REPO))
    treatment = study.analyses["all_patients"].treatment
    expected = (1, 0) if treated in (1, True, "yes", "1") else (0, 1)
    assert (treatment.treated, treatment.control) == expected
    assert treatment.label("treated") == f"functional = {expected[0]}"


@pytest.mark.parametrize("treated, control, problem", [
    (2, 0, "treatment.treated: '2' is not a level of functional (a binary column: 1/0 or true/false)"),
    ("maybe", 0, "treatment.treated: 'maybe' is not a level of functional (a binary column: 1/0 or true/false)"),
    (1, True, "treatment: treated and control must differ"),
    ("no", 0, "treatment: treated and control must differ"),
])
def test_a_binary_treatment_column_needs_two_different_known_levels(demo_config, treated, control, problem):
    with pytest.raises(ConfigError) as err:
        prepare_config(_binary_treatment(demo_config, treated, control), REPO)
    assert f"analyses.all_patients.{problem}" in str(err.value)


def test_a_treatment_column_must_be_category_or_binary_and_levels_are_text(demo_config):
    assert _problems(demo_config, treatment={"column": "ki67", "treated": 1, "control": 0}) == [
        "treatment.column: 'ki67' must be a category or binary variable"]
    assert _problems(demo_config, treatment={"column": "treatment", "treated": True, "control": "iat"}) == [
        "treatment.treated: 'True' is not a level of treatment (['resection', 'iat'])"]


def test_an_unquoted_number_names_a_category_level(demo_config):
    demo_config["registry"]["variables"]["grade"]["levels"] = ["1", "2", "3"]
    demo_config["registry"]["centers"]["center_d"]["codes"]["grade"] = {"Grade 1": "1", "Grade 2": "2", "Grade 3": "3"}
    analysis = demo_config["analyses"]["all_patients"]
    analysis.update(treatment={"column": "grade", "treated": 3, "control": 1}, subgroups=[],
                    covariates=[c for c in analysis["covariates"] if c != "grade"])
    treatment = prepare_config(demo_config, REPO)["analyses"]["all_patients"]["treatment"]
    assert (treatment["treated"], treatment["control"]) == ("3", "1")


def test_id_scope_defaults_to_global_and_knows_two_scopes(demo_config):
    assert Study.from_config(prepare_config(demo_config, REPO)).registry.id_scope == "global"
    demo_config["registry"]["id_scope"] = "site"
    with pytest.raises(ConfigError, match=r"registry.id_scope: 'site' is not one of \['global', 'center'\]"):
        prepare_config(demo_config, REPO)


@pytest.mark.parametrize("outcome, expected", [
    ({"time": "age", "event": "death", "time_unit": "fortnights"}, "'fortnights' is not one of"),
    ({"time": "age", "event": "death", "name": "os"}, "Additional properties are not allowed"),
    ({"time_zero": "treatment_date", "event": "death"}, "'end' is a required property"),
])
def test_a_centers_outcome_has_the_two_forms(demo_config, outcome, expected):
    demo_config["registry"]["centers"]["center_e"]["outcome"] = outcome
    with pytest.raises(ConfigError) as err:
        prepare_config(demo_config, REPO)
    assert "registry.centers.center_e.outcome" in str(err.value) and expected in str(err.value)


def test_a_centers_outcome_variables_cannot_be_covariates(demo_config):
    demo_config["registry"]["variables"]["fu_days"] = {"type": "integer"}
    demo_config["registry"]["centers"]["center_e"]["outcome"] = {"time": "fu_days", "event": "death",
                                                                  "time_unit": "days"}
    assert _problems(demo_config, covariates=["age", "fu_days"]) == [
        "covariates: 'fu_days' is the treatment or part of the outcome"]


def test_imputation_defaults_and_mahalanobis_needs_the_within_approach(demo_config):
    schema = load_schema()
    imputed = Study.from_config(fill_defaults(demo_config, schema, schema)).analyses["imputed_all_patients"]
    assert imputed.imputed and imputed.imputation.iterations == 10 and imputed.imputation.donors == 5
    across = _problems(demo_config, missing="multiple_imputation", imputation={"approach": "across"},
                       matching={"distance": "mahalanobis"})
    assert across == ["matching.distance: mahalanobis needs complete covariates; with missing: multiple_imputation "
                      "and imputation.approach: across the one matching has none (use approach within)"]
    assert _problems(demo_config, imputation={"approach": "within"}) == []
