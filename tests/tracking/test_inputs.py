"""Embeddings, landmark files, frame sources and preview images."""

import struct
import zlib

import numpy as np
import pytest
from synthetic_model import random_model_arrays

from flame_blender_addon.core.errors import AssetError, FileFormatError, TrackerError
from flame_blender_addon.core.model import model_from_arrays
from flame_blender_addon.tracking import landmarks as lmk
from flame_blender_addon.tracking import media, preview


def decode_png(data: bytes) -> np.ndarray:
    """Minimal decoder for the filter-0 RGB PNGs media.png_bytes writes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(tag + body)
        if tag == b"IHDR":
            size = struct.unpack(">II", body[:8])
        idat += body if tag == b"IDAT" else b""
        pos += 12 + n
    W, H = size
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(H, 1 + 3 * W)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(H, W, 3)


def test_png_and_points_round_trip():
    img = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(media.png_bytes(img)), img)
    drawn = preview.draw_points(img, np.array([[3.5, 2.5], [np.nan, 1.0], [-10.0, 1.0]]), (1, 2, 3), 1)
    changed = (drawn != img).any(axis=2)
    assert (drawn[1:4, 2:5] == (1, 2, 3)).all() and changed.sum() <= 9 and not changed[:, 0].any()


def test_frame_sources(tmp_path):
    with pytest.raises(TrackerError, match="not found"):
        media.open_source(tmp_path / "missing.mp4")
    with pytest.raises(TrackerError, match="no images"):
        media.open_source(tmp_path)
    pytest.importorskip("av")
    imgs = [np.full((6, 8, 3), v, np.uint8) for v in (10, 200)]
    for i, img in enumerate(imgs):
        (tmp_path / f"{i:03d}.png").write_bytes(media.png_bytes(img))
    source = media.open_source(tmp_path)
    assert (source.kind, source.n_frames) == ("frames", 2)
    for (_, got), want in zip(media.frames(source), imgs, strict=True):
        np.testing.assert_array_equal(got, want)
    assert [i for i, _ in media.frames(source, media.Trim(start=1))] == [1]
    assert media.open_source(tmp_path / "001.png").kind == "image"


def test_embedding_validation(tmp_path):
    good = {"lmk_face_idx": np.array([1, 2], np.uint32), "lmk_b_coords": np.full((2, 3), 1 / 3),
            "landmark_indices": np.array([4, 7])}
    emb = lmk.embedding_from_arrays(good, "e")
    assert emb.points.tolist() == [4, 7] and emb.face_idx.dtype == np.int64
    for broken, message in (({**good, "lmk_b_coords": np.ones((2, 3))}, "summing to 1"),
                            ({**good, "landmark_indices": np.arange(3)}, "landmark_indices"),
                            ({"lmk_b_coords": good["lmk_b_coords"]}, "missing key")):
        with pytest.raises(AssetError, match=message):
            lmk.embedding_from_arrays(broken, "e")
    (tmp_path / "bad.npz").write_bytes(b"nonsense")
    with pytest.raises(FileFormatError, match="bad.npz: not a readable zip archive"):
        lmk.load_embedding(tmp_path / "bad.npz")
    with pytest.raises(TrackerError, match="missing.npz: landmark embedding file not found"):
        lmk.load_embedding(tmp_path / "missing.npz")
    np.savez(tmp_path / "mine.npz", **good)
    emb = lmk.load_embedding(tmp_path / "mine.npz")  # named after its file, unlike the assets' "mediapipe"
    assert emb.name == "mine.npz" and emb.points.tolist() == [4, 7]


def test_landmark_file_validation_and_selection(tmp_path):
    pts = np.zeros((3, 5, 2))
    pts[1] = np.nan
    np.savez(tmp_path / "l.npz", lmk=pts, image_size=np.array([480, 640]))
    track = lmk.load_track(tmp_path / "l.npz")
    assert track.image_size == (480, 640) and track.face_found().tolist() == [True, False, True]
    assert track.conf[1].max() == 0
    emb = lmk.Embedding(np.array([0, 1]), np.full((2, 3), 1 / 3), np.array([4, 0]), "e")
    np.testing.assert_array_equal(lmk.select(track, emb).points, pts[:, [4, 0]])
    with pytest.raises(TrackerError, match="detector point 9"):
        lmk.select(track, lmk.Embedding(np.array([0, 1]), np.full((2, 3), 1 / 3), np.array([9, 0]), "e"))
    np.savez(tmp_path / "l.npz", lmk=pts[..., 0], image_size=np.array([480, 640]))
    with pytest.raises(TrackerError, match="expected \\(T, L, 2\\)"):
        lmk.load_track(tmp_path / "l.npz")
    assert lmk.runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 2), (4, 4)]


def test_irises_added_only_for_flame_topology():
    arrays = random_model_arrays(5023, 200, n_components=301, seed=0)
    emb = lmk.Embedding(np.array([0]), np.array([[1.0, 0, 0]]), np.array([1]), "e")
    assert len(lmk.with_irises(emb, model_from_arrays(arrays))) == 1  # eyeball vertices not skinned to the eyes
    weights = arrays["weights"].copy()
    weights[lmk.IRIS_VERTICES] = np.eye(5)[np.repeat([4, 3], 5)]
    faces = arrays["f"].copy()
    faces[:10, 0] = lmk.IRIS_VERTICES
    model = model_from_arrays({**arrays, "weights": weights, "f": faces})
    added = lmk.with_irises(emb, model)
    assert added.points.tolist() == [1, *range(468, 478)]
    corners = model.faces[added.face_idx[1:]]
    np.testing.assert_array_equal((corners * added.bary[1:]).sum(axis=1), lmk.IRIS_VERTICES)


def test_shaded_mesh_covers_pixel_centres_inside_front_faces_nearest_on_top():
    """Two overlapping front-facing triangles against a per-pixel reference: a pixel is covered when
    its centre is inside a triangle, and shows the nearer one's shade; a back face draws nothing."""
    img = np.zeros((20, 24, 3), np.uint8)
    uv = np.array([[2.0, 3.0], [17.5, 4.0], [6.0, 16.0], [9.0, 1.0], [22.0, 12.5], [4.0, 18.0]])
    cam = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.5],
                    [0.0, 1.0, 1.0]])  # the second triangle is nearer and tilted
    faces = np.array([[0, 2, 1], [3, 5, 4]])
    out = preview.shade_mesh(img, uv, cam, faces, color=(200, 200, 200), alpha=1.0)
    p = cam[faces]
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    centre = p.mean(axis=1)
    facing = -(normal * centre).sum(1) / (np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1))
    expected = np.zeros_like(out)
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            for k in (0, 1):  # far, then near
                a, b, c = uv[faces[k]]
                q = np.array([x + 0.5, y + 0.5])
                d = [(v[0] - u[0]) * (q[1] - u[1]) - (v[1] - u[1]) * (q[0] - u[0]) for u, v in ((a, b), (b, c), (c, a))]
                if all(s >= 0 for s in d) or all(s <= 0 for s in d):
                    expected[y, x] = np.round((0.35 + 0.65 * facing[k]) * 200.0)
    assert facing.min() > 0 and abs(facing[0] - facing[1]) > 0.05
    edge = np.abs(out.astype(int) - expected).max(axis=2) > 1
    assert edge.sum() <= 4  # pixel centres exactly on an edge may go either way
    assert (out.max(axis=2) > 0).sum() > 100
    flipped = preview.shade_mesh(img, uv, cam, faces[:, ::-1], alpha=1.0)
    assert not flipped.any()


def test_face_crop_resamples_bilinearly():
    H, W = 30, 40
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 5, yy * 7, xx + yy], -1).astype(np.uint8)  # linear ramps: bilinear is exact
    box = (3.3, 4.7, 20.0)
    out = preview.crop(rgb, box, size=16).astype(float)
    centres = (np.arange(16) + 0.5) * (20.0 / 16) - 0.5
    np.testing.assert_allclose(out[..., 0], np.broadcast_to(5 * (3.3 + centres)[None, :], (16, 16)), atol=0.51)
    np.testing.assert_allclose(out[..., 1], np.broadcast_to(7 * (4.7 + centres)[:, None], (16, 16)), atol=0.51)
    assert not preview.crop(rgb, (100.0, 100.0, 10.0), size=4).any()  # outside the frame: black
