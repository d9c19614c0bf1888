"""Built-in components of this kind, registered through the ``prosper`` entry-point group."""

from prosper import hookimpl  # noqa: F401  (hook implementations arrive with their issue)
