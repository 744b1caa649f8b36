"""Resampling PET onto the CT grid (nnU-Net needs all channels on one grid; the label lives on the CT's)."""

from __future__ import annotations

from nnunet_hecktor.errors import HecktorError

from .geometry import GridGeometry

INTERPOLATIONS: tuple[str, ...] = ("linear", "bspline")


def _interpolator(name: str) -> int:
    import SimpleITK as sitk

    table = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}
    try:
        return table[name]
    except KeyError:
        raise HecktorError(f"unknown interpolation {name!r} (choose from {', '.join(INTERPOLATIONS)})") from None


def resample_pet_to_ct(pet, reference: "GridGeometry | object", interpolation: str = "linear"):
    """Resample a PET image onto a CT grid.

    Parameters
    ----------
    pet : SimpleITK.Image
        PET on its own grid (any scalar pixel type; SUV or Bq/mL, values are not rescaled).
    reference : GridGeometry or SimpleITK.Image
        The target grid (the CT's, or the cropped CT's).
    interpolation : {"linear", "bspline"}
        Linear (default) or cubic B-spline. B-spline can overshoot near sharp edges (values slightly
        below 0 next to air); values are left as interpolated.

    Returns
    -------
    SimpleITK.Image
        float32 on the reference grid; 0 where the CT grid lies outside the PET (identity transform:
        both images are in the same physical LPS space).
    """
    import SimpleITK as sitk

    if not isinstance(reference, GridGeometry):
        reference = GridGeometry.of(reference)
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(s) for s in reference.size])
    resampler.SetOutputSpacing(reference.spacing)
    resampler.SetOutputOrigin(reference.origin)
    resampler.SetOutputDirection(reference.direction)
    resampler.SetInterpolator(_interpolator(interpolation))
    resampler.SetDefaultPixelValue(0.0)
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    resampler.SetTransform(sitk.Transform())
    if pet.GetPixelID() != sitk.sitkFloat32:
        pet = sitk.Cast(pet, sitk.sitkFloat32)
    return resampler.Execute(pet)
