"""postprocessing part of nnunet-hecktor."""
