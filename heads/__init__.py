"""Network heads and the multi-task network (importable as ``nnunet_hecktor.heads``).

- :mod:`.clinical_encoding`: fixed-layout clinical vector (:class:`ClinicalEncoder`).
- :mod:`.multitask_network`: stock nnU-Net U-Net + HPV/risk heads (:class:`HecktorMultiTaskNetwork`).
- :mod:`.cox_loss`: Breslow Cox partial likelihood and a pairwise ranking term.
- :mod:`.risk_bank`: FIFO bank of detached risks for a pooled Cox loss with tiny batches.
- :mod:`.hpv_loss`: class-weighted, masked BCE for HPV status.
- :mod:`.distributed`: gathering risks across DDP ranks with gradients.
- :mod:`.inference`: patient-level HPV probability and risk of a whole volume (3-D and 2-D networks).

Conventions: risk higher = earlier relapse; RFS in days; HPV 1 = positive; NaN = unknown.
"""

from .clinical_encoding import CLINICAL_FEATURE_NAMES, N_CLINICAL_FEATURES, ClinicalEncoder
from .cox_loss import cox_partial_likelihood_loss, pairwise_ranking_loss
from .distributed import gather_no_grad, gather_patient_outputs, gather_with_grad
from .hpv_loss import HPVLoss, class_weights, hpv_bce_loss, hpv_prevalence
from .multitask_network import (
    HEADS_PREFIX,
    HeadConfig,
    HecktorHeads,
    HecktorMultiTaskNetwork,
    build_multitask_network,
    build_multitask_network_from_arch,
    load_segmentation_weights,
    split_state_dict,
    strip_heads_from_checkpoint,
)
from .risk_bank import RiskBank

__all__ = [
    "CLINICAL_FEATURE_NAMES", "N_CLINICAL_FEATURES", "ClinicalEncoder",
    "cox_partial_likelihood_loss", "pairwise_ranking_loss",
    "gather_with_grad", "gather_no_grad", "gather_patient_outputs",
    "HPVLoss", "class_weights", "hpv_bce_loss", "hpv_prevalence",
    "HEADS_PREFIX", "HeadConfig", "HecktorHeads", "HecktorMultiTaskNetwork", "build_multitask_network",
    "build_multitask_network_from_arch", "load_segmentation_weights", "split_state_dict",
    "strip_heads_from_checkpoint", "RiskBank",
]
