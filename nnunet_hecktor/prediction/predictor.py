"""Patient-level prediction with nnU-Net's predictor: segmentation on the original CT grid, HPV and risk.

Per case (:meth:`HecktorPredictor.predict`):

1. **Preprocessing** - the prepared CT/PET (:mod:`.preparation`) become nnU-Net's input array and
   properties exactly as nnU-Net's ``SimpleITKIO`` reader would produce them from the converted
   files, then the configuration's own preprocessor (``run_case_npy``: crop to non-zero,
   normalisation, resampling to the target spacing) runs on them. One preprocessing serves the
   segmentation and the heads.
2. **Segmentation** - ``nnUNetPredictor.predict_logits_from_preprocessed_data``: nnU-Net's
   sliding window with Gaussian weighting and mirroring, logits averaged over the folds (what
   ``nnUNetv2_predict`` does), then nnU-Net's export (resampling back, argmax, undoing its
   crop) to the converted CT grid, then the converter's crop undone
   (:func:`~nnunet_hecktor.dataset_conversion.uncrop_to_original`): labels 0/1/2 on the
   patient's original CT grid. Optional post-processing on that grid.
3. **Heads** - for every fold, its weights (``predictor.list_of_parameters``) are loaded into the
   predictor's network and :func:`nnunet_hecktor.heads.inference.predict_heads` runs on the
   preprocessed image, with the patch centred on the ensemble's segmentation in preprocessed space
   and the same mirroring as the segmentation; the folds are combined by
   :func:`.ensemble.ensemble_heads`.

Every configuration works: ``2d`` (heads on the tumour's slices, area-weighted, see
:mod:`nnunet_hecktor.heads.inference`), ``3d_fullres``, ``3d_lowres`` and ``3d_cascade_fullres``. For
the cascade, the previous stage's model folder (nnU-Net's sibling folder
``<Trainer>__<Plans>__3d_lowres``, or one given explicitly) predicts the case first; its
segmentation, exported to the converted CT grid, is preprocessed with the case and appended as
one-hot channels, as ``nnUNetv2_predict -prev_stage_predictions`` does.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnunet_hecktor.errors import HecktorError, InputDataError

from .ensemble import EnsembleHeadOutput, FoldHeadOutput, ensemble_heads
from .model import DEFAULT_CHECKPOINT, available_folds, load_predictor
from .preparation import PreparedCase


@dataclass
class PreprocessedCase:
    """nnU-Net's preprocessed input of a prepared case."""

    prepared: PreparedCase
    data: Any                   # torch.Tensor (C, *spatial), float32, nnU-Net's preprocessed space
    properties: dict            # nnU-Net's properties (needed to export back)


@dataclass
class CasePrediction:
    """Everything predicted for one patient.

    Attributes
    ----------
    patient_id : str
    segmentation : SimpleITK.Image
        uint8 labels (0 background, 1 GTVp, 2 GTVn) on the patient's original CT grid,
        post-processed when a configuration was given.
    heads : EnsembleHeadOutput or None
        HPV probability/status and risk (None for segmentation-only models).
    folds : list of FoldHeadOutput
        Per-fold head outputs.
    warnings : list of str
    stage : dict or None
        Outputs of a patient-level model (:mod:`.patient_level`): ``risk`` and/or
        ``hpv_probability``/``hpv_status``; None when the heads are the only source.
    probabilities : ndarray or None
        nnU-Net's softmax, ``(3, z, y, x)`` float32 (background, GTVp, GTVn) on the original CT grid,
        before post-processing; kept only when asked for (``keep_probabilities``).
    """

    patient_id: str
    segmentation: Any
    heads: EnsembleHeadOutput | None
    folds: list[FoldHeadOutput] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stage: dict | None = None
    probabilities: Any = None


def _uncrop_probabilities(probabilities: np.ndarray, record) -> np.ndarray:
    """Pad class probabilities (C, z, y, x) of the cropped grid onto the original grid (background 1)."""
    full = np.zeros((probabilities.shape[0], *reversed(record.original_ct.size)), dtype=probabilities.dtype)
    full[0] = 1
    (x0, y0, z0), (x1, y1, z1) = record.index_start, record.index_stop
    full[:, z0:z1, y0:y1, x0:x1] = probabilities
    return full


class HecktorPredictor:
    """nnU-Net's predictor plus the plugin's heads, for one trained model folder.

    Parameters
    ----------
    model_dir : path-like
        ``$nnUNet_results/DatasetNNN_Name/<Trainer>__<Plans>__<configuration>``.
    folds : sequence of int or "all", optional
        Folds to ensemble (default: every fold with ``checkpoint``).
    checkpoint : str, optional
        Checkpoint file of each fold; default: the deployed (validated) weights.
    device : {"cpu", "cuda", "cuda:N", "auto"}
    use_mirroring : bool
        nnU-Net's test-time mirroring, for the segmentation and the heads.
    tile_step_size : float
        Sliding-window step (fraction of the patch).
    segmentation_only : bool
        Accept models without heads and skip the heads (see :func:`.model.load_predictor`).
    previous_stage_dir : path-like, optional
        Cascade only: model folder of the previous stage (default: nnU-Net's sibling folder
        ``<Trainer>__<Plans>__<previous stage>``). Its folds are the cascade's folds when it has
        them all, else its default (:func:`.model.check_model_folder`).
    heads_if_present : bool
        Accept a model without heads and predict the heads when it has them (unless
        ``segmentation_only``): for runs whose risk/HPV come from a patient-level model.
    """

    def __init__(self, model_dir: str | os.PathLike, folds: Sequence | None = None,
                 checkpoint: str | None = DEFAULT_CHECKPOINT, device: str = "cpu", use_mirroring: bool = True,
                 tile_step_size: float = 0.5, segmentation_only: bool = False,
                 previous_stage_dir: str | os.PathLike | None = None, heads_if_present: bool = False):
        self.predictor, self.info = load_predictor(model_dir, folds, checkpoint, device, use_mirroring,
                                                   tile_step_size, segmentation_only or heads_if_present)
        self.predict_heads = self.info.multitask and not segmentation_only
        self.label_manager = self.predictor.label_manager
        self._preprocessor = self.predictor.configuration_manager.preprocessor_class(verbose=False)
        self.previous_stage: HecktorPredictor | None = None
        previous = self.predictor.configuration_manager.previous_stage_name
        if previous is not None:
            folder = Path(previous_stage_dir) if previous_stage_dir is not None else \
                self.info.model_dir.parent / f"{self.info.trainer_name}__{self.info.plans_name}__{previous}"
            if not folder.is_dir():
                raise HecktorError(f"{self.info.model_dir} is a cascade stage: it needs the {previous} model's "
                                   f"predictions, but {folder} does not exist (train {previous} first, or give "
                                   "its model folder)")
            self.previous_stage = HecktorPredictor(folder, _previous_stage_folds(folder, self.info.folds, checkpoint),
                                                   checkpoint, device, use_mirroring, tile_step_size,
                                                   segmentation_only=True)

    # -- 1. preprocessing -----------------------------------------------------------------------
    def _reader_is_simpleitk(self) -> bool:
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

        return self.predictor.plans_manager.image_reader_writer_class is SimpleITKIO

    def nnunet_input(self, prepared: PreparedCase) -> tuple[np.ndarray, dict]:
        """The array ``(2, *spatial)`` and properties nnU-Net's reader would give for the converted files."""
        import SimpleITK as sitk

        if self._reader_is_simpleitk():
            # Same as SimpleITKIO.read_images (numpy z, y, x; spacing reversed), without the disk round trip.
            spacing = prepared.ct.GetSpacing()
            data = np.stack([sitk.GetArrayFromImage(prepared.ct), sitk.GetArrayFromImage(prepared.pet)]).astype(
                np.float32, copy=False)
            properties = {"sitk_stuff": {"spacing": spacing, "origin": prepared.ct.GetOrigin(),
                                         "direction": prepared.ct.GetDirection()},
                          "spacing": [abs(float(s)) for s in spacing[::-1]]}
            return data, properties
        # Another reader (e.g. nibabel's axis order): let it read the converted case from disk.
        reader = self.predictor.plans_manager.image_reader_writer_class()
        ending = self.predictor.dataset_json["file_ending"]
        with tempfile.TemporaryDirectory(prefix="nnunet-hecktor-") as tmp:
            files = [str(Path(tmp) / f"case_{c:04d}{ending}") for c in (0, 1)]
            sitk.WriteImage(prepared.ct, files[0])
            sitk.WriteImage(prepared.pet, files[1])
            return reader.read_images(files)

    def preprocess(self, prepared: PreparedCase) -> PreprocessedCase:
        """Run the configuration's nnU-Net preprocessor on a prepared case (cascade: previous stage first)."""
        import torch

        data, properties = self.nnunet_input(prepared)
        previous = None
        if self.previous_stage is not None:
            stage = self.previous_stage
            case = stage.preprocess(prepared)
            # Signed: nnU-Net's cropping marks voxels outside the non-zero mask with -1.
            previous = np.asarray(stage.export_array(case, stage.segmentation_logits(case)), dtype=np.int16)[None]
        data, seg, properties = self._preprocessor.run_case_npy(
            data, previous, properties, self.predictor.plans_manager, self.predictor.configuration_manager,
            self.predictor.dataset_json)
        if previous is not None:
            from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

            data = np.vstack((data, convert_labelmap_to_one_hot(seg[0], self.label_manager.foreground_labels,
                                                                data.dtype)))
        tensor = torch.from_numpy(data).to(dtype=torch.float32, memory_format=torch.contiguous_format)
        return PreprocessedCase(prepared, tensor, properties)

    # -- 2. segmentation ------------------------------------------------------------------------
    def segmentation_logits(self, case: PreprocessedCase):
        """Fold-averaged sliding-window logits in preprocessed space (nnU-Net's own routine)."""
        return self.predictor.predict_logits_from_preprocessed_data(case.data).cpu()

    def export_array(self, case: PreprocessedCase, logits, with_probabilities: bool = False):
        """nnU-Net's export to the converted CT grid, as arrays: segmentation, or (segmentation, probabilities)."""
        from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

        predictor = self.predictor
        return convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, predictor.plans_manager, predictor.configuration_manager, self.label_manager, case.properties,
            return_probabilities=with_probabilities)

    def export_segmentation(self, case: PreprocessedCase, logits, with_probabilities: bool = False):
        """nnU-Net's export, then the converter's crop undone: (uint8 image on the original CT grid, probs or None)."""
        import SimpleITK as sitk

        from nnunet_hecktor.dataset_conversion import uncrop_to_original

        predictor = self.predictor
        result = self.export_array(case, logits, with_probabilities)
        segmentation, probabilities = result if with_probabilities else (result, None)
        prepared = case.prepared
        if self._reader_is_simpleitk():
            image = sitk.GetImageFromArray(np.asarray(segmentation).astype(np.uint8, copy=False))
        else:
            if with_probabilities:
                raise HecktorError("probability-based post-processing needs a model whose plans use SimpleITKIO")
            writer = predictor.plans_manager.image_reader_writer_class()
            with tempfile.TemporaryDirectory(prefix="nnunet-hecktor-") as tmp:
                path = str(Path(tmp) / f"seg{predictor.dataset_json['file_ending']}")
                writer.write_seg(np.asarray(segmentation), path, case.properties)
                image = sitk.Cast(sitk.ReadImage(path), sitk.sitkUInt8)
        image.CopyInformation(prepared.ct)
        original = uncrop_to_original(image, prepared.crop_record)
        if probabilities is not None:
            probabilities = _uncrop_probabilities(np.asarray(probabilities, dtype=np.float32), prepared.crop_record)
        return original, probabilities

    # -- 3. heads -------------------------------------------------------------------------------
    def head_patch_rule(self) -> str:
        """Where the heads look, in words (for ``prediction_settings.json``)."""
        rule = ("training patch size centred on the largest GTVp component of the ensemble segmentation "
                "(else largest GTVn, else image centre), pooled over the predicted GTVp")
        if len(self.predictor.configuration_manager.patch_size) == 2:
            rule += ("; 2-D network: one patch per slice of that component, centred on it in-plane, outputs "
                     "averaged with the component's area per slice as weight")
        return rule

    def head_outputs(self, case: PreprocessedCase, logits, clinical: Mapping[str, Any] | None) -> list[FoldHeadOutput]:
        """Per-fold HPV probability and risk (patch centred on the ensemble segmentation)."""
        from nnunet_hecktor.heads.inference import predict_heads

        predictor = self.predictor
        segmentation = np.asarray(self.label_manager.convert_logits_to_segmentation(logits.float()))
        network = getattr(predictor.network, "_orig_mod", predictor.network)
        network.to(predictor.device)
        image = case.data.numpy()
        patch_size = predictor.configuration_manager.patch_size
        outputs = []
        for fold, parameters in zip(self.info.folds, predictor.list_of_parameters):
            network.load_state_dict(parameters)
            head = predict_heads(network, image, segmentation, dict(clinical or {}), patch_size,
                                 mirror_axes=self.info.mirror_axes)
            outputs.append(FoldHeadOutput(fold, head.hpv_probability, head.hpv_logit, head.threshold, head.risk,
                                          head.centre, head.centre_source))
        return outputs

    # -- everything -----------------------------------------------------------------------------
    def predict(self, case: PreparedCase | PreprocessedCase, clinical: Mapping[str, Any] | None = None,
                postprocessing=None, keep_probabilities: bool = False) -> CasePrediction:
        """Predict one case.

        Parameters
        ----------
        case : PreparedCase or PreprocessedCase
        clinical : dict, optional
            Typed clinical record (:mod:`nnunet_hecktor.clinical`); None or absent keys = missing.
        postprocessing : PostprocessingConfig, optional
            Applied on the original CT grid.
        keep_probabilities : bool
            Return nnU-Net's softmax on the original CT grid as well (``CasePrediction.probabilities``).

        Returns
        -------
        CasePrediction
        """
        if isinstance(case, PreparedCase):
            case = self.preprocess(case)
        prepared = case.prepared
        logits = self.segmentation_logits(case)
        need_probabilities = keep_probabilities or bool(postprocessing is not None
                                                        and postprocessing.probability_threshold)
        segmentation, probabilities = self.export_segmentation(case, logits, need_probabilities)
        if postprocessing is not None:
            from nnunet_hecktor.postprocessing.apply import postprocess_image

            segmentation = postprocess_image(segmentation, postprocessing, probabilities, prepared.patient_id)
        folds: list[FoldHeadOutput] = []
        heads = None
        if self.predict_heads:
            folds = self.head_outputs(case, logits, clinical)
            try:
                heads = ensemble_heads(folds)
            except FloatingPointError as exc:
                raise InputDataError(str(exc), prepared.patient_id) from None
        return CasePrediction(prepared.patient_id, segmentation, heads, folds, list(prepared.warnings),
                              probabilities=probabilities if keep_probabilities else None)


def _previous_stage_folds(folder: Path, folds: Sequence, checkpoint: str | None) -> tuple | None:
    """Folds of a cascade's previous stage: the cascade's own when it has them all, else its default."""
    present = {f for f, names in available_folds(folder).items() if checkpoint in names}
    return tuple(folds) if set(folds) <= present else None


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily set the number of torch CPU threads (None = leave as is)."""
    import torch

    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
