"""Exceptions for problems in the user's input, reported without a traceback by the CLI."""

from __future__ import annotations

from os import PathLike


class HecktorError(Exception):
    """An error the user can fix (bad input, wrong folder, missing model); the CLI prints it plainly."""


class UsageError(HecktorError):
    """The command was called wrongly (missing or contradictory options): the CLI exits with 2, as argparse does."""


class InputDataError(HecktorError):
    """Bad input data for one patient or file.

    The message always names the patient (if known), the file (if any) and what is wrong,
    e.g. ``"CHUP-012: .../CHUP-012.nii.gz: label values {3} outside {0, 1, 2}"``.
    """

    def __init__(self, problem: str, patient: str | None = None, path: str | PathLike | None = None):
        self.problem = problem
        self.patient = patient
        self.path = None if path is None else str(path)
        parts = [p for p in (patient, self.path) if p]
        super().__init__(": ".join(parts + [problem]))

    def __reduce__(self):
        # Keep patient and path when the error crosses a worker process (multiprocessing pickles it).
        return (type(self), (self.problem, self.patient, self.path))
