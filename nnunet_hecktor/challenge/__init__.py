"""The HECKTOR grand-challenge container job (``nnunet-hecktor challenge``), 2025 and 2026.

- :func:`run_challenge`: 2025, ``/input`` (CT + PET ``.mha``, ``ehr.json``) -> the official output of a task.
- :func:`run_challenge_2026`: 2026, one run -> segmentation, T stage, N stage and ``rfs.json`` (:mod:`.run2026`).
- :mod:`.ehr`: tolerant ``ehr.json`` reading; :mod:`.outputs`: checked output writes, the ``rfs.json``
  convention; :mod:`.staging`: T/N stage (staged model or fallback); :mod:`.guards`: time guard and
  long-CT crop; :mod:`.model_location`: ``/opt/ml/model`` or the baked-in model.
- :mod:`.io`: the container interface (input reading, the three output writers).
- :mod:`.fallback`: the safest valid outputs when a case cannot be predicted.
- :mod:`.packaging`: a ``docker build`` context with a trained model (``docker/build.sh``).
- ``python -m nnunet_hecktor.challenge``: the container's entry point.
"""

from __future__ import annotations

from nnunet_hecktor.lazy_exports import lazy_exports

_EXPORTS = {
    "run_challenge": "run", "ChallengeResult": "run",
    "run_challenge_2026": "run2026", "Challenge2026Result": "run2026",
    "predict_tn_stages": "staging", "resolve_model_dir": "model_location", "write_model_archive": "packaging",
    "read_challenge_input": "io", "ChallengeCase": "io",
    "write_segmentation_output": "io", "write_rfs_output": "io", "write_hpv_output": "io",
    "fallback_values": "fallback", "FallbackValues": "fallback", "empty_segmentation_for": "fallback",
    "stage_model": "packaging", "stage_build_context": "packaging",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
