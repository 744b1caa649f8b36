"""synthetic part of nnunet-hecktor."""
