"""Coefficients split for Blender's +-10 sliders, and where a tracker output's footage is (no bpy)."""

import numpy as np
import pytest

from flame_blender_addon.core import rig
from flame_blender_addon.core.errors import FlameError
from flame_blender_addon.core.formats.footage import Footage, find_footage, write_reference
from flame_blender_addon.core.limits import SMALL


def test_split_for_sliders_is_exact_and_within_the_slider_range():
    values = np.array([[-110.0, -20.0, -10.0, -3.5, 0.0, 9.99, 10.0, 10.5, 19.3, 110.0]])
    keys, overflow = rig.split_for_sliders(values)
    np.testing.assert_array_equal(keys + rig.OVERFLOW_SCALE * overflow, values)
    assert np.abs(keys).max() <= 10 and np.abs(overflow).max() <= 10
    np.testing.assert_array_equal(overflow[0, 2:7], 0.0)  # within the sliders: no overflow
    with pytest.raises(FlameError, match="beyond the \\+-110"):
        rig.split_for_sliders(np.array([0.0, -111.0]))


def test_footage_reference_before_input_frames_and_beside_checkpoints(tmp_path):
    output = tmp_path / "tracked"
    (output / "checkpoint").mkdir(parents=True)
    (output / "input").mkdir()
    (output / "input" / "00000.png").write_bytes(b"")
    assert find_footage(output / "checkpoint" / "00000.frame") == (Footage("images", output / "input"), [])
    (tmp_path / "clip.mp4").write_bytes(b"")
    (output / "source.json").write_text('{"video": "../clip.mp4", "frame_offset": 2, "fps": 30}')
    footage, warnings = find_footage(output / "checkpoint")
    assert (footage.kind, footage.path.resolve(), footage.frame_offset, warnings) == \
        ("video", tmp_path / "clip.mp4", 2, [])
    write_reference(output, "images", output / "input", frame_offset=1)
    assert find_footage(output / "flame_sequence.npz")[0] == Footage("images", (output / "input").resolve(), 1)
    assert find_footage(tmp_path / "elsewhere" / "flame_sequence.npz") == (None, [])


def test_the_trackers_frames_folder_and_the_video_named_in_its_sequence(tmp_path):
    """This project's tracker keeps frames/NNNNNN.jpg by frame id, and names its input and the input's
    frame of each sequence frame in flame_sequence.npz (source_path, source_frames)."""
    output = tmp_path / "tracked"
    output.mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"")
    np.savez(output / "flame_sequence.npz", frame_ids=np.arange(4), source_frames=np.arange(4) + 30,
             source_path=np.array(str(tmp_path / "clip.mp4")))
    assert find_footage(output) == (Footage("video", tmp_path / "clip.mp4", 30), [])
    np.savez(output / "flame_sequence.npz", frame_ids=np.arange(3), source_frames=np.array([0, 2, 4]),
             source_path=np.array(str(tmp_path / "clip.mp4")))
    assert "not consecutive frames of clip.mp4" in find_footage(output / "flame_sequence.npz")[1][0]
    (output / "frames").mkdir()
    (output / "frames" / "000000.jpg").write_bytes(b"")
    assert find_footage(output) == (Footage("images", output / "frames"), [])


def test_a_damaged_sequence_file_costs_only_its_footage(tmp_path):
    """flame_sequence.npz is read through the safe npz reader: an .npy in its place is a warning, no footage."""
    np.save(tmp_path / "flame_sequence.npy", np.arange(3))
    (tmp_path / "flame_sequence.npy").rename(tmp_path / "flame_sequence.npz")
    footage, warnings = find_footage(tmp_path)
    assert footage is None and len(warnings) == 1
    assert "footage reference is not readable" in warnings[0] and "not an .npz archive" in warnings[0]


def test_a_hostile_footage_reference_costs_only_its_footage(tmp_path):
    """source.json is read through safe_files with a size limit; nesting past the recursion limit is a warning."""
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "00000.png").write_bytes(b"")
    reference = tmp_path / "source.json"
    for content in (b"[" * 200_000, b'{"video": "\xff.mp4"}'):  # nested too deep; not UTF-8
        reference.write_bytes(content)
        footage, warnings = find_footage(tmp_path)
        assert footage == Footage("images", tmp_path / "input") and "not a readable footage reference" in warnings[0]
    with open(reference, "wb") as f:
        f.truncate(SMALL.file_bytes + 1)  # sparse: refused by its size before anything is read
    footage, warnings = find_footage(tmp_path)
    assert footage == Footage("images", tmp_path / "input") and "MiB allowed" in warnings[0]
