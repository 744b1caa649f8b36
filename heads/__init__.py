"""Network heads and the multi-task network (importable as ``nnunet_hecktor.heads``)."""
