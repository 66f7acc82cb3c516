"""The oneauth benchmark harness behind ``make bench`` (issue 6).

Run from the repository root with the project's virtualenv::

    .venv/bin/python -m ops.bench --quick          # < 3 min on 2 cores
    .venv/bin/python -m ops.bench                   # 1, 1,000 and 10,000 apps

Modules, in the order a run uses them: ``config`` (options), ``machine``
(what we run on), ``cluster`` (a throwaway Postgres), ``cpu_limits`` and
``limits`` (the ceilings), ``fleet`` (provisioning, migrations), ``servers``
(uvicorn processes), ``bank`` and ``setup_client`` (accounts and tokens),
``scenarios`` and ``lua/`` (what wrk sends), ``wrk`` and ``loadrun`` (runs and
repetitions), ``procstat`` and ``pgstats`` (CPU split, memory, DB work),
``verifier_load``, ``profile`` (py-spy), ``stats``, ``report`` and ``chart``.
"""
