"""Takes are never lost: every import is a named take, earlier ones stay (also in a saved file) and
can be switched back to; the head's camera is reused; Clear Animation and Delete Head."""

import bpy
import numpy as np
import pytest
from bl_helpers import evaluated_vertices, scene_state, write_take

from flame_blender_addon.blender import keyframes, takes


@pytest.fixture
def two_takes(small_model_file, tmp_path):
    """A head with take 'smile' (6 frames) and then 'frown' (4 frames, no camera)."""
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "smile.npz", 6)))
    bpy.context.scene.frame_set(3)
    smile = evaluated_vertices(armature.flame.mesh)
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "frown.npz", 4)), take_name="frown",
                                  frame_start=11)
    return armature, smile


def take_names(armature):
    return [t.name for t in armature.flame.takes]


def test_a_second_import_keeps_the_first_take_and_the_camera(two_takes, tmp_path):
    armature, _ = two_takes
    assert take_names(armature) == ["smile", "frown"] and armature.flame.active_take == 1
    smile, frown = armature.flame.takes
    assert {smile.head_action.name, frown.expression_action.name} == {"FLAME.smile.head", "FLAME.frown.expression"}
    assert armature.animation_data.action == frown.head_action
    cameras = [o for o in bpy.data.objects if o.type == "CAMERA"]
    assert cameras == [armature.flame.camera] and bpy.context.scene.camera == cameras[0]
    assert cameras[0].data == frown.camera_data != smile.camera_data
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (11, 14)

    path = tmp_path / "takes.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    armature = bpy.data.objects["FLAME"]
    assert take_names(armature) == ["smile", "frown"]
    assert all(t.head_action and t.expression_action and t.camera_action and t.camera_data
               for t in armature.flame.takes)


def test_switching_back_restores_the_first_take_exactly(two_takes):
    armature, smile_frame_3 = two_takes
    assert bpy.ops.flame.switch_take(take="smile") == {"FINISHED"}
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 6) and armature.flame.active_take == 0
    camera = armature.flame.camera
    assert camera.data == armature.flame.takes["smile"].camera_data and camera.parent == armature
    scene.frame_set(3)
    np.testing.assert_allclose(evaluated_vertices(armature.flame.mesh), smile_frame_3, atol=1e-6)
    assert bpy.ops.flame.switch_take(take="frown") == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end) == (11, 14)
    with pytest.raises(RuntimeError, match="has no take 'laugh' \\(takes: smile, frown\\)"):
        bpy.ops.flame.switch_take(take="laugh")


def test_same_file_twice_makes_a_second_take(small_model_file, tmp_path):
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    path = write_take(tmp_path / "clip.npz", 3)
    bpy.ops.flame.import_sequence(filepath=str(path))
    bpy.ops.flame.import_sequence(filepath=str(path), camera_mode="STATIC_CAMERA")
    assert take_names(armature) == ["clip", "clip.001"]
    assert len([o for o in bpy.data.objects if o.type == "CAMERA"]) == 1
    assert armature.flame.camera.parent is None  # static camera: the head moves
    base = armature.flame.takes[0].base_matrix[:]
    bpy.ops.flame.switch_take(take="clip")
    assert armature.flame.camera.parent == armature
    np.testing.assert_allclose(np.array(armature.matrix_world).ravel(), base, atol=1e-6)


def test_animation_made_by_hand_becomes_a_take_before_an_import(small_model_file, tmp_path):
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    armature.pose.bones["jaw"].keyframe_insert("rotation_quaternion", frame=1)
    hand_made = armature.animation_data.action
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "clip.npz", 3)))
    assert take_names(armature) == ["Before import", "clip"]
    assert armature.flame.takes[0].head_action == hand_made and hand_made.users == 1


def test_a_failed_import_leaves_takes_and_camera_as_they_were(two_takes, tmp_path, monkeypatch):
    armature, _ = two_takes
    before = scene_state()
    camera = armature.flame.camera
    state = (camera.data.name, camera.parent, armature.animation_data.action.name, armature.flame.active_take)
    real = keyframes.write_channels

    def fail_on_the_camera(owner, *args, **kwargs):
        if owner.id_type == "OBJECT" and owner.type == "CAMERA":
            raise RuntimeError("simulated failure")
        return real(owner, *args, **kwargs)

    monkeypatch.setattr("flame_blender_addon.blender.sequence_import.write_channels", fail_on_the_camera)
    with pytest.raises(RuntimeError, match="simulated failure"):
        bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "third.npz", 5)))
    assert take_names(armature) == ["smile", "frown"] and scene_state() == before
    assert (camera.data.name, camera.parent, armature.animation_data.action.name,
            armature.flame.active_take) == state


def _with_static_offset(path, offset):
    with np.load(path) as data:
        arrays = dict(data)
    np.savez(path, **arrays, static_offset=offset)
    return path


def _head_detail(armature) -> dict:
    """What an import onto an existing head may change, in full."""
    props, camera = armature.flame, armature.flame.camera
    keys = props.mesh.data.shape_keys
    return {"sequence": (props.sequence_path, props.sequence_source, props.sequence_frame_start),
            "names": sorted(id_.name for id_ in (*bpy.data.actions, *bpy.data.cameras)),
            "offset_key": [(kb.name, kb.slider_min, kb.slider_max, [tuple(p.co) for p in kb.data])
                           for kb in keys.key_blocks if kb.name == "static_offset"],
            "bones": [(b.rotation_mode, tuple(b.location), tuple(b.rotation_quaternion), tuple(b.rotation_euler))
                      for b in armature.pose.bones],
            "camera": (camera.rotation_mode, tuple(camera.location), tuple(camera.rotation_euler), camera.data.name),
            "armature": (armature.rotation_mode, tuple(armature.location), tuple(armature.rotation_euler))}


def test_a_failed_import_puts_back_all_it_changed_on_the_head(small_model_file, tmp_path, monkeypatch):
    """Hand-made animation (renamed into a 'Before import' take), an offset key rewritten in place, the
    sequence named on the head, posed bones and the camera's rotation mode: a failure at the very end
    (recording the take) undoes them all."""
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    n_verts = len(armature.flame.mesh.data.vertices)
    rng = np.random.default_rng(4)
    first = _with_static_offset(write_take(tmp_path / "first.npz", 3), rng.normal(scale=1e-3, size=(n_verts, 3)))
    bpy.ops.flame.import_sequence(filepath=str(first))
    armature.animation_data.action = bpy.data.actions.new("mine")
    jaw = armature.pose.bones["jaw"]
    jaw.rotation_mode = "XYZ"
    jaw.rotation_euler = (0.2, 0.0, 0.1)
    jaw.keyframe_insert("rotation_euler", frame=1)
    armature.flame.camera.rotation_mode = "XYZ"
    before, detail = scene_state(), _head_detail(armature)
    second = _with_static_offset(write_take(tmp_path / "second.npz", 5), rng.normal(scale=1e-3, size=(n_verts, 3)))

    real = takes.record

    def fail_but_the_stash(context, head, name, *args):
        if name != "Before import":
            raise RuntimeError("simulated failure")
        return real(context, head, name, *args)

    monkeypatch.setattr(takes, "record", fail_but_the_stash)
    with pytest.raises(RuntimeError, match="simulated failure"):
        bpy.ops.flame.import_sequence(filepath=str(second), frame_start=7)
    assert scene_state() == before and _head_detail(armature) == detail
    assert take_names(armature) == ["first"] and armature.animation_data.action.name == "mine"


def test_clear_animation_removes_the_current_take_then_all(two_takes):
    armature, _ = two_takes
    frown = armature.flame.takes["frown"]
    frown_actions = {frown.head_action.name, frown.expression_action.name}
    assert bpy.ops.flame.clear_animation() == {"FINISHED"}
    assert take_names(armature) == ["smile"] and armature.flame.active_take == -1
    assert not frown_actions & {a.name for a in bpy.data.actions}
    assert armature.animation_data.action is None
    assert all(tuple(b.rotation_quaternion) == (1, 0, 0, 0) for b in armature.pose.bones)
    keys = armature.flame.mesh.data.shape_keys
    assert keys.animation_data.action is None and all(kb.value == 0 for kb in keys.key_blocks if "exp" in kb.name)
    assert bpy.ops.flame.clear_animation(all_takes=True) == {"FINISHED"}
    assert take_names(armature) == [] and not bpy.data.actions
    with pytest.raises(RuntimeError, match="no animation to clear"):
        bpy.ops.flame.clear_animation()


def test_delete_head_removes_what_it_made_and_nothing_else(two_takes):
    armature, _ = two_takes
    smile = armature.flame.takes["smile"]
    smile.camera_data.background_images.new().image = bpy.data.images.new("input_frames", 4, 4)
    other = bpy.data.objects.new("Suzanne", bpy.data.meshes.new("Suzanne"))
    bpy.context.collection.objects.link(other)
    other.animation_data_create().action = bpy.data.actions.new("Suzanne_action")
    bpy.data.images.new("texture", 4, 4)
    keeper = bpy.data.objects.new("keeper", None)  # uses one of the head's actions: it stays
    bpy.context.collection.objects.link(keeper)
    keeper.animation_data_create().action = smile.head_action
    shared = smile.head_action.name
    assert bpy.ops.flame.delete_head() == {"FINISHED"}
    assert sorted(o.name for o in bpy.data.objects) == ["Suzanne", "keeper"]
    assert sorted(a.name for a in bpy.data.actions) == sorted(["Suzanne_action", shared])
    assert [i.name for i in bpy.data.images] == ["texture"]
    assert [m.name for m in bpy.data.meshes] == ["Suzanne"]
    assert not bpy.data.cameras and not bpy.data.armatures and not bpy.data.shape_keys


def test_switching_back_restores_an_identity_beyond_the_sliders(small_model_file, tmp_path):
    from fake_tracker import fake_sequence, write_npz

    from flame_blender_addon.blender import head

    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    seq = fake_sequence(3)
    shape = np.linspace(-25.0, 25.0, 10)  # outside the +-10 sliders: overflow keys carry it
    seq["shape"] = (shape.tolist(), (10,))
    write_npz(str(tmp_path / "wide.npz"), seq)
    bpy.ops.flame.import_sequence(filepath=str(tmp_path / "wide.npz"), take_name="wide")
    wide = head.coefficient_values(armature)[0]
    np.testing.assert_allclose(wide, shape, atol=1e-4)
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "plain.npz", 3)), take_name="plain")
    assert bpy.ops.flame.switch_take(take="wide") == {"FINISHED"}
    np.testing.assert_allclose(head.coefficient_values(armature)[0], wide, atol=1e-4)


def _on_the_head(armature) -> dict:
    """What a take puts on the head, in full: the actions on the head, its shape keys and camera by
    name, the scene timing, both objects' transforms and the evaluated mesh at each frame of the range."""
    scene, camera = bpy.context.scene, armature.flame.camera
    owners = (armature, armature.flame.mesh.data.shape_keys, camera)
    state = {"actions": [o.animation_data.action.name if o.animation_data and o.animation_data.action else None
                         for o in owners],
             "timing": (scene.frame_start, scene.frame_end, scene.render.fps, scene.camera),
             "camera": (camera.data.name, camera.parent), "frames": []}
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        state["frames"].append((evaluated_vertices(armature.flame.mesh), np.array(armature.matrix_world),
                                np.array(camera.matrix_world)))
    return state


def _assert_same(state, expected):
    """Equal, the evaluated mesh to float32 rounding (the identity and joints are set again)."""
    assert {k: v for k, v in state.items() if k != "frames"} == {k: v for k, v in expected.items() if k != "frames"}
    for got, want in zip(state["frames"], expected["frames"], strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def _switch_through(armature, states):
    for name in [*states, *reversed(states)]:
        assert bpy.ops.flame.switch_take(take=name) == {"FINISHED"}
        _assert_same(_on_the_head(armature), states[name])


def test_imports_in_a_row_name_their_own_actions_and_switch_back_exactly(small_model_file, tmp_path):
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    states = {}
    for name, frames, start in (("smile", 6, 1), ("frown", 4, 11)):
        bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / f"{name}.npz", frames)), frame_start=start)
        states[name] = _on_the_head(armature)
        assert states[name]["actions"] == [f"FLAME.{name}.{role}" for role in takes.ROLES]
    assert take_names(armature) == ["smile", "frown"]
    assert sorted(a.name for a in bpy.data.actions) == sorted(f"FLAME.{n}.{r}" for n in states for r in takes.ROLES)
    _switch_through(armature, states)


def test_a_hand_made_take_keeps_the_names_of_the_take_it_shares_actions_with(small_model_file, tmp_path):
    """A hand-keyed head action (every bone keyed) over the 'smile' take's expression and camera: the
    'Before import' take holds all three, and only the hand-made action is named after it."""
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "smile.npz", 6)))
    states = {"smile": _on_the_head(armature)}
    smile = armature.flame.takes["smile"]
    armature.animation_data.action = hand_made = bpy.data.actions.new("mine")
    for frame, angle in ((1, 0.0), (6, 0.3)):
        for bone in armature.pose.bones:
            bone.rotation_quaternion = (np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0) if bone.name == "jaw" else (
                1.0, 0.0, 0.0, 0.0)
            bone.keyframe_insert("rotation_quaternion", frame=frame)
            bone.keyframe_insert("location", frame=frame)
    before = _on_the_head(armature)
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "frown.npz", 4)), frame_start=11)
    states["frown"] = _on_the_head(armature)

    assert take_names(armature) == ["smile", "Before import", "frown"]
    hand = armature.flame.takes["Before import"]
    assert (hand.head_action, hand.expression_action, hand.camera_action) == (
        hand_made, smile.expression_action, smile.camera_action)
    assert states["smile"]["actions"] == [f"FLAME.smile.{role}" for role in takes.ROLES]
    states["Before import"] = {**before, "actions": ["FLAME.Before import.head", *states["smile"]["actions"][1:]]}
    assert sorted(a.name for a in bpy.data.actions) == sorted(
        ["FLAME.Before import.head"] + [f"FLAME.{n}.{r}" for n in ("smile", "frown") for r in takes.ROLES])
    _switch_through(armature, states)
