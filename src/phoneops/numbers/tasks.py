"""Background work of the numbers domain (imported by workers through phoneops.registry)."""

from phoneops.numbers import (
    exports,  # noqa: F401  (registers the "numbers.export" job)
    imports,  # noqa: F401  (registers the import preview, apply and undo jobs)
)
