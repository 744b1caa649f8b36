"""challenge part of nnunet-hecktor."""
