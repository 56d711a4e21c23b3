# The embedded synthetic example with ground truth (snakescope.synthetic).


rule example:
    output:
        files=example_files(),
    params:
        outdir=example_outdir,
        seed=lookup(dpath="example/seed", within=config),
        code=code_version(steps.example),
    log:
        step="results/logs/example.log",
    run:
        step(steps.example, input, output, params, log)
