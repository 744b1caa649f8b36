"""Post-processing of HECKTOR segmentations (0 background, 1 GTVp, 2 GTVn) and its tuning.

Public API (arrays in SimpleITK's ``(z, y, x)`` order, spacing in mm in the same order):

- :class:`PostprocessingConfig`, :func:`load_config`, :func:`save_config`: the rules, one JSON file;
- :func:`postprocess_segmentation` (numpy), :func:`postprocess_image` (SimpleITK, same grid out),
  :func:`postprocess_folder` (``<PID>.nii.gz`` in and out);
- :mod:`~nnunet_hecktor.postprocessing.tuning`: ``tune_postprocessing`` on cross-validation predictions;
- :mod:`~nnunet_hecktor.postprocessing.nnunet_pkl`: the rules as nnU-Net's ``postprocessing.pkl``.
"""

from nnunet_hecktor.postprocessing.apply import postprocess_folder, postprocess_image
from nnunet_hecktor.postprocessing.config import PostprocessingConfig, load_config, save_config
from nnunet_hecktor.postprocessing.rules import postprocess_segmentation

__all__ = ["PostprocessingConfig", "load_config", "save_config", "postprocess_segmentation", "postprocess_image",
           "postprocess_folder"]
