from nnunet_hecktor.trainers import *  # noqa: F401,F403  (nnUNet_extTrainer entry: classes live in the installed package, so they pickle)
