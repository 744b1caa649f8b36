"""A trained model folder as one deliverable: its prognosis stage built as deployed, and the whole
folder exported and imported.

- :mod:`.build`: ``nnunet-hecktor prognosis build`` (out-of-fold masks -> post-processing ->
  features -> patient-level models of every target -> staged in ``<model>/prognosis/``).
- :mod:`.archive`: ``nnunet-hecktor export-model`` / ``import-model`` (nnU-Net's zip layout with the
  stage, post-processing and container settings).
"""

from __future__ import annotations

from nnunet_hecktor.lazy_exports import lazy_exports

_EXPORTS = {
    "build_stage": "build", "BuildResult": "build",
    "export_model": "archive", "import_model": "archive",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
