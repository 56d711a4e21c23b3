# Batched execution (execution.mode: batched): one job per batch of images runs
# the whole per-image chain in memory - raw image read once, then diameter (auto),
# smooth, threshold, refine, label, measure, rings and, for time-lapses, track -
# and writes the files of rules label, measure, rings and track (same bytes), plus
# the batch's share of the dataset tables (Parquet shards read by rule tables).
#
# A rule's outputs cannot come from a function, so there is one rule per batch,
# made in this loop; a rule without wildcards wins over the per-step rules that
# could make the same files. Batches are cut from the sorted image names by
# content (snakescope.batching.stable_batches): adding images reruns only the
# batches they fall into. params.plan hashes the batch's images, their files'
# fingerprints and settings: any change reruns exactly the batches it touches.

# In a cluster job (--allowed-rules: the job's own rule) only the job's batch rule is made.
_ALLOWED = runner.allowed_rules(sys.argv[1:])

if BATCHED:
    for _dataset in config["datasets"]:
        for _batch in BATCHES[_dataset]:
            _name = batch_rule_name(_dataset, _batch)
            if _ALLOWED is not None and _name not in _ALLOWED:
                continue
            _plan = batch_plan(_dataset, _batch)
            _inputs = batch_inputs(_plan)
            PLANS[_name] = (_dataset, _plan)

            rule:
                name:
                    _name
                input:
                    _inputs,
                output:
                    **batch_outputs(_dataset, _batch, _plan),
                log:
                    step=f"results/{_dataset}/logs/batch/{_batch.id}.log",
                priority: len(_batch.images)  # the largest batches first: a short tail
                localrule: batch_is_small(_inputs)  # execution.local_batch_mb
                threads: batch_threads()
                resources:
                    **batch_resources(_batch),
                params:
                    plan=batch_version(_plan),
                    code=[code_version(f) for f in BATCH_STEPS],
                run:
                    run_batch(rule, output, log)
