"""nnunet-hecktor: an nnU-Net v2 extension plugin for the HECKTOR challenge.

Segments the primary tumour (GTVp, label 1) and involved lymph nodes (GTVn, label 2)
in FDG-PET/CT, predicts a recurrence-free-survival risk score (higher = earlier
relapse) and classifies HPV status (1 = positive).
"""

__version__ = "0.2.0"
