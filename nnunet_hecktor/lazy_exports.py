"""Lazy re-exports for package ``__init__`` modules.

Subpackages whose modules import torch or nnU-Net (``trainers``, ``prediction``, ``challenge``)
re-export their public names lazily, so that importing one light module of them does not load
the whole training stack. Measured (fresh interpreter, median of 5, 2-core machine; see
``docs/reference/layers.md``): ``import nnunet_hecktor.trainers.head_metrics`` 0.32 s / 125
modules lazily vs 21.6 s / 3,934 modules eagerly; ``import nnunet_hecktor.prediction`` 0.001 s vs
0.41 s. nnU-Net's trainer search (the entry module star-imports every trainer) loads everything
either way (~21 s).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict) -> tuple[
        Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Return ``(__getattr__, __dir__, __all__)`` for a package that re-exports names lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping
        Public name -> submodule (relative to ``package``) that defines it.
    namespace : dict
        The package's ``globals()``, for ``dir()``.

    Examples
    --------
    >>> __getattr__, __dir__, __all__ = lazy_exports(__name__, {"predict": "api"}, globals())  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__, sorted(exports)
