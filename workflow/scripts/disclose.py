"""Rule disclose: the shareable form of the study's aggregate results (pipeline.report.disclosure),
one file per analysis and one for the registry, for the shareable reports and manifest."""
from pipeline.io import read_json, read_result_csv, run_script, write_json
from pipeline.report.disclosure import Policy, disclose_study, records
from pipeline.report.table1 import read_table1

JSON_RESULTS = ("attrition", "matching", "survival", "balance_summary", "propensity")


def main(smk):
    analyses = {}
    for i, name in enumerate(smk.params.names):
        results = {key: read_json(smk.input[key][i]) for key in JSON_RESULTS}
        results["balance"] = read_result_csv(smk.input.balance[i])
        estimable = results["balance_summary"]["estimable"]
        results["table1"] = (read_table1 if estimable else read_result_csv)(smk.input.table1[i])
        analyses[name] = results
    policy = Policy(smk.params.min_cell, smk.params.rounding)
    registry, disclosed = disclose_study(read_json(smk.input.ingest), analyses, smk.params.origins, policy)
    write_json(registry, smk.output.registry)
    for name, path in zip(smk.params.names, smk.output.analyses):
        write_json({**disclosed[name], "balance": records(disclosed[name]["balance"]),
                    "table1": records(disclosed[name]["table1"])}, path)


run_script(main, snakemake, propagate=False)  # noqa: F821 (reads not-estimable inputs itself)
