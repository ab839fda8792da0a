"""``python -m service`` is the ``logreg`` command."""

from .cli import main

raise SystemExit(main())
