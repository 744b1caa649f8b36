"""The plan's nnU-Net U-Net plus HPV and risk heads on its bottleneck.

:class:`HecktorMultiTaskNetwork` holds the stock U-Net's ``encoder`` and ``decoder``
under their stock attribute names, so the segmentation part of its ``state_dict`` has
exactly the keys of the network ``get_network_from_plans`` builds (``encoder.*``,
``decoder.*`` — including the decoder's own reference ``decoder.encoder.*``). The heads
live under ``hecktor_heads.*`` only. Consequences:

- ``forward(x)`` is the stock forward and returns segmentation logits only (a tensor,
  or the deep-supervision list while training with deep supervision), so nnU-Net's
  predictor, mirroring TTA and ``set_deep_supervision_enabled`` work unchanged.
- :meth:`HecktorMultiTaskNetwork.forward_with_heads` runs the encoder once and returns
  ``(seg_output, hpv_logit [B], risk [B])``.
- Exporting a stock checkpoint is dropping the ``hecktor_heads.`` keys
  (:func:`split_state_dict`), and a stock checkpoint warm-starts the segmentation part
  (:func:`load_segmentation_weights`).

Everything the heads need at inference (age statistics of the clinical encoder, the HPV
decision threshold) is a buffer, so ``build_multitask_network`` (called by nnU-Net's
predictor without ``dataset.json``) plus ``load_state_dict(strict=True)`` restores it.
Heads have no BatchNorm: DDP gives each rank one patch, and batch statistics over one
patient are meaningless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .clinical_encoding import N_CLINICAL_FEATURES, ClinicalEncoder
from .lesion_statistics import N_LESION_STATISTICS, soft_lesion_statistics

#: State-dict prefix of everything that is not the stock U-Net.
HEADS_PREFIX = "hecktor_heads."
# Wrappers whose prefixes may appear in state dicts saved from DDP / torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class HeadConfig:
    """Sizes and options of the HPV and risk heads (class constants of a trainer).

    Parameters
    ----------
    hidden_features : int
        Width of the projected image features and of the heads' hidden layer.
    clinical_features : int
        Width of the clinical embedding (ignored when ``use_clinical`` is False).
    dropout : float
        Dropout probability in the heads (no BatchNorm anywhere).
    use_clinical : bool
        False = image-only heads (ablation); the clinical encoder keeps its buffers.
    masked_pooling : bool
        When True and a ``pool_mask`` is given, average/max pooling is restricted to the
        bottleneck cells overlapping the mask (e.g. the GTVp), with a fall-back to global
        pooling for samples whose mask is empty.
    image_input : {"bottleneck", "lesion_statistics", "both"}
        What the heads see of the image: the pooled bottleneck (the original design), the
        soft lesion statistics of the network's own segmentation
        (:mod:`~nnunet_hecktor.heads.lesion_statistics`: soft GTVp/GTVn volume, PET max/mean
        under the soft masks), or both concatenated.
    pet_channel : int
        Input channel holding the PET (lesion statistics only).
    linear : bool
        Linear heads: each head is one ``Linear`` layer on the (standardised) image input and the
        raw clinical vector, without the projections and hidden layer. With a few hundred
        patients the hidden layer memorises the training patients (see
        ``docs/evidence/learning-benchmark.md``); a linear Cox / logistic model on a few informative inputs
        does not.
    """

    hidden_features: int = 128
    clinical_features: int = 32
    dropout: float = 0.2
    use_clinical: bool = True
    masked_pooling: bool = True
    image_input: str = "bottleneck"
    pet_channel: int = 1
    linear: bool = False

    IMAGE_INPUTS = ("bottleneck", "lesion_statistics", "both")

    def __post_init__(self) -> None:
        if self.image_input not in self.IMAGE_INPUTS:
            raise ValueError(f"image_input must be one of {self.IMAGE_INPUTS}, got {self.image_input!r}")

    @property
    def uses_bottleneck(self) -> bool:
        return self.image_input in ("bottleneck", "both")

    @property
    def uses_lesion_statistics(self) -> bool:
        return self.image_input in ("lesion_statistics", "both")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strip_wrapper_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                changed = True
    return key


def _mlp(in_features: int, hidden: int, dropout: float) -> nn.Sequential:
    out = nn.Linear(hidden, 1)
    # Small final weights: initial risks/logits near 0 keep the first Cox/BCE steps tame
    # (exp(risk) in the partial likelihood) while every layer still gets a gradient.
    nn.init.normal_(out.weight, std=0.01)
    nn.init.zeros_(out.bias)
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.LeakyReLU(0.01),
        nn.Dropout(dropout),
        out,
    )


def _linear(in_features: int) -> nn.Linear:
    out = nn.Linear(in_features, 1)
    nn.init.normal_(out.weight, std=0.01)  # start near 0, as _mlp
    nn.init.zeros_(out.bias)
    return out


def pool_bottleneck(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Global (or mask-restricted) average and max pooling of a feature map.

    Parameters
    ----------
    features : torch.Tensor, shape [B, C, *spatial]
        Deepest encoder feature map.
    mask : torch.Tensor, shape [B, 1, *spatial_input] or None
        Binary mask at any resolution (e.g. the input patch's GTVp). A bottleneck cell
        counts as inside when any voxel it covers is inside. Samples with an empty mask
        use global pooling.

    Returns
    -------
    torch.Tensor, shape [B, 2 C]
        ``[average, max]`` concatenated.
    """
    flat = features.flatten(2)
    avg = flat.mean(dim=2)
    mx = flat.amax(dim=2)
    if mask is None:
        return torch.cat([avg, mx], dim=1)
    spatial = features.shape[2:]
    m = mask.to(features.dtype)
    if m.dim() == features.dim() - 1:
        m = m.unsqueeze(1)
    pool = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[len(spatial)]
    m = (pool(m.amax(dim=1, keepdim=True), spatial) > 0).flatten(2)  # [B, 1, N]
    count = m.sum(dim=2)  # [B, 1]
    has_mask = count > 0
    masked_avg = (flat * m).sum(dim=2) / count.clamp_min(1)
    masked_max = flat.masked_fill(~m, torch.finfo(flat.dtype).min).amax(dim=2)
    avg = torch.where(has_mask, masked_avg, avg)
    mx = torch.where(has_mask, masked_max, mx)
    return torch.cat([avg, mx], dim=1)


class RunningStandardiser(nn.Module):
    """Standardise features with running mean/variance buffers (no batch coupling at inference).

    In training mode each call updates the buffers from the batch (detached, exponential moving
    average; the first batch initialises them) and standardises with the updated buffers; in
    eval mode the stored buffers are used. The buffers travel in the checkpoint, so prediction
    standardises exactly as the end of training did. Unlike BatchNorm the output of a sample
    never depends on the other samples' values beyond the slowly moving statistics, so one
    patch per DDP rank is fine (DDP broadcasts the buffers of rank 0).
    """

    # Buffers (registered in __init__; declared so that they type as tensors, not Tensor | Module).
    running_mean: torch.Tensor
    running_var: torch.Tensor
    updates: torch.Tensor

    def __init__(self, n_features: int, momentum: float = 0.01, eps: float = 1e-3) -> None:
        super().__init__()
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.register_buffer("running_mean", torch.zeros(n_features))
        self.register_buffer("running_var", torch.ones(n_features))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                batch = x.detach().float()
                mean = batch.mean(0)
                var = batch.var(0, unbiased=False) if batch.shape[0] > 1 else self.running_var
                if int(self.updates) == 0:
                    self.running_mean.copy_(mean)
                    self.running_var.copy_(torch.maximum(var, torch.full_like(var, self.eps)))
                else:
                    self.running_mean.lerp_(mean, self.momentum)
                    self.running_var.lerp_(var, self.momentum)
                self.updates += 1
        return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)


class HecktorHeads(nn.Module):
    """Clinical encoder + HPV head + risk head on pooled bottleneck features.

    Parameters
    ----------
    bottleneck_channels : int
        Channels of the deepest encoder feature map.
    config : HeadConfig
        Head sizes and options.

    Buffers
    -------
    hpv_threshold : scalar float
        Probability threshold for a hard HPV-positive call, chosen on the training fold
        (default 0.5 until the trainer sets it).
    """

    hpv_threshold: torch.Tensor  # buffer
    lesion_normaliser: RunningStandardiser | None
    image_projection: nn.Module
    clinical_projection: nn.Module | None
    hpv_head: nn.Module
    risk_head: nn.Module

    def __init__(self, bottleneck_channels: int, config: HeadConfig | None = None) -> None:
        super().__init__()
        self.config = config or HeadConfig()
        c = self.config
        self.clinical_encoder = ClinicalEncoder(enabled=c.use_clinical)
        # LayerNorm normalises each sample on its own (BatchNorm would couple the 1-2
        # patches of a rank and behave differently at inference).
        image_features = 0
        if c.uses_bottleneck:
            image_features += 2 * bottleneck_channels
        if c.uses_lesion_statistics:
            image_features += N_LESION_STATISTICS
            self.lesion_normaliser = RunningStandardiser(N_LESION_STATISTICS)
        else:
            self.lesion_normaliser = None
        if c.linear:
            self.image_projection = nn.LayerNorm(image_features) if c.uses_bottleneck else nn.Identity()
            self.clinical_projection = nn.Identity() if c.use_clinical else None
            fused = image_features + (N_CLINICAL_FEATURES if c.use_clinical else 0)
            self.hpv_head, self.risk_head = _linear(fused), _linear(fused)
        else:
            self.image_projection = nn.Sequential(
                nn.LayerNorm(image_features) if c.uses_bottleneck else nn.Identity(),
                nn.Linear(image_features, c.hidden_features),
                nn.LeakyReLU(0.01),
                nn.Dropout(c.dropout),
            )
            if c.use_clinical:
                self.clinical_projection = nn.Sequential(
                    nn.Linear(N_CLINICAL_FEATURES, c.clinical_features),
                    nn.LeakyReLU(0.01),
                )
                fused = c.hidden_features + c.clinical_features
            else:
                self.clinical_projection = None
                fused = c.hidden_features
            self.hpv_head = _mlp(fused, c.hidden_features, c.dropout)
            self.risk_head = _mlp(fused, c.hidden_features, c.dropout)
        self.register_buffer("hpv_threshold", torch.tensor(0.5))

    def encode_clinical(self, clinical, batch_size: int, device: torch.device) -> torch.Tensor | None:
        """Turn ``clinical`` (encoded tensor, records, or None = all missing) into ``[B, N]``."""
        if not self.config.use_clinical:
            return None
        if clinical is None:
            clinical = [{}] * batch_size
        if not isinstance(clinical, torch.Tensor):
            clinical = self.clinical_encoder.encode(clinical)
        if clinical.shape != (batch_size, N_CLINICAL_FEATURES):
            raise ValueError(
                f"clinical input has shape {tuple(clinical.shape)}, expected ({batch_size}, {N_CLINICAL_FEATURES})"
            )
        return clinical.to(device=device, dtype=torch.float32)

    def forward(self, bottleneck: torch.Tensor, clinical=None, pool_mask: torch.Tensor | None = None,
                seg_logits: torch.Tensor | None = None,
                image: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """HPV logits and risks ``([B], [B])`` from the bottleneck feature map and/or lesion statistics.

        ``seg_logits`` (full-resolution segmentation logits) and ``image`` (the network input) are
        required when the config uses lesion statistics.
        """
        mask = pool_mask if self.config.masked_pooling else None
        # Heads run in fp32 even under autocast: the Cox loss exponentiates the risk.
        with torch.autocast(device_type=bottleneck.device.type, enabled=False):
            parts = []
            if self.config.uses_bottleneck:
                parts.append(pool_bottleneck(bottleneck.float(), mask))
            if self.config.uses_lesion_statistics:
                if seg_logits is None or image is None:
                    raise ValueError("these heads read lesion statistics: pass seg_logits and image")
                stats = soft_lesion_statistics(seg_logits, image, self.config.pet_channel)
                assert self.lesion_normaliser is not None  # built whenever the config uses lesion statistics
                parts.append(self.lesion_normaliser(stats))
            features = self.image_projection(torch.cat(parts, dim=1))
            encoded = self.encode_clinical(clinical, bottleneck.shape[0], bottleneck.device)
            if encoded is not None:
                assert self.clinical_projection is not None  # both exist exactly when use_clinical
                features = torch.cat([features, self.clinical_projection(encoded)], dim=1)
            hpv_logit = self.hpv_head(features).squeeze(1)
            risk = self.risk_head(features).squeeze(1)
        return hpv_logit, risk


class HecktorMultiTaskNetwork(nn.Module):
    """A stock nnU-Net U-Net with HPV and recurrence-risk heads.

    Parameters
    ----------
    unet : nn.Module
        What ``get_network_from_plans`` returns (``PlainConvUNet``,
        ``ResidualEncoderUNet``, or any module with ``encoder`` returning the list of skips
        and ``decoder`` consuming it). Its encoder/decoder are reused, not copied.
    head_config : HeadConfig, optional

    Notes
    -----
    ``forward(x)`` returns exactly what the stock U-Net returns. Risk convention: higher
    = earlier relapse. HPV logit > 0 leans positive; use ``hecktor_heads.hpv_threshold``
    on ``sigmoid(logit)`` for the hard call.
    """

    encoder: nn.Module
    decoder: nn.Module
    hecktor_heads: HecktorHeads

    def __init__(self, unet: nn.Module, head_config: HeadConfig | None = None) -> None:
        super().__init__()
        if not (hasattr(unet, "encoder") and hasattr(unet, "decoder")):
            raise TypeError(f"{type(unet).__name__} has no encoder/decoder pair; cannot attach heads")
        # Submodules (checked above); torch types a module attribute as Tensor | Module.
        self.encoder = cast(nn.Module, unet.encoder)
        self.decoder = cast(nn.Module, unet.decoder)
        self.stock_architecture = type(unet).__name__
        # Keep the key hints of dynamic_network_architectures (used by nnU-Net's
        # pretraining utilities); they are unchanged because the key names are.
        for attribute in ("key_to_encoder", "key_to_stem", "keys_to_in_proj", "key_to_lpe"):
            if hasattr(unet, attribute):
                setattr(self, attribute, getattr(unet, attribute))
        self.hecktor_heads = HecktorHeads(self.bottleneck_channels, head_config)

    @property
    def bottleneck_channels(self) -> int:
        """Channels of the deepest encoder feature map."""
        # dynamic_network_architectures' encoders list their stages' channels.
        return int(cast("Sequence[int]", self.encoder.output_channels)[-1])

    @property
    def head_config(self) -> HeadConfig:
        return self.hecktor_heads.config

    @property
    def clinical_encoder(self) -> ClinicalEncoder:
        """The clinical encoder (fit it on the training fold before training)."""
        return self.hecktor_heads.clinical_encoder

    def forward(self, x: torch.Tensor, with_heads: bool = False, clinical=None,
                pool_mask: torch.Tensor | None = None):
        """Segmentation logits only (exactly the stock U-Net), or all outputs with ``with_heads=True``.

        The heads are reachable through ``forward`` (not only :meth:`forward_with_heads`)
        because DDP synchronises gradients only for computations that went through the
        wrapper's ``__call__``: under DDP call ``network(x, with_heads=True, clinical=...)``.
        nnU-Net's predictor calls ``network(x)`` and gets the plain tensor it expects.
        """
        skips = self.encoder(x)
        seg = self.decoder(skips)
        if not with_heads:
            return seg
        full_resolution = seg[0] if isinstance(seg, (list, tuple)) else seg
        hpv_logit, risk = self.hecktor_heads(skips[-1], clinical, pool_mask, seg_logits=full_resolution, image=x)
        return seg, hpv_logit, risk

    def forward_with_heads(self, x: torch.Tensor, clinical=None, pool_mask: torch.Tensor | None = None):
        """Segmentation output and patient-level outputs in one encoder pass.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, *patch]
        clinical : torch.Tensor [B, N_CLINICAL_FEATURES], sequence of records, or None
            Encoded clinical vectors (``clinical_encoder.encode(records)``) or raw typed
            records; None encodes every variable as missing. Ignored for image-only heads.
            Pass the encoded tensor when the network is compiled.
        pool_mask : torch.Tensor [B, 1, *patch], optional
            Restrict head pooling to this region (e.g. GTVp) when the config allows it.

        Returns
        -------
        tuple
            ``(seg_output, hpv_logit [B], risk [B])``; ``seg_output`` as :meth:`forward`.

        Notes
        -----
        Same as ``self(x, with_heads=True, ...)``; use that form on a DDP-wrapped network.
        """
        return self.forward(x, with_heads=True, clinical=clinical, pool_mask=pool_mask)

    def compute_conv_feature_map_size(self, input_size):
        """Delegate to the stock network (nnU-Net's VRAM estimate ignores the tiny heads)."""
        return self.encoder.compute_conv_feature_map_size(input_size) + \
            self.decoder.compute_conv_feature_map_size(input_size)

    def segmentation_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict of the stock segmentation network (heads removed)."""
        return split_state_dict(self.state_dict())[0]


def build_multitask_network_from_arch(arch_class_name: str, arch_init_kwargs: Mapping[str, Any],
                                      arch_init_kwargs_req_import: Sequence[str], num_input_channels: int,
                                      num_output_channels: int, enable_deep_supervision: bool = True,
                                      head_config: HeadConfig | None = None) -> HecktorMultiTaskNetwork:
    """Build the plan's U-Net with ``get_network_from_plans`` and attach the heads.

    Parameters mirror ``nnunetv2.utilities.get_network_from_plans.get_network_from_plans``
    (the nnU-Net < 2.6 ``build_network_architecture`` signature), plus ``head_config``.
    """
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    unet = get_network_from_plans(arch_class_name, dict(arch_init_kwargs), list(arch_init_kwargs_req_import),
                                  num_input_channels, num_output_channels, allow_init=True,
                                  deep_supervision=enable_deep_supervision)
    return HecktorMultiTaskNetwork(unet, head_config)


def build_multitask_network(plans_manager, configuration_manager, num_input_channels: int, num_output_channels: int,
                            enable_deep_supervision: bool = True,
                            head_config: HeadConfig | None = None) -> HecktorMultiTaskNetwork:
    """Network for ``nnUNetTrainer.build_network_architecture`` (nnU-Net 2.8 signature).

    Parameters
    ----------
    plans_manager : nnunetv2 PlansManager
        Unused (the configuration holds the architecture); accepted for the signature.
    configuration_manager : nnunetv2 ConfigurationManager
        Provides ``network_arch_class_name``, ``network_arch_init_kwargs`` and
        ``network_arch_init_kwargs_req_import``.
    num_input_channels, num_output_channels : int
    enable_deep_supervision : bool
    head_config : HeadConfig, optional
        From trainer class constants only (prediction rebuilds without dataset.json).
    """
    return build_multitask_network_from_arch(
        configuration_manager.network_arch_class_name,
        configuration_manager.network_arch_init_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import,
        num_input_channels, num_output_channels, enable_deep_supervision, head_config)


def split_state_dict(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a multi-task state dict into ``(segmentation, heads)``.

    The segmentation part has the stock network's keys and loads into the network that
    ``get_network_from_plans`` builds (e.g. for ``nnUNetTrainer``). DDP/compile prefixes
    (``module.``, ``_orig_mod.``) are removed from both parts.
    """
    seg: dict[str, Any] = {}
    heads: dict[str, Any] = {}
    for key, value in state_dict.items():
        clean = _strip_wrapper_prefixes(key)
        (heads if clean.startswith(HEADS_PREFIX) else seg)[clean] = value
    return seg, heads


def load_segmentation_weights(network: nn.Module, stock_state_dict: Mapping[str, Any]) -> list[str]:
    """Warm-start the segmentation part of ``network`` from a stock nnU-Net state dict.

    Every segmentation key of ``network`` must exist in ``stock_state_dict`` with the same
    shape, and the stock dict must hold no other segmentation keys (a different plan or
    architecture is an error, not a partial load). Head keys in the source, if any, are
    ignored; the heads keep their current (initial) weights.

    Parameters
    ----------
    network : HecktorMultiTaskNetwork (or a DDP/compiled wrapper of it)
    stock_state_dict : mapping
        ``checkpoint["network_weights"]`` of a stock nnU-Net checkpoint.

    Returns
    -------
    list of str
        The head keys that were left untouched.

    Raises
    ------
    ValueError
        Listing missing, unexpected and shape-mismatched keys.
    """
    target = network
    for attribute in ("module", "_orig_mod"):
        if isinstance(getattr(target, attribute, None), nn.Module):
            target = getattr(target, attribute)
    own_seg, own_heads = split_state_dict(target.state_dict())
    source_seg, _ = split_state_dict(stock_state_dict)
    missing = sorted(set(own_seg) - set(source_seg))
    unexpected = sorted(set(source_seg) - set(own_seg))
    mismatched = sorted(k for k in set(own_seg) & set(source_seg)
                        if tuple(own_seg[k].shape) != tuple(torch.as_tensor(source_seg[k]).shape))
    if missing or unexpected or mismatched:
        def show(keys):
            return ", ".join(keys[:5]) + (f" ... ({len(keys)} in all)" if len(keys) > 5 else "") if keys else "none"
        raise ValueError(
            "the segmentation checkpoint does not match this network's plan "
            f"(missing keys: {show(missing)}; unexpected keys: {show(unexpected)}; "
            f"shape mismatches: {show(mismatched)}). Was it trained with the same plans, "
            "configuration and number of input channels/classes?"
        )
    merged = {**{k: source_seg[k] for k in own_seg}, **own_heads}
    target.load_state_dict(merged, strict=True)
    return sorted(own_heads)


def strip_heads_from_checkpoint(checkpoint: Mapping[str, Any], trainer_name: str = "nnUNetTrainer") -> dict[str, Any]:
    """A stock nnU-Net checkpoint (segmentation only) from a multi-task checkpoint.

    ``network_weights`` loses the ``hecktor_heads.*`` keys and ``trainer_name`` becomes a
    stock trainer (nnU-Net's predictor rebuilds the network from the checkpoint's trainer
    class). The optimizer and grad-scaler states refer to the head parameters too and
    are dropped: the result is for prediction or ``-pretrained_weights``, not ``--c``.
    Input is not modified.
    """
    out = {k: v for k, v in checkpoint.items() if k not in ("optimizer_state", "grad_scaler_state")}
    out["network_weights"] = split_state_dict(checkpoint["network_weights"])[0]
    out["trainer_name"] = trainer_name
    return out
