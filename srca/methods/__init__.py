"""Search methods, looked up by name (the CLI, the service and the benchmarks share this).

The table itself (``METHODS``, ``Method``) lives in the leaf module :mod:`srca.method_registry`,
so that ``SearchConfig`` can validate a method's name without importing the searches."""
from __future__ import annotations

from ..method_registry import METHODS, Method
from .context import SearchContext

__all__ = ["METHODS", "Method", "SearchContext"]
