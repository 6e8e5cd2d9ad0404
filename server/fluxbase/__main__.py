"""Allows `python -m fluxbase`, the same as the `fluxbase` console script."""

from fluxbase.cli import main

raise SystemExit(main())
