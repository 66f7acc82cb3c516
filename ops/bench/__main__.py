"""``python -m ops.bench``: see ops/bench/run.py."""

from ops.bench.run import main

raise SystemExit(main())
