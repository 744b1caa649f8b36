"""evaluation part of nnunet-hecktor."""
