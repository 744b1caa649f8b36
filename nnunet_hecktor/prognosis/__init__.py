"""prognosis part of nnunet-hecktor."""
