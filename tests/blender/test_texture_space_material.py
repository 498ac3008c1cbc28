"""Texture spaces on a head: the material, keyed coefficients driving the image, SH shading rendered
by Cycles against core/sh_lighting, rollback, and metrical-tracker's tex/sh on import."""

import bpy
import numpy as np
import pytest
from texture_files import write_bfm_albedo, write_flame_texture

from flame_blender_addon.core import sh_lighting
from flame_blender_addon.core.formats.texture_space import read_texture_space
from flame_blender_addon.demo import surface as demo_surface


def _pixels(image) -> np.ndarray:
    out = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(out)
    return out.reshape(image.size[1], image.size[0], 4)


def _head_with_space(tmp_path, **kwargs):
    bpy.ops.flame.add_demo_head()
    armature = bpy.context.view_layer.objects.active
    path = tmp_path / "FLAME_texture.npz"
    write_flame_texture(path, np.random.default_rng(0), uvs=demo_surface.uv_layout(), **kwargs)
    assert bpy.ops.flame.import_texture_space(filepath=str(path)) == {"FINISHED"}
    return armature, path


def test_material_is_wired_to_uvmap_and_keyed_coefficients_drive_the_image(tmp_path):
    armature, path = _head_with_space(tmp_path)
    mesh = armature.flame.mesh.data
    material = mesh.materials[0]
    nodes = material.node_tree.nodes
    uv_node = next(n for n in nodes if n.type == "UVMAP")
    tex = next(n for n in nodes if n.type == "TEX_IMAGE")
    assert uv_node.uv_map == "UVMap" and tex.inputs["Vector"].links[0].from_node == uv_node
    vt, ft = demo_surface.uv_layout()
    uv = np.empty(2 * len(mesh.loops), dtype=np.float32)
    mesh.uv_layers["UVMap"].data.foreach_get("uv", uv)
    assert np.abs(uv.reshape(-1, 3, 2) - vt[ft]).max() < 1e-6

    space = read_texture_space(path)
    assert [material[f"tex{k:03d}"] for k in range(6)] == [0.0] * 6 and "tex006" not in material
    rgb = _pixels(tex.image)[::-1, :, :3]  # Blender's rows go up
    assert np.array_equal(rgb, space.albedo(np.zeros(6))) and np.allclose(rgb[0, 0], [0, 0, 1])

    scene = bpy.context.scene
    for frame, values in ((1, (0.0, 0.0)), (10, (2.5, -1.5))):
        material["tex000"], material["tex003"] = values
        material.keyframe_insert('["tex000"]', frame=frame)
        material.keyframe_insert('["tex003"]', frame=frame)
    for frame, c0, c3 in ((10, 2.5, -1.5), (1, 0.0, 0.0), (5, None, None)):
        scene.frame_set(frame)
        coeffs = np.array([material[f"tex{k:03d}"] for k in range(6)], dtype=np.float32)
        if c0 is not None:
            assert (coeffs[0], coeffs[3]) == (c0, c3)
        else:
            assert 0 < coeffs[0] < 2.5  # interpolated between the keys
        expected = space.albedo(coeffs)
        assert np.abs(_pixels(tex.image)[::-1, :, :3] - expected).max() < 1e-6, frame
    assert np.abs(expected - space.albedo(np.zeros(6))).max() > 1e-3  # the coefficients did change the image


def test_after_reopening_the_blend_the_space_is_read_again_from_its_path(tmp_path):
    from flame_blender_addon.blender import texture_space

    _head_with_space(tmp_path)
    material = bpy.data.materials["flame_texture"]
    material["tex001"] = 1.5
    material.update_tag()  # as the UI does when a property is edited
    bpy.context.view_layer.update()  # the depsgraph handler follows an unkeyed change too
    space = read_texture_space(tmp_path / "FLAME_texture.npz")
    image = texture_space.texture_image(material)
    assert np.abs(_pixels(image)[::-1, :, :3] - space.albedo([0, 1.5])).max() < 1e-6
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "look.blend"))
    texture_space._spaces.clear()  # a new session: nothing cached
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "look.blend"), load_ui=False)
    material = bpy.data.materials["flame_texture"]
    image = texture_space.texture_image(material)
    assert image.packed_file is not None and material["flame_texture_space"] == str(tmp_path / "FLAME_texture.npz")
    assert np.abs(_pixels(image)[::-1, :, :3] - space.albedo(np.zeros(6))).max() < 1e-3  # as packed at import
    material["tex002"] = -2.0
    material.update_tag()
    bpy.context.view_layer.update()
    assert np.abs(_pixels(image)[::-1, :, :3] - space.albedo([0, 1.5, -2.0])).max() < 1e-6
    assert texture_space._spaces  # read again from the stored path


def test_texture_space_without_uvs_needs_the_heads_uvmap_and_bad_files_change_nothing(tmp_path):
    from bl_helpers import scene_state

    bpy.ops.flame.add_demo_head()
    write_bfm_albedo(tmp_path / "FLAME_albedo_from_BFM.npz", np.random.default_rng(1))
    np.savez(tmp_path / "bad.npz", mean=np.zeros((4, 4, 3)))
    vt, ft = demo_surface.uv_layout()
    write_flame_texture(tmp_path / "wrong_uvs.npz", np.random.default_rng(2), uvs=(vt, ft[:100]))
    before = scene_state()
    for name, message in (("FLAME_albedo_from_BFM.npz", "has no UVMap and the texture space stores no 'vt'/'ft'"),
                          ("bad.npz", "not a texture space"),
                          ("wrong_uvs.npz", "UVs for 100 triangles do not fit the head mesh's"),
                          ("missing.npz", "file not found")):
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.flame.import_texture_space(filepath=str(tmp_path / name))
        assert scene_state() == before, name
    assert not bpy.context.view_layer.objects.active.flame.mesh.data.uv_layers


def _quad(name, centre, normal, material):
    """A flat square of side 0.3 at ``centre`` facing ``normal`` (world = Blender camera axes), with a UVMap."""
    n = np.asarray(normal, dtype=np.float64)
    u = np.cross(n, [0.0, 1.0, 0.0] if abs(n[1]) < 0.9 else [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    corners = [tuple(centre + 0.15 * (a * u + b * v)) for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(corners, [], [(0, 1, 2, 3)])
    mesh.uv_layers.new(name="UVMap")
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


@pytest.mark.parametrize("keyed", [False, True])
def test_sh_node_group_renders_core_shading(tmp_path, keyed):
    """Cycles renders emissive quads of known normals through an orthographic camera; each quad's
    centre pixel must be the sRGB-decoded albedo x core/sh_lighting shading of its normal. Keyed:
    the node holds other lighting and frame 1 is keyed to another, frame 2 (rendered) to ``sh``."""
    from flame_blender_addon.blender import appearance

    rng = np.random.default_rng(4)
    sh = sh_lighting.from_light(np.array([0.5, -0.4, -0.77]), np.array([1.1, 0.9, 0.8]), np.array([0.3, 0.3, 0.35]))
    sh += rng.normal(0, 0.05, sh.shape)  # band 2 too
    albedo = np.array([0.7, 0.5, 0.3], dtype=np.float32)
    image = appearance.albedo_image("flat", np.broadcast_to(albedo, (4, 4, 3)).copy())
    material = appearance.albedo_material("look", image, appearance.UNLIT if keyed else sh, "CAMERA")
    if keyed:
        appearance.key_sh(material, np.array([1.0, 2.0]), np.stack([0.5 * sh, sh]))
    normals_cv = np.array([[0, 0, -1], [0.5, 0.2, -0.84], [-0.6, 0.3, -0.74], [0.2, -0.7, -0.68], [-0.3, -0.4, -0.87]])
    normals_cv /= np.linalg.norm(normals_cv, axis=1, keepdims=True)
    scene = bpy.context.scene
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.data.type, cam.data.ortho_scale = "ORTHO", 2.5
    scene.collection.objects.link(cam)
    scene.camera = cam  # at the origin looking down -Z: world axes = Blender camera axes
    xs = np.linspace(-1.0, 1.0, len(normals_cv))
    for i, (x, n) in enumerate(zip(xs, normals_cv, strict=True)):
        _quad(f"q{i}", np.array([x, 0.0, -3.0]), n * [1, -1, -1], material)  # OpenCV -> Blender camera axes
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.device, scene.cycles.use_denoising = 1, "CPU", False
    render.filter_size = 0.01  # one ray through each pixel centre
    render.resolution_x, render.resolution_y, render.resolution_percentage = 50, 10, 100
    render.image_settings.file_format, render.image_settings.color_depth = "OPEN_EXR", "32"
    render.filepath = str(tmp_path / "sh.exr")
    scene.frame_set(2)
    bpy.ops.render.render(write_still=True)
    pixels = _pixels(bpy.data.images.load(str(tmp_path / "sh.exr")))
    shading = sh_lighting.shading(sh, normals_cv)
    value = albedo * shading
    expected = np.where(value <= 0.04045, value / 12.92, ((value + 0.055) / 1.055) ** 2.4)
    columns = np.round((xs / 2.5 + 0.5) * 50 - 0.5).astype(int)
    got = pixels[5, columns, :3]  # row 5 of 10, counted from the bottom: just above the centre line
    assert np.abs(got - expected).max() < 1e-5, (got, expected)
    assert np.ptp(expected[:, 0]) > 0.03  # the normals do light differently


def test_metrical_frames_with_tex_and_sh_import_the_material(tmp_path):
    from tracker_files import metrical_frame, write_metrical_output

    bpy.ops.flame.add_demo_head()
    armature = bpy.context.view_layer.objects.active
    rng = np.random.default_rng(5)
    tex, sh = rng.normal(0, 0.5, (1, 4)).astype(np.float32), rng.normal(0, 0.3, (1, 9, 3)).astype(np.float32)
    frames = {}
    for i in range(3):
        frame = metrical_frame(rng, i, n_shape=armature.flame.n_shape, n_expr=armature.flame.n_expr)
        frame["flame"].update(tex=tex, sh=sh)
        frames[i] = frame
    root = write_metrical_output(tmp_path / "out", frames)
    space_path = tmp_path / "FLAME_texture.npz"
    write_flame_texture(space_path, rng, uvs=demo_surface.uv_layout())
    assert bpy.ops.flame.import_sequence(filepath=str(root), texture_space_filepath=str(space_path)) == {"FINISHED"}
    material = armature.flame.mesh.data.materials[0]
    assert np.allclose([material[f"tex{k:03d}"] for k in range(4)], tex[0]) and material["tex004"] == 0.0
    image = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE").image
    expected = read_texture_space(space_path).albedo(np.r_[tex[0], 0.0, 0.0])
    assert np.abs(_pixels(image)[::-1, :, :3] - expected).max() < 1e-6
    group = next(n for n in material.node_tree.nodes if n.type == "GROUP")
    stored = np.array([tuple(group.inputs[f"SH {k}"].default_value) for k in range(9)])
    assert np.allclose(stored, sh_lighting.from_metrical(sh[0]), atol=1e-5)
    transform = next(n for n in material.node_tree.nodes if n.type == "VECT_TRANSFORM")
    assert transform.convert_to == "OBJECT"  # metrical-tracker's SH lives in FLAME space


def test_metrical_tex_without_a_texture_space_keeps_the_coefficients(tmp_path):
    from tracker_files import metrical_frame, write_metrical_output

    bpy.ops.flame.add_demo_head()
    armature = bpy.context.view_layer.objects.active
    rng = np.random.default_rng(6)
    frame = metrical_frame(rng, 0, n_shape=armature.flame.n_shape, n_expr=armature.flame.n_expr)
    frame["flame"]["tex"] = np.full((1, 3), 0.25, np.float32)
    root = write_metrical_output(tmp_path / "out", {0: frame})
    assert bpy.ops.flame.import_sequence(filepath=str(root)) == {"FINISHED"}
    material = armature.flame.mesh.data.materials[0]
    assert [material[f"tex{k:03d}"] for k in range(3)] == [0.25] * 3 and material["flame_texture_space"] == ""
