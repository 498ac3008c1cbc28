"""Retargeting to the user's own character, against truth built exactly (tests/retarget_truth.py).

The character is the demo head's surface at an unseen identity, re-meshed (edge midpoints, n-gons,
loose eyeballs, shuffled order), in centimetres, turned 20 degrees and moved. Its own keys are
FLAME expression combinations carried onto it, so a performance made from them is exactly
representable both ways.
"""

import contextlib
from pathlib import Path

import bpy
import numpy as np
import pytest
from bl_helpers import OperatorDouble, evaluated_vertices, scene_state
from mathutils import Matrix
from mathutils.bvhtree import BVHTree
from retarget_truth import midpoint_remesh, placement, unseen_identity

from flame_blender_addon.blender import head, retarget, retarget_operators
from flame_blender_addon.blender.keyframes import write_channels
from flame_blender_addon.core import lbs
from flame_blender_addon.core.retarget import livelink, solve
from flame_blender_addon.core.rotations import axis_angle_to_matrix, matrix_to_quaternion
from flame_blender_addon.demo import head as demo_head

N_EXPR = 20
ARKIT = ("eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthSmileLeft", "mouthSmileRight", "browInnerUp",
         "mouthPucker", "cheekPuff", "mouthFunnel", "browDownLeft", "noseSneerRight", "mouthClose")


@pytest.fixture(scope="module")
def truth():
    model = demo_head.demo_model()
    beta = unseen_identity(100)
    surface = model.v_template + model.shapedirs[:, :, :100] @ beta
    points, polygons, _ = midpoint_remesh(surface, model.faces)
    M = placement()  # FLAME -> world, centimetres
    local = points @ (100 * demo_head_axes()).T  # the mesh holds centimetres; the object turns and moves it
    combos = np.random.default_rng(5).normal(size=(len(ARKIT), N_EXPR)) * (
        np.random.default_rng(6).random((len(ARKIT), N_EXPR)) < 0.3)
    return {"model": model, "local": local, "polygons": polygons, "M": M, "combos": combos}


def _character(truth, name="character"):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(truth["local"].tolist(), [], truth["polygons"])
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(obj)
    R = truth["M"][:3, :3] @ np.linalg.inv(100 * demo_head_axes())
    obj.matrix_world = Matrix.Translation(truth["M"][:3, 3].tolist()) @ Matrix(R.tolist()).to_4x4()
    return obj


def demo_head_axes() -> np.ndarray:
    from flame_blender_addon.core import rig
    return rig.FLAME_TO_BLENDER[:3, :3]


def _world(obj) -> np.ndarray:
    bpy.context.view_layer.update()
    M = np.array(obj.matrix_world)
    return evaluated_vertices(obj) @ M[:3, :3].T + M[:3, 3]


@pytest.fixture
def fitted(truth):
    bpy.ops.flame.add_demo_head(n_shape=100, n_expr=N_EXPR)
    armature = bpy.context.view_layer.objects.active
    obj = _character(truth)
    bpy.ops.flame.fit_to_mesh(target=armature.name, mesh=obj.name, n_shape=100)
    return armature, obj


def test_a_loose_fit_is_reported_and_a_human_head_is_not(truth):
    """Suzanne passes the fit's Max RMS (about 9 mm against 10) but not as a head: a WARNING says so;
    the human-like character fits far tighter and gets none."""
    bpy.ops.flame.add_demo_head(n_shape=100, n_expr=N_EXPR)
    armature = bpy.context.view_layer.objects.active
    human = _character(truth)
    bpy.ops.mesh.primitive_monkey_add()
    warnings = {}
    for obj in (human, bpy.context.active_object):
        double = OperatorDouble(retarget_operators.FLAME_OT_fit_to_mesh, target=armature.name, mesh=obj.name)
        assert double.execute(bpy.context) == {"FINISHED"}
        warnings[obj.name] = [text for level, text in double.reports if level == "WARNING"]
    assert warnings.pop(human.name) == []
    [(monkey, found)] = warnings.items()
    assert len(found) == 1 and found[0].startswith("loose fit: RMS") and f"'{monkey}'" in found[0], found


def test_fit_reaches_the_character_surface(fitted, truth):
    armature, obj = fitted
    flame_world = _world(armature.flame.mesh)
    tree = BVHTree.FromPolygons(flame_world.tolist(), truth["model"].faces.tolist(), all_triangles=True)
    scale = np.cbrt(np.linalg.det(np.array(armature.matrix_world)[:3, :3]))
    d = np.array([tree.find_nearest(p)[3] for p in _world(obj)]) / scale  # FLAME metres
    assert np.sqrt(np.mean(d ** 2)) <= 1e-3
    assert np.quantile(d, 0.99) <= 3e-3
    assert obj[retarget.PROP_RMS_M] <= 1e-3 and obj[retarget.PROP_P99_M] <= 3e-3
    # character units = FLAME metres times the armature's scale (centimetres: ~100, the identity's
    # overall size and the scale trade off a little)
    assert obj[retarget.PROP_RMS] == pytest.approx(obj[retarget.PROP_RMS_M] * scale, rel=1e-6)
    assert abs(scale / 100 - 1) < 0.05
    assert obj[retarget.PROP_HEAD] == armature.name
    assert retarget.ATTR_FACE in obj.data.attributes


def _performance(T: int, seed: int = 3):
    """Head, neck, jaw and eye rotations, translation and N_EXPR expression components."""
    rng = np.random.default_rng(seed)
    aa = rng.normal(scale=[[0.15], [0.2], [0.12], [0.2], [0.2]], size=(T, 5, 3))
    aa[:, 2] = np.abs(aa[:, 2]) * [1, 0.2, 0.2]
    return axis_angle_to_matrix(aa), rng.normal(size=(T, N_EXPR)), rng.normal(scale=0.01, size=(T, 3))


def test_transfer_rig_follows_the_flame_formula(fitted, truth):
    armature, obj = fitted
    bpy.ops.flame.transfer_rig(target=armature.name, mesh=obj.name)
    model = retarget.head_model(armature)
    fit = retarget.fitted(armature, obj, model.faces)
    shape = head.coefficient_values(armature)[0]
    R, expr, trans = _performance(2)
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    scale = np.cbrt(np.linalg.det(fit.flame_to_local[:3, :3]))
    for t in range(2):
        for e in range(N_EXPR):
            blocks[f"exp{e:03d}"].value = expr[t, e]
        bpy.ops.flame.update_joints(target=armature.name)
        q = matrix_to_quaternion(R[t])
        for j, pb in enumerate(armature.pose.bones[n] for n in ("root", "neck", "jaw", "eye.L", "eye.R")):
            pb.rotation_quaternion = q[j]
        armature.pose.bones["root"].location = trans[t]
        bpy.context.view_layer.update()
        posed = lbs.forward(model, shape, expr[t:t + 1], R[t:t + 1], trans[t:t + 1]).vertices[0]
        points = fit.binding.interpolate(posed)
        a, b, c = (posed[fit.binding.corners[:, k]] for k in range(3))
        normal = np.cross(b - a, c - a)
        points += fit.binding.offset[:, None] * normal / np.linalg.norm(normal, axis=1, keepdims=True)
        expected = points @ fit.flame_to_local[:3, :3].T + fit.flame_to_local[:3, 3]
        error = np.linalg.norm(evaluated_vertices(obj) - expected, axis=1) / scale
        assert np.sqrt(np.mean(error ** 2)) <= 1e-3, t
    assert {g.name for g in obj.vertex_groups} >= {"root", "neck", "jaw", "eye.L", "eye.R"}


def _add_own_keys(truth, armature, obj):
    """ARKit-named keys on the character: FLAME expression combinations carried through the binding."""
    model = retarget.head_model(armature)
    fit = retarget.fitted(armature, obj, model.faces)
    deltas = np.einsum("vce,ke->kvc", model.exprdirs[:, :, :N_EXPR], truth["combos"])
    local = fit.binding.interpolate(deltas) @ fit.flame_to_local[:3, :3].T
    obj.shape_key_add(name="Basis", from_mix=False)
    basis = retarget.rest_vertices(obj)
    for name, delta in zip(ARKIT, local, strict=True):
        kb = obj.shape_key_add(name=name, from_mix=False)
        kb.data.foreach_set("co", (basis + delta).astype(np.float32).ravel())
    return model


def _key_head(armature, frames, expr, R):
    write_channels(armature.flame.mesh.data.shape_keys, "perf", frames,
                   [(f'key_blocks["exp{e:03d}"].value', 0, expr[:, e]) for e in range(N_EXPR)])
    q = matrix_to_quaternion(R)
    write_channels(armature, "perf_bones", frames,
                   [(f'pose.bones["{n}"].rotation_quaternion', i, q[:, j, i])
                    for j, n in enumerate(("root", "neck", "jaw", "eye.L", "eye.R")) for i in range(4)])


def test_retarget_to_own_keys_recovers_the_weights(fitted, truth):
    armature, obj = fitted
    _add_own_keys(truth, armature, obj)
    T = 40
    rng = np.random.default_rng(11)
    weights = np.clip(rng.uniform(-0.3, 1.0, size=(T, len(ARKIT))), 0, 1)  # some at the bound
    R, _, _ = _performance(T)
    R[:, 2:] = np.eye(3)  # expression-made performance: no jaw or gaze; head and neck move rigidly
    frames = np.arange(1, T + 1, dtype=np.float64)
    _key_head(armature, frames, weights @ truth["combos"], R)
    bpy.ops.flame.retarget_to_shape_keys(target=armature.name, mesh=obj.name, frame_start=1, frame_end=T)
    keyed = {fc.data_path: np.array([fc.evaluate(f) for f in frames])
             for fc in _fcurves(obj.data.shape_keys)}
    got = np.stack([keyed[f'key_blocks["{n}"].value'] for n in ARKIT], 1)
    assert np.abs(got - weights).mean() <= 0.02
    assert np.abs(got - weights).max() <= 0.1
    assert obj.animation_data.action is not None  # rigid head motion went to the object


def _fcurves(owner):
    from flame_blender_addon.blender import compat
    return list(compat.action_fcurves(owner.animation_data.action))


def test_retarget_from_own_keys_reproduces_the_expression(fitted, truth):
    armature, obj = fitted
    model = _add_own_keys(truth, armature, obj)
    T = 30
    weights = np.random.default_rng(12).uniform(0, 1, size=(T, len(ARKIT)))
    frames = np.arange(1, T + 1, dtype=np.float64)
    write_channels(obj.data.shape_keys, "take", frames,
                   [(f'key_blocks["{n}"].value', 0, weights[:, k]) for k, n in enumerate(ARKIT)])
    bpy.ops.flame.retarget_from_shape_keys(target=armature.name, mesh=obj.name, frame_start=1, frame_end=T)
    keyed = {(fc.data_path, fc.array_index): np.array([fc.evaluate(f) for f in frames])
             for owner in (armature.flame.mesh.data.shape_keys, armature) for fc in _fcurves(owner)}
    expr = np.stack([keyed[(f'key_blocks["exp{e:03d}"].value', 0)] for e in range(N_EXPR)], 1)
    quat = np.stack([keyed[('pose.bones["jaw"].rotation_quaternion', i)] for i in range(4)], 1)
    from flame_blender_addon.core.rotations import quaternion_to_matrix
    region = solve.face_region(model)
    face = solve.face_model(model, head.coefficient_values(armature)[0], region)
    got = solve.displacement(face, expr, quaternion_to_matrix(quat))
    want = solve.displacement(face, weights @ truth["combos"], np.tile(np.eye(3), (T, 1, 1)))
    assert np.sqrt(np.mean((got - want) ** 2)) <= 0.05 * np.sqrt(np.mean(want ** 2))


def test_fit_is_stored_and_survives_save_and_reload(fitted, tmp_path):
    armature, obj = (o.name for o in fitted)
    path = tmp_path / "fitted.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    bpy.ops.flame.transfer_rig(target=armature, mesh=obj)
    assert len(bpy.data.objects[obj].data.shape_keys.key_blocks) == 1 + N_EXPR + 36


# ------------------------------------------------------------------------------------------ Live Link
@pytest.fixture
def arkit_character():
    bpy.ops.mesh.primitive_cube_add()
    obj = bpy.context.active_object
    obj.shape_key_add(name="Basis")
    names = ["EyeBlinkLeft", "jawopen", "mouth_smile_left", "browInnerUp"]
    for n in names:
        obj.shape_key_add(name=n)
    return obj, names


def test_livelink_import_keys_the_matching_keys_and_export_writes_the_app_layout(arkit_character, tmp_path):
    obj, names = arkit_character
    T = 90
    weights = np.random.default_rng(0).random((T, 52))
    livelink.write_take(tmp_path / "take.csv", weights, 60.0)
    bpy.ops.flame.import_livelink(filepath=str(tmp_path / "take.csv"), mesh=obj.name, frame_start=10)
    scene = bpy.context.scene
    assert scene.render.fps == 60 and scene.frame_start == 10 and scene.frame_end == 10 + T - 1
    keyed = {fc.data_path: fc for fc in _fcurves(obj.data.shape_keys)}
    for name, column in zip(names, ("EyeBlinkLeft", "JawOpen", "MouthSmileLeft", "BrowInnerUp"), strict=True):
        fc = keyed[f'key_blocks["{name}"].value']
        values = np.array([fc.evaluate(10 + i) for i in range(T)])
        np.testing.assert_allclose(values, weights[:, livelink.ARKIT_NAMES.index(column)], atol=1e-6)
    bpy.ops.flame.export_livelink(filepath=str(tmp_path / "out.csv"), mesh=obj.name, frame_start=10,
                                  frame_end=10 + T - 1)
    text = (tmp_path / "out.csv").read_text().splitlines()
    assert text[0] == ",".join(livelink.HEADER)
    take = livelink.read_take(tmp_path / "out.csv")
    assert take.fps == 60 and take.weights.shape == (T, 52)
    kept = [livelink.ARKIT_NAMES.index(c) for c in ("EyeBlinkLeft", "JawOpen", "MouthSmileLeft", "BrowInnerUp")]
    np.testing.assert_allclose(take.weights[:, kept], weights[:, kept], atol=1e-6)
    others = np.setdiff1d(np.arange(52), kept)
    assert not take.weights[:, others].any() and not take.rotations.any()


# ----------------------------------------------------------------------------------------- bad input
def _state():
    """Names of datablocks plus every value the retarget operators may change."""
    bpy.context.view_layer.update()
    objs = {o.name: (tuple(np.array(o.matrix_world).ravel().round(9)), sorted(o.keys()),
                     sorted(a.name for a in o.data.attributes) if o.type == "MESH" else [],
                     sorted(g.name for g in o.vertex_groups) if o.type == "MESH" else [],
                     sorted(m.name for m in o.modifiers), o.parent.name if o.parent else None)
            for o in bpy.data.objects}
    keys = {k.name: [round(b.value, 9) for b in k.key_blocks] for k in bpy.data.shape_keys}
    return {**scene_state(), "objects_detail": objs, "keys": keys}


def test_bad_input_is_one_line_and_leaves_the_scene_unchanged(truth, tmp_path):
    bpy.ops.flame.add_demo_head(n_shape=20, n_expr=5)
    armature = bpy.context.view_layer.objects.active
    bpy.ops.object.camera_add()
    camera = bpy.context.active_object
    bpy.ops.mesh.primitive_cube_add(size=0.3, location=(2, 0, 0))
    cube = bpy.context.active_object
    obj = _character(truth)
    obj.shape_key_add(name="Basis")
    obj.shape_key_add(name="flat").slider_max = 0.0
    (tmp_path / "short.csv").write_text(",".join(livelink.HEADER) + "\n00:00:00:00.000,61" + ",0" * 61 + "\n")
    row = "\n00:00:00:{:02d}.000,61" + ",0" * 61
    (tmp_path / "missing.csv").write_text(",".join(livelink.HEADER[:-1]) + (row[:-2] * 2).format(0, 1))
    (tmp_path / "extra.csv").write_text(",".join(livelink.HEADER) + ",Extra" + (row + ",0").format(0)
                                        + (row + ",0").format(1))
    (tmp_path / "text.csv").write_text(",".join(livelink.HEADER) + row.format(0) + row.format(1).replace(",0", ",x", 1))
    calls = {
        "is a camera, not a mesh": lambda: bpy.ops.flame.fit_to_mesh(target=armature.name, mesh=camera.name),
        "no fit yet": lambda: bpy.ops.flame.transfer_rig(target=armature.name, mesh=obj.name),
        "did not converge|cannot find a head": lambda: bpy.ops.flame.fit_to_mesh(
            target=armature.name, mesh=cube.name, n_shape=20),
        "fit did not converge: RMS": lambda: bpy.ops.flame.fit_to_mesh(target=armature.name, mesh=obj.name,
                                                                       n_shape=20, max_rms=1e-4),
        "at least 2 rows": lambda: bpy.ops.flame.import_livelink(filepath=str(tmp_path / "short.csv"),
                                                                 mesh=obj.name),
        "missing columns: RightEyeRoll": lambda: bpy.ops.flame.import_livelink(
            filepath=str(tmp_path / "missing.csv"), mesh=obj.name),
        "unexpected columns: Extra": lambda: bpy.ops.flame.import_livelink(filepath=str(tmp_path / "extra.csv"),
                                                                          mesh=obj.name),
        "'x' is not a number": lambda: bpy.ops.flame.import_livelink(filepath=str(tmp_path / "text.csv"),
                                                                     mesh=obj.name),
    }
    before = _state()
    for message, call in calls.items():
        with pytest.raises(RuntimeError, match=message):
            call()
        assert _state() == before, message
    bpy.ops.flame.fit_to_mesh(target=armature.name, mesh=obj.name, n_shape=20)
    before = _state()
    with pytest.raises(RuntimeError, match="'flat' has zero range"):
        bpy.ops.flame.retarget_to_shape_keys(target=armature.name, mesh=obj.name, frame_start=1, frame_end=5)
    assert _state() == before


def _character_detail(obj) -> dict:
    """Everything of the character (and its mesh) a retarget changes, in full."""
    bpy.context.view_layer.update()
    mesh, keys = obj.data, obj.data.shape_keys

    def floats(collection, attribute, width):
        values = np.empty(len(collection) * width, dtype=np.float32)
        collection.foreach_get(attribute, values)
        return values.tobytes()

    drivers = keys.animation_data.drivers if keys and keys.animation_data else ()
    return {"names": (obj.name, mesh.name, keys.name if keys else None), "vertices": floats(mesh.vertices, "co", 3),
            "keys": [(kb.name, kb.value, kb.slider_min, kb.slider_max, floats(kb.data, "co", 3))
                     for kb in (keys.key_blocks if keys else ())],
            "drivers": [(d.data_path, d.driver.expression, [v.targets[0].data_path for v in d.driver.variables])
                        for d in drivers],
            "actions": [o.animation_data.action.name if o and o.animation_data and o.animation_data.action else None
                        for o in (obj, keys)],
            "props": {k: v if isinstance(v, (int, float, str)) else v.to_list() for k, v in obj.items()},
            "attributes": sorted(a.name for a in mesh.attributes), "groups": [g.name for g in obj.vertex_groups],
            "modifiers": [m.name for m in obj.modifiers], "parent": obj.parent,
            "matrix": np.array(obj.matrix_world).tobytes(), "rotation_mode": obj.rotation_mode}


def _failing_at_the_end(monkeypatch):
    """Make the retarget operators fail after all their work, at their last progress report."""
    from flame_blender_addon.blender import progress, retarget_operators

    @contextlib.contextmanager
    def failing(context, label):
        with progress.progress(context, label) as report:
            def fail_when_done(fraction, message=""):
                if fraction >= 1.0:
                    raise RuntimeError("forced failure")
                report(fraction, message)
            yield fail_when_done

    monkeypatch.setattr(retarget_operators, "progress", failing)


def test_a_retarget_failing_midway_leaves_the_character_as_it_was(fitted, truth, monkeypatch):
    """Transfer Rig adds vertex groups, a modifier, a parent, shape keys and drivers, FLAME -> character keys
    actions and a rotation mode, before the forced failure: all of it is undone, the character's mesh included."""
    armature, obj = fitted
    _add_own_keys(truth, armature, obj)
    obj["note"] = [1, 2, 3]
    write_channels(obj.data.shape_keys, "own", np.array([1.0, 2.0]), [('key_blocks["jawOpen"].value', 0, np.ones(2))])
    head_joints = np.array([b.head_local for b in armature.data.bones])
    _failing_at_the_end(monkeypatch)
    for call in (lambda: bpy.ops.flame.transfer_rig(target=armature.name, mesh=obj.name),
                 lambda: bpy.ops.flame.retarget_to_shape_keys(target=armature.name, mesh=obj.name, frame_start=1,
                                                             frame_end=3),
                 lambda: bpy.ops.flame.retarget_from_shape_keys(target=armature.name, mesh=obj.name, frame_start=1,
                                                               frame_end=3)):
        before, detail = _state(), _character_detail(obj)
        with pytest.raises(RuntimeError, match="forced failure"):
            call()
        assert _state() == before and _character_detail(obj) == detail
        np.testing.assert_array_equal([b.head_local for b in armature.data.bones], head_joints)
    monkeypatch.undo()
    bpy.ops.flame.transfer_rig(target=armature.name, mesh=obj.name)  # the same call succeeds and changes it
    assert _character_detail(obj)["drivers"] and _state()["meshes"] == before["meshes"]


def test_operators_need_no_ui_and_report_errors_on_one_line():
    with pytest.raises(RuntimeError) as err:
        bpy.ops.flame.import_livelink(filepath=str(Path("/nonexistent/take.csv")), mesh="nothing")
    assert "no object named 'nothing'" in str(err.value)
    assert len(str(err.value).strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- CLI
def _cli(*args):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, str(root / "scripts" / "flame_cli.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=root)


def test_cli_retargets_a_sequence_onto_an_obj_character(truth, tmp_path):
    from flame_blender_addon.core.formats.npz import write_sequence_npz
    from flame_blender_addon.demo.performance import demo_performance

    points, polygons = truth["local"] @ np.linalg.inv(demo_head_axes()).T, truth["polygons"]  # OBJ: Y up
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in points]
    lines += ["f " + " ".join(str(i + 1) for i in p) for p in polygons]
    (tmp_path / "character.obj").write_text("\n".join(lines) + "\n")
    write_sequence_npz(tmp_path / "take.npz", demo_performance(n_shape=20, n_expr=20).take(slice(0, 3)))
    result = _cli("retarget", tmp_path / "character.obj", tmp_path / "take.npz", "--output", tmp_path / "out",
                  "--n-shape", "20", "--n-expr", "20")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["character.blend", "character.fbx"]
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "out" / "character.blend"), load_ui=False)
    obj = bpy.data.objects["character"]
    assert obj[retarget.PROP_RMS_M] < 3e-3 and bpy.context.scene.frame_end == 3
    keys = obj.data.shape_keys
    assert len(keys.key_blocks) == 1 + 20 + 36 and len(keys.animation_data.drivers) == 20 + 36


def test_cli_demo_includes_the_stylised_character(tmp_path):
    result = _cli("demo", "--output", tmp_path / "demo", "--character", "--no-render", "--formats", "--frames", "3",
                  "--n-shape", "20", "--n-expr", "20")
    assert result.returncode == 0, result.stderr
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "demo" / "demo.blend"), load_ui=False)
    obj = bpy.data.objects["stylised_character"]
    rig = bpy.data.objects[obj[retarget.PROP_HEAD]]
    assert obj.parent == rig and rig.animation_data.action is not None  # the built-in performance drives it
    assert len(obj.data.vertices) != 5023 and max(p.loop_total for p in obj.data.polygons) > 4
    bpy.context.scene.frame_set(2)
    moved = evaluated_vertices(obj)
    bpy.context.scene.frame_set(1)
    assert np.abs(moved - evaluated_vertices(obj)).max() > 0.05  # centimetres
