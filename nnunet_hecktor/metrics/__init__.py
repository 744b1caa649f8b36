"""HECKTOR metrics: segmentation (Task 1), survival (Task 2), HPV classification (Task 3)."""
