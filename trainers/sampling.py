"""nnU-Net data loader with HPV-balanced patient sampling and GTVp-centred patches for the heads.

Two changes to ``nnUNetDataLoader``, each in the narrowest hook:

- :meth:`HecktorDataLoader.get_indices`: patients are drawn with per-patient weights (e.g.
  :func:`~nnunet_hecktor.trainers.patient_data.hpv_sampling_weights`) from the loader's own
  random generator, whose state can be saved and restored (``nnUNetv2_train --c``).
- :meth:`HecktorDataLoader.get_bbox`: a fraction of the foreground-oversampled samples is
  centred on the primary tumour (the centroid of the GTVp voxel locations that nnU-Net's
  preprocessing stored, plus a uniform jitter) instead of on a random foreground voxel. Those
  samples are flagged in ``batch["tumour_centred"]``: only they feed the HPV and Cox losses,
  so the heads learn from patches that show the primary tumour. With a 2-D configuration the
  slice is that of a GTVp voxel drawn at random (GTVp-bearing slices drawn in proportion to
  their GTVp area) and the patch is centred in-plane on that slice's GTVp: the distribution
  whose area-weighted mean :func:`nnunet_hecktor.heads.inference.predict_heads` takes at
  inference. Of the other foreground-oversampled samples, a fraction is centred on a random
  lymph-node (GTVn) voxel when the case has one: a GTVp-centred patch often cuts the nodes
  out, and nnU-Net's own choice (a random foreground class) left nodes in ~1 of 5 patches and
  ~2 % of the lesion voxels the network saw, too few for it to learn them on a short schedule.

The sampler's generator is seeded with ``(seed, rank, restart, worker id)``: every DDP rank and
every data-augmentation worker draws its own patient stream (stock nnU-Net's unseeded sampling
also differs per process).

Everything else (cropping, padding, augmentation, deep-supervision targets) is nnU-Net's.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

from nnunet_hecktor import schema


class HecktorDataLoader(nnUNetDataLoader):
    """``nnUNetDataLoader`` plus weighted patient sampling and GTVp-centred head patches.

    Parameters
    ----------
    *args, **kwargs
        As ``nnUNetDataLoader``.
    patient_weights : mapping PatientID -> float, optional
        Relative sampling weight per case; missing cases get 1. None = uniform.
    gtvp_centred_fraction : float
        Probability that a foreground-oversampled sample is centred on the GTVp
        (0 = stock nnU-Net sampling, no sample feeds the heads).
    centre_jitter : float
        Uniform jitter of the GTVp-centred patch centre, as a fraction of the patch size
        per axis (0.1 with a 128 patch: +-12 voxels).
    gtvn_centred_fraction : float
        Probability that a foreground-oversampled sample that is not GTVp-centred is centred on
        a random GTVn voxel, when the case has any (0 = nnU-Net's choice of a random class).
    gtvp_label, gtvn_label : int
        Label values of the primary tumour and of the lymph nodes (1 and 2 in HECKTOR).
    seed : int
        Seed of the patient sampler (combined with ``rank``, ``restart`` and the worker id).
    restart : int
        How many times training was (re)started; resumed runs draw a fresh stream.
    rank : int
        DDP rank of the process (0 without DDP); each rank draws its own stream.
    """

    def __init__(self, *args, patient_weights: Mapping[str, float] | None = None,
                 gtvp_centred_fraction: float = 0.5, centre_jitter: float = 0.1,
                 gtvn_centred_fraction: float = 0.0, gtvp_label: int = schema.GTVP,
                 gtvn_label: int = schema.GTVN, seed: int = 12345, restart: int = 0, rank: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= gtvp_centred_fraction <= 1.0:
            raise ValueError(f"gtvp_centred_fraction must be in [0, 1], got {gtvp_centred_fraction}")
        self.gtvp_centred_fraction = float(gtvp_centred_fraction)
        if not 0.0 <= gtvn_centred_fraction <= 1.0:
            raise ValueError(f"gtvn_centred_fraction must be in [0, 1], got {gtvn_centred_fraction}")
        self.gtvn_centred_fraction = float(gtvn_centred_fraction)
        self.gtvn_label = int(gtvn_label)
        self.centre_jitter = float(centre_jitter)
        self.gtvp_label = int(gtvp_label)
        self.seed = int(seed)
        self.restart = int(restart)
        self.rank = int(rank)
        self.probabilities = self._probabilities(patient_weights)
        self._rng: np.random.Generator | None = None
        self._rng_thread: int | None = None
        self._pending_state: dict | None = None
        self._tumour_centred: list[bool] = []

    def _probabilities(self, patient_weights: Mapping[str, float] | None) -> np.ndarray | None:
        if patient_weights is None:
            return None
        w = np.array([float(patient_weights.get(str(k), 1.0)) for k in self.indices], dtype=float)
        if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("patient sampling weights must be finite, non-negative and not all zero")
        return w / w.sum()

    # -- patient sampling ---------------------------------------------------------------------
    @property
    def rng(self) -> np.random.Generator:
        """The sampler's generator; one independent stream per DA worker and per (re)start."""
        # thread_id is set by batchgenerators in each worker process after pickling, so the
        # generator is created lazily there (seeding in __init__ would give every worker the
        # same stream).
        if self._rng is None or self._rng_thread != self.thread_id:
            self._rng = np.random.default_rng([self.seed, self.rank, self.restart, int(self.thread_id)])
            self._rng_thread = self.thread_id
            if self._pending_state is not None:
                self._rng.bit_generator.state = self._pending_state
                self._pending_state = None
        return self._rng

    def get_indices(self):
        return self.rng.choice(self.indices, self.batch_size, replace=True, p=self.probabilities)

    def sampler_state(self) -> dict:
        """State of the in-process sampler (exact resume when data augmentation runs in-process)."""
        return {"seed": self.seed, "rank": self.rank, "restart": self.restart, "thread_id": int(self.thread_id),
                "bit_generator": self.rng.bit_generator.state}

    def load_sampler_state(self, state: Mapping) -> None:
        """Continue the exact random stream of :meth:`sampler_state` (same rank and worker id only)."""
        if int(state.get("thread_id", 0)) == int(self.thread_id) and int(state.get("rank", 0)) == self.rank:
            self.seed = int(state["seed"])
            self.restart = int(state["restart"])
            self._rng = None
            self._pending_state = dict(state["bit_generator"])

    # -- patch placement ----------------------------------------------------------------------
    def generate_train_batch(self):
        self._tumour_centred = []
        batch = super().generate_train_batch()
        batch["tumour_centred"] = np.array(self._tumour_centred, dtype=bool)
        return batch

    def get_bbox(self, data_shape, force_fg: bool, class_locations, overwrite_class=None, verbose: bool = False):
        # nnU-Net calls get_bbox exactly once per sample, in batch order.
        locations = None if class_locations is None else class_locations.get(self.gtvp_label)
        centred = (force_fg and locations is not None and len(locations) > 0
                   and self.gtvp_centred_fraction > 0 and self.rng.random() < self.gtvp_centred_fraction)
        self._tumour_centred.append(bool(centred))
        if not centred:
            nodes = None if class_locations is None else class_locations.get(self.gtvn_label)
            if (force_fg and overwrite_class is None and nodes is not None and len(nodes) > 0
                    and self.gtvn_centred_fraction > 0 and self.rng.random() < self.gtvn_centred_fraction):
                overwrite_class = self.gtvn_label  # nnU-Net then centres the patch on a random GTVn voxel
            return super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)
        return self._gtvp_centred_bbox(np.asarray(data_shape), np.asarray(locations))

    def _gtvp_centred_bbox(self, data_shape: np.ndarray, locations: np.ndarray):
        if self.patch_size_was_2d:
            # One slice (patch depth 1): the slice of a random GTVp voxel, so slices are drawn in
            # proportion to their GTVp area; the in-plane centre is that slice's GTVp centroid.
            z = locations[self.rng.integers(len(locations)), 1]
            locations = locations[locations[:, 1] == z]
        return gtvp_centred_bbox(data_shape, locations, self.patch_size, self.final_patch_size, self.need_to_pad,
                                 self.centre_jitter, self.rng)


def gtvp_centred_bbox(data_shape, locations, patch_size, final_patch_size, need_to_pad, centre_jitter: float,
                      rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Patch box centred on the centroid of ``locations`` plus uniform jitter, within nnU-Net's bounds.

    Parameters
    ----------
    data_shape : sequence of int
        Spatial shape of the case.
    locations : numpy.ndarray, shape (N, 1 + dim)
        Voxel locations ``(channel, *spatial)`` of the GTVp, as stored by nnU-Net's preprocessing.
    patch_size, final_patch_size : sequence of int
        Size of the crop (before augmentation) and of the network input.
    need_to_pad : sequence of int
        nnU-Net's padding allowance (``patch_size - final_patch_size`` plus ``pad_sides``).
    centre_jitter : float
        Jitter as a fraction of ``final_patch_size`` per axis.
    rng : numpy.random.Generator

    Returns
    -------
    (lower, upper)
        Box corners (upper exclusive), possibly outside the image (nnU-Net pads).
    """
    data_shape = np.asarray(data_shape, dtype=int)
    dim = len(data_shape)
    patch = np.asarray(patch_size[-dim:], dtype=int)
    # class_locations rows are (channel, *spatial); a sample of up to 10k voxels is plenty
    # for the centroid.
    centre = np.asarray(locations)[:, 1:1 + dim].astype(float).mean(axis=0)
    jitter = rng.uniform(-1.0, 1.0, size=dim) * centre_jitter * np.asarray(final_patch_size[-dim:])
    lower = np.round(centre + jitter).astype(int) - patch // 2
    # Same bounds as nnU-Net's random placement (patches may extend into the padding).
    pad = np.asarray(need_to_pad[-dim:], dtype=int).copy()
    pad = np.where(pad + data_shape < patch, patch - data_shape, pad)
    lbs = -pad // 2
    ubs = data_shape + pad // 2 + pad % 2 - patch
    lower = np.clip(lower, lbs, np.maximum(lbs, ubs))
    bbox_lbs = [int(v) for v in lower]
    return bbox_lbs, [bbox_lbs[d] + int(patch[d]) for d in range(dim)]
