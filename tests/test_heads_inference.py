"""Where the heads look on a whole volume: slices and weights for 2-D networks (hand-checked cases)."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_hecktor.heads.inference import head_slices, predict_heads


def test_2d_slices_are_those_of_the_largest_gtvp_component_weighted_by_area():
    seg = np.zeros((6, 10, 10), dtype=np.uint8)
    seg[1, 2:4, 2:4] = 1          # 4 voxels
    seg[2, 2:5, 2:5] = 1          # 9 voxels, same component (26-connected with slice 1)
    seg[3, 2:3, 2:5] = 1          # 3 voxels
    seg[5, 8, 8] = 1              # a separate 1-voxel blob: ignored
    seg[4, 0:2, 0:2] = 2          # a node: ignored while there is a GTVp
    slices, weights, centre, source = head_slices(seg, seg.shape)
    assert source == "GTVp"
    assert [z for z, _ in slices] == [1, 2, 3]
    assert [c for _, c in slices] == [(2, 2), (3, 3), (2, 3)]  # rounded in-plane centroids (2.5 -> 2)
    np.testing.assert_allclose(weights, np.array([4, 9, 3]) / 16)
    assert centre[0] == 2


def test_2d_slices_fall_back_to_the_largest_node_then_the_middle_slice():
    seg = np.zeros((5, 8, 8), dtype=np.uint8)
    seg[3, 1:3, 1:3] = 2
    slices, weights, _, source = head_slices(seg, seg.shape)
    assert source == "GTVn" and slices == [(3, (2, 2))] and weights.tolist() == [1.0]
    slices, weights, centre, source = head_slices(np.zeros_like(seg), seg.shape)
    assert source == "image centre" and slices == [(2, (4, 4))] and centre == (2, 4, 4)
    assert head_slices(None, (5, 8, 8))[3] == "image centre"


def test_predict_heads_needs_a_volume_and_a_2d_or_3d_patch():
    with pytest.raises(ValueError, match="patch size"):
        predict_heads(None, np.zeros((2, 4, 4)), None, None, (4, 4))


def test_prediction_does_not_import_the_training_package():
    """Inference code lives in nnunet_hecktor.heads: no import of nnunet_hecktor.trainers anywhere in
    nnunet_hecktor.prediction, also not inside functions."""
    import ast
    from pathlib import Path

    import nnunet_hecktor.prediction as prediction

    offending = []
    for path in sorted(Path(prediction.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            offending += [f"{path.name}:{node.lineno} {n}" for n in names
                          if n.startswith(("nnunet_hecktor.trainers", "..trainers"))]
    assert not offending, offending
