"""HECKTOR -> nnU-Net dataset conversion (importable as ``nnunet_hecktor.dataset_conversion``)."""
