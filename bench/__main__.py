"""`python -m bench`: see `bench.harness`."""

from bench.harness import main

raise SystemExit(main())
