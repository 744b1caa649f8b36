"""File input/output helpers: atomic writes and image reading with clear errors.

Every output of the plugin is written under a temporary name in the destination folder
and renamed into place, so an interrupted run never leaves a file that looks complete.
Files get the mode an ordinary ``open(..., "w")`` would give them (``0o666`` less the umask, so
0644 under the usual 022), as nnU-Net's own outputs do: colleagues on a shared server can read
a converted dataset or a trained model. (``tempfile.mkstemp`` alone would leave them 0600.)

What is renamed into place is checked first (:func:`verify_written_file`): a writer that does not
report a full disk (ITK's NIfTI writer writes short files without raising) must not leave a 0-byte or
truncated file under the final name. A failed write raises :class:`OutputWriteError`, a
:class:`~nnunet_hecktor.errors.HecktorError` (one line at the command line) that is also an
:class:`OSError` (callers that catch ``OSError`` for write failures keep working).

Folders the plugin writes its outputs into (``predict``, ``postprocess``) carry a marker file,
:data:`OUTPUT_MARKER` (:func:`mark_plugin_output`, :func:`is_plugin_output`): the converter must never take
plugin-written segmentations for source labels.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import gzip
import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, Iterator

from nnunet_hecktor.errors import HecktorError, InputDataError

TMP_PREFIX = ".tmp-"
#: Marker file in every folder the plugin writes outputs into (``predict``, ``postprocess``).
OUTPUT_MARKER = ".nnunet-hecktor-output.json"
#: Errors of a write that the user fixes by freeing space or changing the target, not by changing data.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha")


class OutputWriteError(HecktorError, OSError):
    """An output file could not be written completely (full disk, quota, file-size limit, read-only folder).

    A :class:`~nnunet_hecktor.errors.HecktorError` (the command line prints one line, no traceback) and an
    :class:`OSError` (``errno``, ``strerror`` = the problem, ``filename`` = the destination). ``note`` (e.g. the
    free space left) is added to the message only. Nothing is left under the destination's name.
    """

    def __init__(self, problem: str, path: str | os.PathLike, error_number: int | None = None, note: str = ""):
        OSError.__init__(self, error_number if error_number is not None else errno.EIO, problem, str(path))
        self.problem = problem
        self.path = str(path)
        self.note = note

    def __str__(self) -> str:
        return f"could not write {self.path}: {self.problem}" + (f" ({self.note})" if self.note else "")

    def __reduce__(self):
        return (type(self), (self.problem, self.path, self.errno, self.note))


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read with ``os.umask`` and set back
    at once (not thread-safe for that instant, hence the first way).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """Mode of a new regular file under the current umask: ``0o666 & ~umask`` (0644 under 022)."""
    return 0o666 & ~current_umask()


def free_space_note(folder: str | os.PathLike) -> str:
    """``"<N> MB free on the disk holding <folder>"``, or ``""`` when it cannot be told."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f"{free / 1e6:.1f} MB free on the disk holding {folder}"


def _write_error(exc: OSError, destination: Path) -> OutputWriteError:
    note = free_space_note(destination.parent) if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return OutputWriteError(exc.strerror or str(exc), destination, exc.errno, note)


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, allow_empty: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; rename it onto ``destination`` on success.

    The temporary name keeps the destination's suffixes (``.nii.gz`` etc.) so that writers
    that choose a format from the extension (SimpleITK, numpy) still work. On any exception
    the temporary file is removed and ``destination`` is left untouched. The file is given
    :func:`new_file_mode` before the rename (``mkstemp`` creates it 0600, and writers that
    truncate the file in place keep that mode).

    Before the rename the temporary file is checked with :func:`verify_written_file` (it exists, is not
    empty unless ``allow_empty``, and an image file is complete). A failed check, and a full disk, quota,
    file-size limit, read-only or unwritable folder reported by the writer, raise :class:`OutputWriteError`.
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(destination.suffixes)
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=destination.parent)
    except OSError as exc:
        raise _write_error(exc, destination) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        verify_written_file(tmp, allow_empty=allow_empty, destination=destination)
        # After the writer: some writers replace the file instead of writing into it.
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, destination)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OutputWriteError) or exc.errno not in _WRITE_ERRNOS:
            raise
        raise _write_error(exc, destination) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def verify_written_file(path: str | os.PathLike, expected_bytes: int | None = None, allow_empty: bool = False,
                        destination: str | os.PathLike | None = None) -> None:
    """Check a file a writer has just written: present, not empty, of the expected size, and complete.

    Parameters
    ----------
    path : path-like
        The written (usually temporary) file.
    expected_bytes : int, optional
        Exact size it must have (e.g. the encoded length of a text).
    allow_empty : bool
        Accept a 0-byte file (implied by ``expected_bytes=0``).
    destination : path-like, optional
        Name used in the error message (default ``path``).

    Raises
    ------
    OutputWriteError
        Missing, empty, of another size, or (``.nii.gz``, ``.nii``, ``.mha``) shorter than its header says
        (see :func:`verify_image_file`). A full disk is the usual cause, so the message gives the free space.
    """
    path = Path(path)
    shown = Path(destination) if destination is not None else path
    try:
        size = path.stat().st_size
    except OSError:
        raise OutputWriteError("the writer left no file", shown) from None
    if expected_bytes is not None:
        short = f"{size} bytes written of {expected_bytes}" if size != expected_bytes else None
    else:
        short = "the file is empty (0 bytes)" if size == 0 and not allow_empty else None
    if short is None and size and path.name.lower().endswith(_IMAGE_SUFFIXES):
        short = _image_file_problem(path)
    if short is not None:
        raise OutputWriteError(f"{short}: a full disk, a quota or a file-size limit?", shown, errno.EIO,
                               free_space_note(shown.parent))


def verify_image_file(path: str | os.PathLike) -> None:
    """Check that an image file just written is complete; raise :class:`OutputWriteError` if not.

    ``.nii.gz``: the gzip trailer (uncompressed size mod 2**32) must equal the size the NIfTI header implies;
    on a mismatch the stream is decompressed (a multi-member gzip is fine, a cut one is not). ``.nii``: the
    file size. ``.mha``: the size after the header (``CompressedDataSize``, or voxels x bytes per voxel;
    otherwise the image is read with SimpleITK). Voxel values are not looked at.
    """
    problem = _image_file_problem(Path(path))
    if problem is not None:
        raise OutputWriteError(problem, path, errno.EIO)


def _claims_format(path: Path, name: str) -> bool:
    """Whether the first bytes look like the format the name says (else the file is not ours to judge:
    a writer may put anything under any name, and only a cut file of the named format is an error)."""
    with path.open("rb") as stream:
        head = stream.read(64)
    if name.endswith(".nii.gz"):
        return head[:2] == b"\x1f\x8b"[:len(head[:2])]
    if name.endswith(".nii"):
        # sizeof_hdr, the first field: 348 (NIfTI-1) or 540 (NIfTI-2), either byte order.
        return len(head) < 4 or bool({348, 540} & {*struct.unpack("<i", head[:4]), *struct.unpack(">i", head[:4])})
    return head.startswith((b"ObjectType", b"NDims"))


def _image_file_problem(path: Path) -> str | None:
    from nnunet_hecktor.image_integrity import _parse_header

    name = path.name.lower()
    if not _claims_format(path, name):
        return None
    try:
        if name.endswith(".nii.gz"):
            with gzip.open(path, "rb") as stream:
                header = _parse_header(stream.read(544))
            if header is None:
                return "not a complete NIfTI file (no readable header)"
            with path.open("rb") as raw:
                raw.seek(-4, 2)
                trailer = struct.unpack("<I", raw.read(4))[0]
            if trailer == header.expected_size % (1 << 32):
                return None
            with gzip.open(path, "rb") as stream:
                total = 0
                while chunk := stream.read(1 << 24):
                    total += len(chunk)
            size = total
        elif name.endswith(".nii"):
            with path.open("rb") as stream:
                header = _parse_header(stream.read(544))
            if header is None:
                return "not a complete NIfTI file (no readable header)"
            size = path.stat().st_size
        else:
            return _mha_problem(path)
    except (EOFError, zlib.error, gzip.BadGzipFile, struct.error, OSError):
        return "the compressed data end early (truncated file)"
    if size < header.expected_size:
        return f"truncated image ({size} of {header.expected_size} bytes)"
    return None


_MET_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_FLOAT": 4, "MET_DOUBLE": 8, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8}


def _mha_problem(path: Path) -> str | None:
    """A MetaImage (``.mha``, data after the header) that is shorter than its header says."""
    with path.open("rb") as stream:
        head = stream.read(1 << 16)
    marker = head.find(b"ElementDataFile")
    end = head.find(b"\n", marker) if marker >= 0 else -1
    if end < 0:
        return "not a complete MetaImage file (no ElementDataFile line)"
    fields = {}
    for line in head[:end].decode("latin-1").splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
    size = path.stat().st_size - (end + 1)
    try:
        if fields.get("ElementDataFile") != "LOCAL":
            expected = None
        elif fields.get("CompressedData", "False") == "True":
            expected = int(fields["CompressedDataSize"]) if "CompressedDataSize" in fields else None
        else:
            voxels = 1
            for value in fields["DimSize"].split():
                voxels *= int(value)
            expected = voxels * int(fields.get("ElementNumberOfChannels", "1")) * _MET_BYTES[fields["ElementType"]]
    except (KeyError, ValueError):
        expected = None
    if expected is None:
        import SimpleITK as sitk

        try:
            sitk.ReadImage(str(path))
        except RuntimeError:
            return "the MetaImage file cannot be read back (truncated file)"
        return None
    if size < expected:
        return f"truncated image ({size} of {expected} data bytes)"
    return None


def mark_plugin_output(folder: str | os.PathLike, command: str) -> Path:
    """Mark ``folder`` as written by ``nnunet-hecktor <command>`` (creates the folder; see :data:`OUTPUT_MARKER`).

    The marker is a small JSON file (``tool``, ``command``, ``version``, ``created``). The converter skips
    marked folders, so that predictions are never read back as source labels. Returns the marker's path.
    """
    from nnunet_hecktor import __version__

    path = Path(folder) / OUTPUT_MARKER
    write_json_atomic(path, {"tool": "nnunet-hecktor", "command": str(command), "version": __version__,
                             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                             "note": "outputs of nnunet-hecktor, never source data: the converter skips this "
                                     "folder"})
    return path


def is_plugin_output(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a folder that holds the :data:`OUTPUT_MARKER` of a plugin command."""
    return (Path(folder) / OUTPUT_MARKER).is_file()


def plugin_output_command(folder: str | os.PathLike) -> str | None:
    """The command named by the marker of ``folder`` (``"predict"``...), ``"unknown"`` for an unreadable
    marker, ``None`` when the folder is not marked."""
    path = Path(folder) / OUTPUT_MARKER
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("command") or "unknown")
    except (OSError, ValueError, AttributeError):
        return "unknown"


def plugin_output_note(folder: str | os.PathLike) -> str | None:
    """For a folder scanned as source data: a warning when it holds the plugin's :data:`OUTPUT_MARKER`
    (the folder must then be skipped), else ``None``."""
    command = plugin_output_command(folder)
    if command is None:
        return None
    return (f"{folder} holds outputs of 'nnunet-hecktor {command}' ({OUTPUT_MARKER}): not source data, "
            "skipped (its segmentations are never read as labels)")


def check_output_folder(folder: str | os.PathLike, min_free_bytes: int = 0) -> Path:
    """Create ``folder`` if needed and check, before any work, that files can be written there.

    A probe file is created and removed (catches read-only disks, missing permissions and a full disk
    that cannot hold one block), and the free space must be at least ``min_free_bytes``.

    Returns
    -------
    Path
        ``folder``, resolved.

    Raises
    ------
    OutputWriteError
        The folder cannot be created or written, or the disk has less free space than asked.
    """
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "probe-", dir=folder)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        note = free_space_note(folder) if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise OutputWriteError(f"the output folder is not writable ({exc.strerror or exc})", folder, exc.errno,
                               note) from None
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise OutputWriteError(f"only {free / 1e6:.1f} MB free on its disk, at least {min_free_bytes / 1e6:.1f} MB "
                               "needed for the outputs", folder, errno.ENOSPC)
    return folder.resolve()


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``destination`` atomically (UTF-8); the file must have the encoded text's length."""
    data = text.encode("utf-8")
    with atomic_path(destination, allow_empty=not data) as tmp:
        tmp.write_bytes(data)
        verify_written_file(tmp, expected_bytes=len(data), destination=destination)


def write_json_atomic(destination: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``destination`` atomically."""
    write_text_atomic(destination, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def write_image_atomic(image, destination: str | os.PathLike, compress: bool = True) -> None:
    """Write a SimpleITK image atomically (format from the extension, e.g. ``.nii.gz``, ``.mha``).

    Before the rename the file is checked: complete (:func:`verify_image_file`), and its header, read back
    with SimpleITK, gives the image's size and pixel type.

    Raises
    ------
    OutputWriteError
        The writer failed or wrote a short file (full disk, quota, file-size limit, unwritable folder).
    """
    import SimpleITK as sitk

    destination = Path(destination)
    with atomic_path(destination) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), compress)
        except RuntimeError as exc:
            lines = [line for line in str(exc).strip().splitlines() if line.strip()]
            raise OutputWriteError(f"the image writer failed ({lines[-1].strip() if lines else 'no reason given'})",
                                   destination, errno.EIO, free_space_note(destination.parent)) from None
        verify_written_file(tmp, destination=destination)
        _check_image_header(tmp, image, destination)


def _check_image_header(path: Path, image, destination: Path) -> None:
    """Read the header of the written file back with SimpleITK; it must give the image's size and pixel type."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise OutputWriteError("the written file's header cannot be read back", destination, errno.EIO) from None
    if (tuple(reader.GetSize()) != tuple(image.GetSize())
            or reader.GetNumberOfComponents() != image.GetNumberOfComponentsPerPixel()):
        raise OutputWriteError(f"the written header gives size {reader.GetSize()}, not {image.GetSize()}",
                               destination, errno.EIO)


def read_image(path: str | os.PathLike, patient: str | None = None, what: str = "image"):
    """Read an image with SimpleITK, turning every failure into an :class:`InputDataError`.

    Parameters
    ----------
    path : path-like
        NIfTI (``.nii``/``.nii.gz``) or MetaImage (``.mha``) file.
    patient : str, optional
        PatientID, used in the error message.
    what : str
        What the file is ("CT", "PET", "label"), used in the error message.

    Returns
    -------
    SimpleITK.Image

    Raises
    ------
    InputDataError
        The file is missing, unreadable or truncated, or holds NaN/inf voxels.
    """
    import numpy as np
    import SimpleITK as sitk

    from nnunet_hecktor.image_integrity import check_image_file

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} file is missing", patient, path)
    # ITK's NIfTI reader zero-fills truncated files and zeroes NaN/inf voxels without raising,
    # so NIfTI files are checked on disk before reading.
    check_image_file(path, patient, what)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise InputDataError(f"{what} file is unreadable or truncated ({first_line})", patient, path) from None
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        # Other formats (.mha) keep non-finite values: reject them here.
        n_bad = int(np.count_nonzero(~np.isfinite(sitk.GetArrayViewFromImage(image))))
        if n_bad:
            raise InputDataError(f"{what} has {n_bad} non-finite (NaN/inf) voxels", patient, path)
    return image
