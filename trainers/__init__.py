"""nnU-Net trainer classes of nnunet-hecktor (importable as ``nnunet_hecktor.trainers``)."""
