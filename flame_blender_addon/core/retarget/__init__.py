"""Retargeting between a FLAME head and a user's own character (numpy only).

- :mod:`.geometry`: closest points on triangles, barycentric coordinates, normals.
- :mod:`.similarity`: weighted similarity (Procrustes / Umeyama) and rotations.
- :mod:`.fit`: registers the FLAME surface (similarity + identity) to a character's head.
- :mod:`.binding`: ties each character vertex to a FLAME triangle and carries fields across.
- :mod:`.bvls`: batched bounded least squares (projected Newton), no scipy.
- :mod:`.solve`: FLAME performance <-> a character's own shape-key weights.
- :mod:`.livelink`: Live Link Face (iPhone) CSV takes, read and written.
"""
