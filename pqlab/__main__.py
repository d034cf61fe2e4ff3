"""``python -m pqlab``."""

from pqlab.cli.main import main

raise SystemExit(main())
