"""The HECKTOR 2025 grand-challenge container job (``nnunet-hecktor challenge``).

- :func:`run_challenge`: ``/input`` (CT + PET ``.mha``, ``ehr.json``) -> the official output of a task.
- :mod:`.io`: the container interface (input reading, the three output writers).
- :mod:`.fallback`: the safest valid outputs when a case cannot be predicted.
- :mod:`.packaging`: a ``docker build`` context with a trained model (``docker/build.sh``).
- ``python -m nnunet_hecktor.challenge``: the container's entry point.
"""

from __future__ import annotations

from nnunet_hecktor.lazy_exports import lazy_exports

_EXPORTS = {
    "run_challenge": "run", "ChallengeResult": "run",
    "read_challenge_input": "io", "ChallengeCase": "io",
    "write_segmentation_output": "io", "write_rfs_output": "io", "write_hpv_output": "io",
    "fallback_values": "fallback", "FallbackValues": "fallback", "empty_segmentation_for": "fallback",
    "stage_model": "packaging", "stage_build_context": "packaging",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
