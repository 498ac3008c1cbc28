"""scripts/flame_cli.py as a user runs it (a separate process with the bpy wheel), and the preview
renderer it uses (in this process)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from bl_helpers import scene_state

from flame_blender_addon.blender import head, sequence_import
from flame_blender_addon.blender.render import frames, preview, sources
from flame_blender_addon.blender.render.settings import PREVIEW_LIGHTS, RenderSettings, engine_id
from flame_blender_addon.core.errors import FlameError
from flame_blender_addon.demo.head import demo_model
from flame_blender_addon.demo.performance import demo_performance

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "scripts" / "flame_cli.py"
sys.path.insert(0, str(CLI.parent))
import flame_cli  # noqa: E402

SOURCE_COLOUR = (0.2, 0.4, 0.6, 1.0)
FAKE_TRACKER = f"{sys.executable} {ROOT / 'tests' / 'fake_tracker.py'} --output {{output}} --frames 4"


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "error" in line.lower()]


def write_source_frames(folder: Path, numbers, size=(24, 24), broken=()) -> Path:
    """Solid-colour numbered PNGs, as a tracker's input frames; ``broken`` numbers are not images."""
    folder.mkdir(parents=True)
    pixels = np.tile(np.array(SOURCE_COLOUR, dtype=np.float32), (size[1], size[0], 1))
    for n in numbers:
        if n in broken:
            (folder / f"{n:05d}.png").write_bytes(b"\x89PNG but not really")
        else:
            frames.save_rgba(pixels, folder / f"{n:05d}.png")
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``flame_cli.py demo`` at toy size: its output folder and the process result."""
    out = tmp_path_factory.mktemp("cli") / "demo"
    result = cli("demo", "--output", out, "--frames", "3", "--resolution", "32", "--n-shape", "5", "--n-expr", "20")
    return out, result


def test_demo_writes_blend_preview_and_every_export(demo):
    out, result = demo
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["demo.blend", "frames", "head.abc", "head.glb", "head.usd",
                                                       "head_unity.fbx", "head_unreal.fbx", "obj", "ply",
                                                       "preview.mp4"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["0001.png", "0002.png", "0003.png"]
    assert sorted(p.name for p in (out / "obj").iterdir()) == ["head_0001.obj", "head_0002.obj", "head_0003.obj"]
    assert len(list((out / "ply").iterdir())) == 3
    assert (out / "preview.mp4").read_bytes()[4:8] == b"ftyp"
    assert frames.load_rgba(out / "frames" / "0002.png").shape == (32, 32, 4)
    assert "render (workbench)" in result.stdout and "eta" in result.stdout and "100%" in result.stdout
    assert result.stderr == ""  # Blender's own messages went to the log, which is removed on success

    bpy.ops.wm.open_mainfile(filepath=str(out / "demo.blend"), load_ui=False)
    scene = bpy.context.scene
    armature = next(o for o in scene.objects if head.find_head(o) is o)
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (1, 3, 25)
    assert scene.camera is not None and armature.flame.sequence_source == "demo performance"
    assert sum(o.type == "LIGHT" for o in scene.objects) == len(PREVIEW_LIGHTS)


def test_render_over_source_frames_side_by_side(demo, tmp_path):
    out, _ = demo
    source = write_source_frames(tmp_path / "input", range(10, 13))
    rendered = tmp_path / "rendered"
    result = cli("render", out / "demo.blend", "--output", rendered, "--frames", "2:3", "--resolution", "24",
                 "--engine", "CYCLES", "--samples", "1", "--source", source, "--overlay", "--side-by-side", "--mp4")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (rendered / "frames").iterdir()) == ["0002.png", "0003.png"]
    assert (rendered / "preview.mp4").is_file()
    frame = frames.load_rgba(rendered / "frames" / "0002.png")
    assert frame.shape == (24, 48, 4)
    np.testing.assert_allclose(frame[:, :24], np.broadcast_to(SOURCE_COLOUR, (24, 24, 4)), atol=1 / 255)
    right = frame[:, 24:]
    np.testing.assert_allclose(right[0, 0], SOURCE_COLOUR, atol=1 / 255)  # a corner: the source shows through
    assert np.abs(right[12, 12] - SOURCE_COLOUR).max() > 0.05  # the middle: the head


def test_export_subcommand_writes_the_chosen_formats_and_frames(demo, tmp_path):
    out, _ = demo
    result = cli("export", out / "demo.blend", "--output", tmp_path / "engine", "--formats", "glb", "obj",
                 "--frames", "1:2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "engine").iterdir()) == ["head.glb", "obj"]
    assert sorted(p.name for p in (tmp_path / "engine" / "obj").iterdir()) == ["head_0001.obj", "head_0002.obj"]


def test_build_and_import_write_blend_files(tmp_path, small_model_file):
    from tracker_files import vhap_arrays

    result = cli("build", small_model_file, "--output", tmp_path / "head.blend", "--n-shape", "5", "--n-expr", "5")
    assert result.returncode == 0 and (tmp_path / "head.blend").is_file(), result.stderr
    arrays = vhap_arrays(np.random.default_rng(0), 4, n_verts=300)
    np.savez(tmp_path / "flame_param.npz", **{k: v for k, v in arrays.items() if k != "static_offset"})
    result = cli("import", tmp_path / "flame_param.npz", "--model", small_model_file,
                 "--output", tmp_path / "anim.blend")
    assert result.returncode == 0, result.stderr
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "anim.blend"), load_ui=False)
    assert bpy.context.scene.frame_end == 4
    assert [o.flame.sequence_source for o in bpy.context.scene.objects if o.type == "ARMATURE"] == ["VHAP"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anim.blend", "flame_param.npz", "head.blend"]


def test_track_runs_the_tracker_and_saves_the_tracked_head(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"not decoded by the stand-in tracker")
    result = cli("track", tmp_path / "clip.mp4", "--output", tmp_path / "tracked.blend",
                 "--work-dir", tmp_path / "work", "--command", FAKE_TRACKER)
    assert result.returncode == 0, result.stderr
    assert "[tracker 100.0%]" in result.stdout
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "tracked.blend"), load_ui=False)
    assert bpy.context.scene.frame_end == 4 and bpy.context.scene.camera is not None


def test_help_documents_every_subcommand():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("demo", "build", "import", "track", "render", "export", "retarget"):
        assert command in result.stdout
        sub = cli(command, "--help")
        assert sub.returncode == 0 and "--output" in sub.stdout, command
    assert "--side-by-side" in cli("render", "--help").stdout


@pytest.mark.parametrize("args, code, message", [
    (["bogus"], 2, "invalid choice: 'bogus'"),
    (["demo"], 2, "the following arguments are required: -o/--output"),
    (["demo", "--output", "{tmp}/out", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["build", "missing.pkl", "--output", "{tmp}/out/head.blend"], 2, "missing.pkl: file not found"),
    (["build", "{tmp}/a_file", "--output", "{tmp}/out/head.txt"], 2, "must be a .blend file"),
    (["render", "missing.blend", "--output", "{tmp}/out"], 2, "missing.blend: file not found"),
    (["render", "{tmp}/a_file", "--output", "{tmp}/out", "--frames", "9:2"], 2, "LAST is before FIRST"),
    (["render", "{tmp}/a_file", "--output", "{tmp}/out", "--resolution", "big"], 2, "is not WIDTH"),
    (["demo", "--output", "{tmp}/a_file/demo"], 1, "cannot write there"),
    (["import", "{tmp}/a_file", "--output", "{tmp}/out/anim.blend"], 1, "a_file"),
    (["export", "{tmp}/a_file", "--output", "{tmp}/out"], 1, "a_file: cannot be opened as a .blend file"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, args, code, message):
    (tmp_path / "a_file").write_text("in the way")
    result = cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == code
    assert len(error_lines(result)) == 1 and message in error_lines(result)[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_a_failure_midway_leaves_the_output_folder_as_it_was(demo, tmp_path):
    out, _ = demo
    source = write_source_frames(tmp_path / "input", (1, 2, 3), broken=(2,))
    target = tmp_path / "rendered"
    target.mkdir()
    (target / "keep.txt").write_text("from before")
    result = cli("render", out / "demo.blend", "--output", target, "--frames", "1:3", "--resolution", "16",
                 "--source", source, "--overlay")
    assert result.returncode == 1
    assert len(error_lines(result)) == 1 and "00002.png: cannot be read as an image" in error_lines(result)[0]
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_blender_executable_arguments_follow_the_double_dash():
    blender_argv = ["blender", "--background", "--python", "scripts/flame_cli.py", "--", "demo", "-o", "x"]
    assert flame_cli.script_args(blender_argv, blender=True) == ["demo", "-o", "x"]
    assert flame_cli.script_args(["blender", "-b", "-P", "scripts/flame_cli.py"], blender=True) == []
    assert flame_cli.script_args(["scripts/flame_cli.py", "demo", "-o", "x"], blender=False) == ["demo", "-o", "x"]
    track = ["scripts/flame_cli.py", "track", "--python", "/venv/bin/python", "-o", "x.blend"]
    assert flame_cli.script_args(track, blender=False) == track[1:]  # the tracker's --python, not Blender's
    assert not flame_cli.run_by_blender()  # the bpy wheel


# -------------------------------------------------------------------------------------- renderer
def test_compose_overlays_and_places_the_source_on_the_left():
    render_px = np.zeros((2, 2, 4), dtype=np.float32)
    render_px[0, 0] = (1.0, 0.0, 0.0, 1.0)  # opaque red
    render_px[0, 1] = (1.0, 1.0, 1.0, 0.5)  # half-transparent white
    source = np.full((4, 4, 4), 0.5, dtype=np.float32)  # resized to 2 x 2
    out = frames.compose(render_px, source, overlay=True, side_by_side=True)
    assert out.shape == (2, 4, 4)
    np.testing.assert_allclose(out[:, :2], 0.5 * np.ones((2, 2, 4)) + [0, 0, 0, 0.5])
    np.testing.assert_allclose(out[0, 2], (1.0, 0.0, 0.0, 1.0))
    np.testing.assert_allclose(out[0, 3], (0.75, 0.75, 0.75, 1.0))
    np.testing.assert_allclose(out[1, 2], (0.5, 0.5, 0.5, 1.0))


def test_render_preview_restores_the_scene_and_removes_temporary_lights(tmp_path):
    armature = head.build_head(bpy.context, demo_model().truncated(2, 20), "FLAME_demo")
    sequence_import.apply_sequence(bpy.context, armature,
                                   demo_performance(n_shape=2, n_expr=20, image_size=(16, 16)).take(slice(0, 3)))
    scene = bpy.context.scene

    def settings():
        render_settings = scene.render
        return {"engine": render_settings.engine, "film": render_settings.film_transparent,
                "size": (render_settings.resolution_x, render_settings.resolution_y), "world": scene.world,
                "samples": scene.cycles.samples, "aa": scene.display.render_aa,
                "format": render_settings.image_settings.file_format}

    before = scene_state() | settings()
    fractions = []
    result = preview.render_preview(bpy.context, tmp_path, RenderSettings(engine="CYCLES", samples=1),
                                   video=tmp_path / "p.mp4", report=lambda f, m: fractions.append(f))
    assert [p.name for p in result.frames] == ["0001.png", "0002.png", "0003.png"] and result.video.is_file()
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    after = scene_state() | settings()
    assert after.pop("images") == ["Render Result"]  # Blender's own, made by any render
    before.pop("images")
    assert after == before and not bpy.data.lights and not bpy.data.worlds
    with pytest.raises(FlameError, match="need source frames"):
        preview.render_preview(bpy.context, tmp_path, RenderSettings(), overlay=True)
    operator_out = tmp_path / "operator"
    assert bpy.ops.flame.render_preview(directory=str(operator_out), use_video=False) == {"FINISHED"}
    assert sorted(p.name for p in operator_out.iterdir()) == ["0001.png", "0002.png", "0003.png"]
    with pytest.raises(RuntimeError, match="need source frames"):
        bpy.ops.flame.render_preview(directory=str(operator_out), side_by_side=True)
    assert engine_id("EEVEE") in ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT")


def numbered_frames(folder: Path, numbers, size=(4, 4)) -> Path:
    """PNGs ``NNNNN.png`` whose red channel is their number / 255."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        frames.save_rgba(np.tile(np.array([n / 255, 0.5, 0.5, 1.0], dtype=np.float32), (size[1], size[0], 1)),
                         folder / f"{n:05d}.png")
    return folder


def number(pixels) -> int:
    return round(float(pixels[0, 0, 0]) * 255)


def test_source_frames_follow_the_camera_background_sequence(tmp_path):
    """A tracked import shows input frame N at scene frame frame_start + (N - first); so does the overlay."""
    source = numbered_frames(tmp_path / "input", range(7, 12))
    camera = bpy.data.cameras.new("cam")
    bpy.context.scene.camera = bpy.data.objects.new("cam", camera)
    assert sources.camera_background_frames(bpy.context.scene) is None
    image = bpy.data.images.load(str(source / "00007.png"))
    image.source = "SEQUENCE"
    background = camera.background_images.new()
    background.image = image
    background.image_user.frame_start, background.image_user.frame_duration = 101, 5
    background.image_user.frame_offset = 6
    lookup = sources.camera_background_frames(bpy.context.scene)
    assert [number(lookup(f)) for f in (101, 103, 105)] == [7, 9, 11]
    assert number(lookup(90)) == 7 and number(lookup(200)) == 11  # held outside the range
    folder = sources.given_frames(source, 1)
    assert number(folder(1)) == 7 and folder(9) is None


def test_render_source_folder_starts_at_the_sequence_not_at_the_first_rendered_frame(demo, tmp_path):
    """``--source DIR --frames 130:130`` composited the folder's first image: it is the 130th (frame id 129)."""
    out, _ = demo
    source = numbered_frames(tmp_path / "input", range(0, 135))
    result = cli("render", out / "demo.blend", "--output", tmp_path / "r", "--frames", "130:130", "--resolution", "8",
                 "--source", source, "--side-by-side")
    assert result.returncode == 0, result.stderr
    assert number(frames.load_rgba(tmp_path / "r" / "frames" / "0130.png")) == 129


def test_track_takes_its_python_option_and_documents_input(tmp_path):
    """``--python PATH`` is the tracker's Python, not Blender's option; the placeholders are {input} ..."""
    (tmp_path / "clip.mp4").write_bytes(b"not decoded by the stand-in tracker")
    result = cli("track", tmp_path / "clip.mp4", "--python", sys.executable, "--output", tmp_path / "t.blend",
                 "--work-dir", tmp_path / "work", "--command", FAKE_TRACKER)
    assert result.returncode == 0, result.stderr
    assert "{input}" in cli("track", "--help").stdout and "{source}" not in cli("track", "--help").stdout
    assert flame_cli.script_args([str(CLI), "track", "x.mp4", "--python", "/env/bin/python"], blender=False) == \
        ["track", "x.mp4", "--python", "/env/bin/python"]


def test_a_tracker_error_is_printed_once(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    result = cli("track", tmp_path / "clip.mp4", "--output", tmp_path / "t.blend", "--command", "echo {source}")
    assert result.returncode == 1
    said = (result.stdout + result.stderr).splitlines()
    assert [line for line in said if "template is not valid" in line] == [
        "flame_cli.py: error: track: could not start the tracker: tracker command template is not valid "
        "('source'); use {input}, {output} and {model}"]


def test_import_reports_coefficients_beyond_the_sliders(tmp_path, small_model_file):
    from tracker_files import vhap_arrays

    arrays = vhap_arrays(np.random.default_rng(1), 3, n_verts=300)
    arrays["shape"][4] = 20.0
    np.savez(tmp_path / "tracked_flame_params.npz", **arrays)
    result = cli("import", tmp_path / "tracked_flame_params.npz", "--model", small_model_file,
                 "--output", tmp_path / "anim.blend")
    assert result.returncode == 0, result.stderr
    assert "1 identity (up to 20.0) coefficients pass the sliders' +-10" in result.stdout


def test_batch_without_ray_says_how_to_install_it(tmp_path):
    if importlib.util.find_spec("ray") is not None:
        pytest.skip("Ray is installed here; tests/batch runs the command")
    result = cli("batch", tmp_path, "--output", tmp_path / "out")
    assert result.returncode == 1 and "pip install 'flame-blender-addon[batch]'" in result.stderr
    assert len(error_lines(result)) == 1 and not (tmp_path / "out").exists()


def test_export_subcommand_writes_the_licence_and_reminds_of_it(tmp_path, small_model_file):
    from flame_blender_addon.core.formats.file_metadata import read_glb_json

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=2, n_expr=2)  # generic_model.pkl
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "head.blend"))
    result = cli("export", tmp_path / "head.blend", "--output", tmp_path / "engine", "--formats", "glb",
                 "--frames", "1:1")
    assert result.returncode == 0, result.stderr
    assert ("note: FLAME 2017-2020 is under the MPI FLAME licence (non-commercial) (https://flame.is.tue.mpg.de, "
            "License page): this export is for non-commercial research use") in result.stdout.splitlines()
    gltf, _ = read_glb_json((tmp_path / "engine" / "head.glb").read_bytes())
    assert gltf["asset"]["extras"]["flame_edition"] == "FLAME 2017-2020"
