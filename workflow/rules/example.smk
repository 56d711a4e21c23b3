# The embedded synthetic example with ground truth (snakescope.synthetic).


rule example:
    output:
        files=example_files(),
    log:
        step="results/logs/example.log",
    localrule: LOCAL_RULES  # execution.local_rules: not a cluster job
    params:
        outdir=example_outdir,
        seed=lookup(dpath="example/seed", within=config),
        code=code_version(steps.example),
    run:
        step(steps.example, input, output, params, log)
