"""Synthetic scenes for the tracker tests: a small random FLAME-format model, a made-up
embedding and a smooth clip with 1 px landmark noise and frames without a face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import synthetic
from synthetic_model import random_model_arrays

from flame_blender_addon.core.model import FlameModel, model_from_arrays
from flame_blender_addon.tracking.landmarks import Embedding, Track

N_SHAPE = N_EXPR = 10
N_FRAMES = 60
NO_FACE = ((20, 26),)


@dataclass(frozen=True)
class Scene:
    arrays: dict
    model: FlameModel
    embedding: Embedding
    clip: synthetic.Clip
    track: Track


def make_scene(n_frames: int = N_FRAMES, no_face=NO_FACE, seed: int = 0) -> Scene:
    arrays = random_model_arrays(600, 1000, seed=seed + 1)
    model = model_from_arrays(arrays)
    embedding = synthetic.random_embedding(model, 60, seed=seed + 2)
    clip = synthetic.smooth_clip(n_frames, N_SHAPE, N_EXPR, seed=seed + 3)
    track = synthetic.observed_track(model, embedding, clip, 1.0, no_face, seed=seed + 4)
    return Scene(arrays, model, embedding, clip, track)


def write_inputs(scene: Scene, folder, embed_in_model: bool = False) -> dict:
    """Model, embedding and landmark files of a scene; returns their paths."""
    emb = {"lmk_face_idx": scene.embedding.face_idx, "lmk_b_coords": scene.embedding.bary,
           "landmark_indices": scene.embedding.points}
    model = {k: v for k, v in scene.arrays.items() if isinstance(v, np.ndarray)}
    paths = {"model": folder / "model.npz", "embedding": folder / "embedding.npz", "landmarks": folder / "lmk.npz"}
    np.savez(paths["model"], **model, **(emb if embed_in_model else {}))
    np.savez(paths["embedding"], **emb)
    np.savez(paths["landmarks"], lmk=scene.track.points, conf=scene.track.conf,
             image_size=np.array(scene.track.image_size))
    return paths
