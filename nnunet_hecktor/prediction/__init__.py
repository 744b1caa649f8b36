"""prediction part of nnunet-hecktor."""
