"""Connected components (nnunet_hecktor.metrics.components.label_components) against scipy.ndimage.label."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nnunet_hecktor.metrics.components import label_components
from nnunet_hecktor.postprocessing.config import PostprocessingConfig
from nnunet_hecktor.postprocessing.rules import postprocess_segmentation

STRUCTURES_3D = {6: ndimage.generate_binary_structure(3, 1), 18: ndimage.generate_binary_structure(3, 2),
                 26: np.ones((3, 3, 3), bool)}


def test_thin_mask_that_cc3d_alone_cannot_label():
    # cc3d 4.1 raises "maximum length exception" on this mask at 26-connectivity; a predicted new
    # patient's GTVn crop of this shape stopped the learning benchmark's prediction run.
    mask = np.array([[[True, False, True]]])
    labels, n = label_components(mask, 26)
    assert n == 2 and labels.shape == mask.shape and labels.flags["C_CONTIGUOUS"]
    assert labels[0, 0, 0] != labels[0, 0, 2] and labels[0, 0, 1] == 0


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_small_random_masks_match_scipy(connectivity):
    rng = np.random.default_rng(connectivity)
    for _ in range(400):
        mask = rng.random(tuple(rng.integers(1, 6, size=3))) < rng.random()
        labels, n = label_components(mask, connectivity)
        reference, n_reference = ndimage.label(mask, structure=STRUCTURES_3D[connectivity])
        assert n == n_reference
        # Same partition of the foreground (numbering may differ).
        pairs = set(zip(labels[mask].tolist(), reference[mask].tolist()))
        assert len(pairs) == n and np.array_equal(labels > 0, mask)


def test_small_component_removal_on_a_thin_gtvn_crop():
    seg = np.zeros((5, 5, 7), np.uint8)
    seg[2, 2, 1] = seg[2, 2, 3] = 2          # two one-voxel nodes in a 1 x 1 x 3 box
    seg[2, 2, 5] = 1
    config = PostprocessingConfig(min_component_size={2: 2.0}, min_component_size_unit="voxels")
    out = postprocess_segmentation(seg, (1.0, 1.0, 1.0), config)
    assert (out == 2).sum() == 0 and (out == 1).sum() == 1
