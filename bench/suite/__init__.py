"""The benchmark suite behind ``make bench`` (``bench/run.py`` is its entry point), one job per module.

Running:
    cli            the command line: run the scenarios, or ``--render`` saved runs
    params         the suite's parameters (Suite, JoinStorm) and the load-tester options they make
    scenarios/     one module per scenario family: fanout (burst, fixed loads), sockets (idle, hold),
                   slow, scaling (redis: issue 11's database rows), joinstorm, search (issue 13);
                   ``run_suite`` runs them in order
    harness        one run: a fresh server, the load tester, the sampler, the figures into a Run
    servers        the servers driven (ours, the baselines, ours with Redis and workers): start, ready, stop
    redis_server   the harness's own redis-server and its ``/metrics`` page of Redis's, PostgreSQL's and the
                   server's figures
    postgres_server  the harness's own throwaway PostgreSQL cluster (fsync on), a database per step, its counts
    proc, sampler  CPU and memory from /proc, once and sampled during a run
    search_corpus  the search scenario's history (Zipf-drawn words, seeded) and its queries
    search_load    that history written as schema version 3, for the store to migrate and index
    search_measure the store's search timed, and its answers checked against the corpus
    runs           Load (what a run asks of the load tester) and Run (what it measured)

Reporting:
    figures        the figures the report states and judges, computed from the runs
    targets        the issues' targets: a threshold, its figure, and the verdict from the two
    wording        sentences from figures (more, less, about as much)
    text           numbers and markdown tables
    report/        the data (model), one module per section, and the document (preamble, merge of a
                   partial run)

The package is imported as ``suite`` (``bench/run.py`` runs as a script, so ``bench/`` is first on
``sys.path``), which is also the name mypy gives it; its modules import each other relatively.
"""
