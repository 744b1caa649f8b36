"""Container entry point: ``python -m nnunet_hecktor.challenge [extra nnunet-hecktor challenge options]``.

Settings come from the environment (set in the Dockerfile), command-line options override them:

``HECKTOR_EDITION``  ``2025`` (default) or ``2026`` (one run, all four outputs, no task)
``HECKTOR_TASK``     2025: 1, 2 or 3 (several: "1 2 3"); required
``HECKTOR_MODEL``    model folder (default ``/opt/app/model``)
``HECKTOR_INPUT``    input folder (default ``/input``)
``HECKTOR_OUTPUT``   output folder (default ``/output``)
``HECKTOR_DEVICE``   ``auto`` (default), ``cuda`` or ``cpu``
``HECKTOR_MIRRORING`` ``0`` disables test-time mirroring (default on)
``HECKTOR_RFS_CONVENTION`` 2026: ``time`` (default, ``-risk``) or ``risk``
``HECKTOR_TIME_BUDGET``    2026: seconds for the whole case (default 1320)

2026: ``HECKTOR_MODEL`` unset means the mounted ``/opt/ml/model`` (the extracted ``model.tar.gz``),
else the model baked into the image (``/opt/app/model``), see :mod:`.model_location`.
"""

from __future__ import annotations

import os
import sys


def container_argv(environ=None, extra=None) -> list[str]:
    """The ``nnunet-hecktor challenge`` arguments the container runs (environment + ``extra``)."""
    environ = os.environ if environ is None else environ
    if environ.get("HECKTOR_EDITION", "2025").strip() == "2026":
        argv = ["challenge", "--edition", "2026", "--input", environ.get("HECKTOR_INPUT", "/input"),
                "--output", environ.get("HECKTOR_OUTPUT", "/output"), "--device", environ.get("HECKTOR_DEVICE", "auto"),
                "--rfs-convention", environ.get("HECKTOR_RFS_CONVENTION", "time")]
        for variable, option in (("HECKTOR_MODEL", "--model"), ("HECKTOR_MODEL_MOUNT", "--model-mount"),
                                 ("HECKTOR_TIME_BUDGET", "--time-budget")):
            if environ.get(variable, "").strip():
                argv += [option, environ[variable].strip()]
        if environ.get("HECKTOR_MIRRORING", "1").strip().lower() in ("0", "false", "no", "off"):
            argv.append("--no-mirroring")
        return argv + list(extra or [])
    argv = ["challenge", "--task", *environ.get("HECKTOR_TASK", "").replace(",", " ").split(),
            "--model", environ.get("HECKTOR_MODEL", "/opt/app/model"),
            "--input", environ.get("HECKTOR_INPUT", "/input"),
            "--output", environ.get("HECKTOR_OUTPUT", "/output"),
            "--device", environ.get("HECKTOR_DEVICE", "auto")]
    if environ.get("HECKTOR_MIRRORING", "1").strip().lower() in ("0", "false", "no", "off"):
        argv.append("--no-mirroring")
    return argv + list(extra or [])


def main(argv=None) -> int:
    from nnunet_hecktor.cli import main as cli_main

    extra = sys.argv[1:] if argv is None else list(argv)
    edition_2026 = os.environ.get("HECKTOR_EDITION", "").strip() == "2026"
    if not edition_2026 and not os.environ.get("HECKTOR_TASK", "").strip() and "--task" not in extra:
        print("nnunet-hecktor challenge container: set HECKTOR_TASK (1, 2 or 3) or HECKTOR_EDITION=2026",
              file=sys.stderr)
        return 2
    return cli_main(container_argv(extra=extra))


if __name__ == "__main__":
    raise SystemExit(main())
