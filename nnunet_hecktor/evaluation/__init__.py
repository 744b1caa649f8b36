"""HECKTOR evaluation of prediction folders and patient-level predictions (``nnunet-hecktor evaluate``).

Public API: :func:`nnunet_hecktor.evaluation.evaluate.evaluate` (everything, writes metrics.json,
per_patient.csv and PNGs), :func:`nnunet_hecktor.evaluation.segmentation.evaluate_segmentation_folders`
(Task 1 statistics per patient), :func:`nnunet_hecktor.evaluation.outcome.evaluate_task2` /
:func:`~nnunet_hecktor.evaluation.outcome.evaluate_task3`, and
:func:`nnunet_hecktor.dataset_conversion.geometry.check_same_geometry` (the grid check).
"""
