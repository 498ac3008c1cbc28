"""Manifests (folders, globs, CSV, JSON) and per-clip options; no Ray, no Blender."""

import argparse
import json

import numpy as np
import pytest

from flame_blender_addon.batch.manifest import ManifestError, clip_kind, option_argv, read_clips


@pytest.fixture
def clips_folder(tmp_path):
    """A folder with one clip of each kind, plus files that are not clips."""
    root = tmp_path / "clips"
    (root / "frames_clip").mkdir(parents=True)
    (root / "frames_clip" / "0001.png").write_bytes(b"png")
    (root / "actor" / "checkpoint").mkdir(parents=True)
    (root / "actor" / "checkpoint" / "00000.frame").write_bytes(b"zip")
    np.savez(root / "marks.npz", lmk=np.zeros((2, 3, 2)), image_size=np.array([8, 8]))
    np.savez(root / "seq.npz", expr=np.zeros((2, 3)))
    (root / "talk.mp4").write_bytes(b"video")
    (root / "notes.txt").write_text("not a clip")
    (root / ".hidden.mp4").write_bytes(b"video")
    return root


def test_a_folder_lists_its_clips_with_their_kind(clips_folder):
    clips = read_clips([str(clips_folder)])
    assert [(c.name, c.kind, c.tracked) for c in clips] == [
        ("actor", "sequence", False), ("frames_clip", "frames", True), ("marks", "landmarks", True),
        ("seq", "sequence", False), ("talk", "video", True)]
    assert all(c.input.is_absolute() and c.options == {} for c in clips)


def test_a_frames_or_metrical_folder_given_itself_is_one_clip(clips_folder):
    assert [(c.name, c.kind) for c in read_clips([str(clips_folder / "frames_clip")])] == [("frames_clip", "frames")]
    assert [(c.name, c.kind) for c in read_clips([str(clips_folder / "actor")])] == [("actor", "sequence")]


def test_kinds_of_single_paths(clips_folder):
    assert clip_kind(clips_folder / "frames_clip" / "0001.png") == "image"
    assert clip_kind(clips_folder / "actor" / "checkpoint" / "00000.frame") == "sequence"
    broken = clips_folder / "broken.npz"
    broken.write_bytes(b"not a zip")
    assert clip_kind(broken) == "sequence"  # the importer will say what is wrong with it


def test_a_glob_names_generic_files_after_their_folder(tmp_path):
    for actor in ("ann", "bob"):
        (tmp_path / actor).mkdir()
        np.savez(tmp_path / actor / "flame_sequence.npz", expr=np.zeros((1, 1)))
    assert [c.name for c in read_clips([str(tmp_path / "*" / "flame_sequence.npz")])] == ["ann", "bob"]
    with pytest.raises(ManifestError, match="no file matches"):
        read_clips([str(tmp_path / "*.mp4")])


def test_csv_with_per_clip_options_and_relative_paths(clips_folder, tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text("input,name,model,engine,formats\n"
                        "clips/talk.mp4,first take,models/flame.pkl,CYCLES,fbx glb\n"
                        "clips/seq.npz,,,,\n")
    first, second = read_clips([str(manifest)])
    assert (first.name, first.kind, first.input) == ("first_take", "video", clips_folder / "talk.mp4")
    assert first.options == {"model": str(tmp_path / "models" / "flame.pkl"), "engine": "CYCLES",
                             "formats": "fbx glb"}
    assert (second.name, second.options, second.where) == ("seq", {}, "list.csv line 3")


def test_json_list_keeps_json_values(clips_folder, tmp_path):
    manifest = tmp_path / "list.json"
    manifest.write_text(json.dumps([{"input": str(clips_folder / "seq.npz"), "render": True, "formats": ["glb"],
                                     "fps": 30}]))
    (clip,) = read_clips([str(manifest)])
    assert clip.options == {"render": True, "formats": ["glb"], "fps": 30}


@pytest.mark.parametrize("content, message", [
    ("input\nmissing.mp4\n", "missing.mp4: no such file"),
    ("name\nx\n", "needs a header row with an 'input' column"),
    ("input,name\nclips/talk.mp4,.hidden\n", "cannot be a clip name"),
    ("input,name\nclips/talk.mp4,a\nclips/seq.npz,a\n", "a second clip named 'a'"),
])
def test_bad_csv_lists(clips_folder, tmp_path, content, message):
    manifest = tmp_path / "list.csv"
    manifest.write_text(content)
    with pytest.raises(ManifestError, match=message):
        read_clips([str(manifest)])


def test_bad_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.json").write_text('{"input": "x"}')
    with pytest.raises(ManifestError, match="no clips in this folder"):
        read_clips([str(tmp_path / "empty")])
    with pytest.raises(ManifestError, match="JSON list of objects"):
        read_clips([str(tmp_path / "list.json")])
    with pytest.raises(ManifestError, match="no such file, folder or pattern"):
        read_clips([str(tmp_path / "nothing")])


def option_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--engine")
    p.add_argument("--target-fps", type=float)
    p.add_argument("--render", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--formats", nargs="*", default=[])
    return p


def test_clip_options_become_command_line_arguments(clips_folder, tmp_path):
    manifest = tmp_path / "list.json"
    manifest.write_text(json.dumps([
        {"input": str(clips_folder / "seq.npz"), "name": "a", "target_fps": 30, "render": "yes", "formats": "fbx,glb"},
        {"input": str(clips_folder / "seq.npz"), "name": "b", "render": False, "formats": []},
    ]))
    a, b = read_clips([str(manifest)])
    parser = option_parser()
    assert option_argv(a, parser) == ["--target-fps", "30", "--render", "--formats", "fbx", "glb"]
    assert option_argv(b, parser) == ["--no-render", "--formats"]
    parsed = parser.parse_args(["--engine", "EEVEE", *option_argv(a, parser)])
    assert (parsed.engine, parsed.target_fps, parsed.render, parsed.formats) == ("EEVEE", 30.0, True, ["fbx", "glb"])


@pytest.mark.parametrize("options, message", [
    ({"colour": "red"}, "unknown clip option 'colour'"),
    ({"output": "elsewhere"}, "unknown clip option 'output'"),
    ({"render": "maybe"}, "render must be true or false"),
])
def test_bad_clip_options(clips_folder, tmp_path, options, message):
    manifest = tmp_path / "list.json"
    manifest.write_text(json.dumps([{"input": str(clips_folder / "seq.npz"), **options}]))
    parser = option_parser()
    parser.add_argument("--output")
    (clip,) = read_clips([str(manifest)])
    with pytest.raises(ManifestError, match=message):
        option_argv(clip, parser)
