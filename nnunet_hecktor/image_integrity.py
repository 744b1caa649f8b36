"""Integrity of NIfTI files before SimpleITK reads them.

Why this exists: ITK's NIfTI reader (SimpleITK 2.5 / ITK 5.4) silently zero-fills a truncated ``.nii`` or
``.nii.gz`` file and silently turns NaN/inf voxels into 0, so neither a broken download nor non-finite
voxels can be seen in the image it returns. This module looks at the file itself:

- truncation: for ``.nii.gz`` the gzip trailer (uncompressed size mod 2**32) is compared with the size the
  header implies (``vox_offset + voxels * bitpix / 8``); only on a mismatch is the stream decompressed to
  tell a truncated file from an unusual (e.g. multi-member) gzip. For ``.nii`` the file size is compared.
- non-finite voxels: float32/float64 data are decompressed and scanned (PET on its own grid: a few tens of MB).

MetaImage (``.mha``) needs none of this: ITK raises on short files and keeps NaN (checked after reading).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nnunet_hecktor.errors import InputDataError

_FLOAT_TYPES = {16: np.float32, 64: np.float64}  # NIfTI datatype codes
_CHUNK = 1 << 24


@dataclass(frozen=True)
class _NiftiHeader:
    byteorder: Literal["<", ">"]
    datatype: int
    bitpix: int
    voxels: int
    vox_offset: int

    @property
    def expected_size(self) -> int:
        return self.vox_offset + self.voxels * self.bitpix // 8


_BYTE_ORDERS: tuple[Literal["<", ">"], ...] = ("<", ">")


def _parse_header(head: bytes) -> _NiftiHeader | None:
    if len(head) < 348:
        return None
    for order in _BYTE_ORDERS:
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348:
            ndim, *dims = struct.unpack(order + "8h", head[40:56])
            datatype, bitpix = struct.unpack(order + "2h", head[70:74])
            vox_offset = int(struct.unpack(order + "f", head[108:112])[0])
            break
        if size == 540 and len(head) >= 540:
            datatype, bitpix = struct.unpack(order + "2h", head[12:16])
            ndim, *dims = struct.unpack(order + "8q", head[16:80])
            vox_offset = int(struct.unpack(order + "q", head[168:176])[0])
            break
    else:
        return None
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    voxels = int(np.prod([max(int(d), 1) for d in dims[:ndim]], dtype=np.int64))
    return _NiftiHeader(order, int(datatype), int(bitpix), voxels, max(vox_offset, 352 if size == 348 else 544))


def _scan_non_finite(stream, header: _NiftiHeader) -> tuple[int, int, int]:
    """Read ``stream`` (positioned at 0) to the end; return (bytes read, NaN count, inf count)."""
    total = len(stream.read(header.vox_offset))
    dtype = None
    if header.datatype in _FLOAT_TYPES:
        dtype = np.dtype(_FLOAT_TYPES[header.datatype]).newbyteorder(header.byteorder)
    n_nan = n_inf = 0
    remainder = b""
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        if dtype is None:
            continue
        data = remainder + chunk
        usable = len(data) // dtype.itemsize * dtype.itemsize
        values = np.frombuffer(data[:usable], dtype=dtype)
        n_nan += int(np.isnan(values).sum())
        n_inf += int(np.isinf(values).sum())
        remainder = data[usable:]
    return total, n_nan, n_inf


def check_image_file(path: str | Path, patient: str | None = None, what: str = "image") -> None:
    """Raise :class:`InputDataError` if a NIfTI file is truncated or holds NaN/inf voxels.

    Other formats, and files whose header is not NIfTI, are left to the image reader.
    """
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith(".nii.gz"):
            with gzip.open(path, "rb") as stream:
                header = _parse_header(stream.read(544))
            if header is None:
                return
            needs_scan = header.datatype in _FLOAT_TYPES
            if not needs_scan:
                with path.open("rb") as raw:
                    raw.seek(-4, 2)
                    trailer = struct.unpack("<I", raw.read(4))[0]
                needs_scan = trailer != header.expected_size % (1 << 32)
            if not needs_scan:
                return
            with gzip.open(path, "rb") as stream:
                size, n_nan, n_inf = _scan_non_finite(stream, header)
        elif name.endswith(".nii"):
            with path.open("rb") as stream:
                header = _parse_header(stream.read(544))
                if header is None:
                    return
                if header.datatype not in _FLOAT_TYPES:
                    size, n_nan, n_inf = path.stat().st_size, 0, 0
                else:
                    stream.seek(0)
                    size, n_nan, n_inf = _scan_non_finite(stream, header)
        else:
            return
    except EOFError:
        raise InputDataError(f"{what} file is unreadable or truncated (the compressed data ends early)",
                             patient, path) from None
    except zlib.error as exc:
        raise InputDataError(f"{what} file is unreadable or truncated (corrupt compressed data: {exc})",
                             patient, path) from None
    except OSError as exc:
        if not path.is_file():
            return  # the reader reports missing files
        raise InputDataError(f"{what} file is unreadable or truncated ({exc})", patient, path) from None
    if size < header.expected_size:
        raise InputDataError(f"{what} file is unreadable or truncated ({size} of {header.expected_size} bytes)",
                             patient, path)
    if n_nan or n_inf:
        raise InputDataError(f"{what} has non-finite voxels ({n_nan} NaN, {n_inf} inf)", patient, path)
