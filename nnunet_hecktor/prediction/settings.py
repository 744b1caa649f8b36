"""How a model's training data were converted, so that prediction repeats exactly that preprocessing.

``nnunet-hecktor convert`` records its options in the raw dataset's ``dataset.json`` under
``hecktor_conversion`` (interpolation of the PET onto the CT grid, crop mode, head-and-neck box);
nnU-Net copies ``dataset.json`` into every trained model folder, so the options travel with the
model. A model trained on data that were not converted by the plugin has no such block: prediction
then assumes the converter's defaults (linear PET interpolation, no crop) and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from nnunet_hecktor.errors import HecktorError

CONVERSION_KEY = "hecktor_conversion"


@dataclass(frozen=True)
class ConversionSettings:
    """Preprocessing applied by the converter before nnU-Net saw the images.

    Attributes
    ----------
    interpolation : {"linear", "bspline"}
        Interpolation used to resample the PET onto the CT grid (outside value 0).
    crop : {None, "overlap", "headneck"}
        Crop of the CT grid (None = whole CT grid).
    headneck_box_mm : tuple of float
        Box size (x, y, z) in mm of the ``"headneck"`` crop.
    recorded : bool
        False when the model folder carries no record and the defaults are assumed.
    """

    interpolation: str = "linear"
    crop: str | None = None
    headneck_box_mm: tuple[float, float, float] = (200.0, 200.0, 310.0)
    recorded: bool = True

    @classmethod
    def from_dataset_json(cls, dataset_json: Mapping[str, Any]) -> "ConversionSettings":
        """Read the ``hecktor_conversion`` block of a model's ``dataset.json`` (defaults when absent)."""
        from nnunet_hecktor.dataset_conversion.cropping import CROP_MODES, DEFAULT_HEADNECK_BOX_MM
        from nnunet_hecktor.dataset_conversion.resampling import INTERPOLATIONS

        block = dataset_json.get(CONVERSION_KEY)
        if block is None:
            return cls(headneck_box_mm=DEFAULT_HEADNECK_BOX_MM, recorded=False)
        if not isinstance(block, Mapping):
            raise HecktorError(f"dataset.json: {CONVERSION_KEY!r} must be an object, got {type(block).__name__}")
        interpolation = block.get("interpolation", "linear")
        crop = block.get("crop")
        crop = None if crop in (None, "none") else crop
        box = tuple(float(v) for v in block.get("headneck_box_mm", DEFAULT_HEADNECK_BOX_MM))
        if interpolation not in INTERPOLATIONS:
            raise HecktorError(f"dataset.json: {CONVERSION_KEY}.interpolation {interpolation!r} is not one of "
                               f"{', '.join(INTERPOLATIONS)}")
        if crop is not None and crop not in CROP_MODES:
            raise HecktorError(f"dataset.json: {CONVERSION_KEY}.crop {crop!r} is not one of "
                               f"{', '.join(CROP_MODES)} or null")
        if len(box) != 3:
            raise HecktorError(f"dataset.json: {CONVERSION_KEY}.headneck_box_mm must have 3 values, got {list(box)}")
        return cls(interpolation, crop, box, True)

    def describe(self) -> str:
        crop = "no crop" if self.crop is None else (
            f"crop {self.crop}" + (f" {'x'.join(f'{v:g}' for v in self.headneck_box_mm)} mm"
                                   if self.crop == "headneck" else ""))
        origin = "as recorded by the converter" if self.recorded else \
            "converter defaults: the model's dataset.json has no 'hecktor_conversion' record"
        return f"PET {self.interpolation} onto the CT grid, {crop} ({origin})"

    def to_json(self) -> dict[str, Any]:
        return {"interpolation": self.interpolation, "crop": self.crop,
                "headneck_box_mm": list(self.headneck_box_mm), "recorded": self.recorded}
