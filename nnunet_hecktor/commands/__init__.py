"""Subcommands of the `nnunet-hecktor` console command, one module each (see nnunet_hecktor.cli)."""
