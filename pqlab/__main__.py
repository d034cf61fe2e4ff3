"""``python -m pqlab``."""

from pqlab.cli import main

raise SystemExit(main())
