"""The UI itself: panels, menus, preferences and dialogs drawn into a real ``UILayout``; tooltips;
every greyed-out entry says why; the "?" how-tos."""

import shutil

import bpy
import pytest
from bl_helpers import OperatorDouble, draw_errors, layout_items, operator_calls, operators_in, ui_layout, write_take

from flame_blender_addon.blender import help, menus, panel, preferences, registration, tracker_check
from flame_blender_addon.blender.operator_base import NO_HEAD


class Drawn:
    """What a Panel's or Menu's ``draw`` sees as ``self``: its class's attributes and a layout."""

    def __init__(self, cls, layout):
        self.cls, self.layout = cls, layout

    def __getattr__(self, name):
        return getattr(self.cls, name)


def draw(cls, method="draw"):
    """Run a Panel's or Menu's draw method into a fresh layout; returns the layout."""
    layout = ui_layout()
    getattr(cls, method)(Drawn(cls, layout), bpy.context)
    return layout


def draw_function(func):
    layout = ui_layout()
    func(Drawn(object, layout), bpy.context)
    return layout


@pytest.fixture
def head_with_take(small_model_file, tmp_path):
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "smile.npz", 4)))
    return armature


def flame_operators():
    return [getattr(bpy.types, name) for name in dir(bpy.types) if name.startswith("FLAME_OT_")]


def test_panels_draw_without_a_head(capfd):
    layout = draw(panel.VIEW3D_PT_flame)
    assert operators_in(layout) == ["flame.track_video"]
    assert [i["draw_string"] for i in layout_items(layout)][-1] == "Select a FLAME head to edit it"
    assert not any(cls.poll(bpy.context) for cls in panel.PANELS[1:])  # the sub-panels need a head
    assert draw_errors(capfd) == []


def test_every_panel_draws_for_a_head_with_takes(head_with_take, capfd):
    drawn = {cls.__name__: draw(cls) for cls in panel.PANELS}
    assert operators_in(drawn["VIEW3D_PT_flame"]) == ["flame.track_video", "flame.import_assets",
                                                      "flame.delete_head"]
    animation = operators_in(drawn["VIEW3D_PT_flame_animation"])
    assert animation == ["flame.import_sequence", "flame.export_sequence", "flame.switch_take",
                         "flame.clear_animation"]
    pose = [i.get("rna", "") for i in layout_items(drawn["VIEW3D_PT_flame_pose"])]
    for name in ("use_correctives", "neck_rotation", "jaw_rotation", "eye_l_rotation", "eye_r_rotation"):
        assert any(r.startswith(f"FlameHeadProperties.{name}") for r in pose), name
    sliders = [i["rna"] for i in layout_items(drawn["VIEW3D_PT_flame_expression"]) if "ShapeKey" in i.get("rna", "")]
    assert len(sliders) == 10
    for cls in panel.PANELS:  # each header has its "?"
        assert operator_calls(draw(cls, "draw_header_preset")) == [("flame.help", {"topic": cls.topic})]
        assert cls.topic in help.TOPICS
    assert draw_errors(capfd) == []


def test_take_list_marks_the_active_take(head_with_take, tmp_path):
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "frown.npz", 3)))
    items = [i for i in layout_items(draw(panel.VIEW3D_PT_flame_animation)) if "switch_take" in i.get("operator", "")]
    assert [i["draw_string"] for i in items] == ["smile", "frown"]
    assert "frames 1-3" in [i["draw_string"] for i in layout_items(draw(panel.VIEW3D_PT_flame_animation))][-2]


def test_model_picker_lists_the_models_of_the_model_folder(addon_preferences, tmp_path, capfd):
    layout = draw(panel.FLAME_MT_build_head)
    assert "No Model folder set (or no FLAME files in it)" in [i["draw_string"] for i in layout_items(layout)]
    for name in ("FLAME2020/generic_model.pkl", "FLAME2020/female_model.pkl", "flame2023.pkl", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    addon_preferences.model_folder = str(tmp_path)
    items = layout_items(draw(panel.FLAME_MT_build_head))
    labels = [i["draw_string"] for i in items if "import_model(filepath=" in i.get("operator", "")]
    assert labels == ["FLAME2020: Neutral", "FLAME2020: Female", "FLAME 2023"]
    paths = [props["filepath"] for idname, props in operator_calls(draw(panel.FLAME_MT_build_head))
             if idname == "flame.import_model" and props]
    assert paths[:3] == [str(tmp_path / n) for n in ("FLAME2020/generic_model.pkl", "FLAME2020/female_model.pkl",
                                                    "flame2023.pkl")]
    assert operators_in(draw(panel.FLAME_MT_build_head))[-2:] == ["flame.add_demo_head", "flame.import_model"]
    assert draw_errors(capfd) == []


def test_preferences_draw_the_model_folder_and_the_tracker_check(addon_preferences, tmp_path, capfd):
    (tmp_path / "generic_model.pkl").write_bytes(b"")
    addon_preferences.model_folder = str(tmp_path)
    addon_preferences.python = str(tmp_path / "missing" / "python")

    class Drawing(preferences.FlamePreferences):  # the real preferences, drawn into our layout
        pass

    prefs = Drawing(addon_preferences)
    prefs.layout = ui_layout()
    prefs.draw(bpy.context)
    items = layout_items(prefs.layout)
    assert "Neutral: generic_model.pkl" in [i["draw_string"] for i in items]
    assert "flame.check_tracker" in operators_in(prefs.layout)
    with pytest.raises(RuntimeError, match="no such file. Fix: python3.11 -m venv"):
        bpy.ops.flame.check_tracker()
    prefs.layout = ui_layout()
    prefs.draw(bpy.context)
    labels = [i["draw_string"] for i in layout_items(prefs.layout)]
    assert f"{tmp_path / 'missing' / 'python'}: no such file" in labels and "Fix:" in labels
    assert draw_errors(capfd) == []
    tracker_check.LAST.clear()


def test_menus_have_one_flame_export_submenu_and_registered_operators(capfd):
    ours = {func for _, func in registration.MENUS}
    export_entries = [f for f in bpy.types.TOPBAR_MT_file_export._dyn_ui_initialize() if f in ours]
    assert export_entries == [menus.menu_export]
    submenu = draw_function(menus.menu_export)
    assert [i["draw_string"] for i in layout_items(submenu)] == ["FLAME"]
    exports = draw(menus.TOPBAR_MT_file_export_flame)
    assert operators_in(exports) == [idname for idname, _, _ in menus.EXPORTS]
    in_menus = operators_in(exports) + [op for _, f in registration.MENUS for op in operators_in(draw_function(f))]
    in_menus += operators_in(draw(panel.FLAME_MT_build_head))
    for idname in in_menus:
        module, name = idname.split(".")
        assert getattr(getattr(bpy.ops, module), name).get_rna_type(), idname
    assert {"flame.render_preview", "flame.export_closed_mesh", "flame.import_sequence", "flame.import_assets"} \
        <= set(in_menus)
    assert draw_errors(capfd) == []


def test_greyed_out_entries_say_why(small_model_file):
    """Every flame operator of a menu or the panel: where it cannot run, its poll message says what to do."""
    disabled = {}
    for cls in flame_operators():
        op = getattr(bpy.ops.flame, cls.bl_idname.split(".")[1])
        if not op.poll():
            with pytest.raises(RuntimeError) as err:
                op()
            message = str(err.value)
            assert "context is incorrect" not in message, cls.bl_idname
            disabled[cls.bl_idname] = message
    assert all(NO_HEAD in disabled[f"flame.{name}"] for name in (
        "update_joints", "random_shape", "reset_pose", "export_fbx", "export_closed_mesh", "delete_head",
        "export_sequence", "clear_animation", "switch_take", "import_assets"))
    assert "no camera" in disabled["flame.render_preview"]
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=2, n_expr=2)
    with pytest.raises(RuntimeError, match="no takes yet: import a sequence"):
        bpy.ops.flame.switch_take(take="x")
    with pytest.raises(RuntimeError, match="no animation to clear"):
        bpy.ops.flame.clear_animation()


def test_tooltips_are_single_lines():
    for cls in flame_operators():
        rna = getattr(bpy.ops.flame, cls.bl_idname.split(".")[1]).get_rna_type()
        assert rna.description and "\n" not in rna.description, cls.bl_idname
        for prop in rna.properties:
            assert "\n" not in prop.description, f"{cls.bl_idname}.{prop.identifier}"
    for cls in registration.CLASSES:
        for prop in getattr(cls, "bl_rna", None).properties if hasattr(cls, "bl_rna") else ():
            assert "\n" not in prop.description, f"{cls.__name__}.{prop.identifier}"


@pytest.mark.parametrize(("idname", "first_section"), [
    ("flame.import_model", "Components"), ("flame.import_sequence", "Head"), ("flame.export_sequence", "Head"),
    ("flame.track_video", "Model"), ("flame.export_fbx", "Head"), ("flame.export_closed_mesh", "Head"),
    ("flame.export_mesh_frames", "Head"), ("flame.render_preview", "Render"), ("flame.import_assets", "Head")])
def test_dialogs_are_drawn_by_hand(idname, first_section, head_with_take, capfd):
    cls = getattr(bpy.types, idname.replace("flame.", "FLAME_OT_"))
    layout = OperatorDouble(cls).draw_into(ui_layout())
    assert labels_of(layout)[0] == first_section
    drawn = props_of(layout)
    assert "filepath" not in drawn and "filter_glob" not in drawn
    if "target" in cls.bl_rna.properties:
        assert "target" in drawn
    assert draw_errors(capfd) == []


def labels_of(layout) -> list[str]:
    """The texts of a layout that are not properties (section titles, labels, operator buttons)."""
    return [i["draw_string"] for i in layout_items(layout) if i["draw_string"] and "rna" not in i]


def props_of(layout) -> set[str]:
    """The properties a layout draws, by identifier."""
    return {i["rna"].split(".")[1].split("[")[0] for i in layout_items(layout) if "rna" in i}


def test_sequence_dialog_sections_follow_the_choice(head_with_take, capfd):
    double = OperatorDouble(bpy.types.FLAME_OT_import_sequence)
    layout = double.draw_into(ui_layout())
    titles = labels_of(layout)
    assert titles[0] == "Head" and titles.index("Timing") < titles.index("Camera")
    assert {"target", "keep_identity", "take_name", "model_choice"} <= props_of(layout)
    assert "n_shape" not in props_of(layout)
    double.model_choice = "DEMO"
    layout = double.draw_into(ui_layout())
    assert {"n_shape", "n_expr"} <= props_of(layout) and "target" not in props_of(layout)
    assert draw_errors(capfd) == []


def test_help_topics_pop_up_and_run_headless(capfd):
    for topic, (title, lines) in help.TOPICS.items():
        assert 2 <= len(lines) <= 5 and all(len(line) <= 100 for line in lines), topic
        double = OperatorDouble(help.FLAME_OT_help, topic=topic)
        menu = Drawn(object, ui_layout())
        double.draw_popup(menu, bpy.context)
        assert [i["draw_string"] for i in layout_items(menu.layout)] == list(lines)
        assert double.execute(bpy.context) == {"FINISHED"}  # headless: the how-to as a report
        assert double.reports == [("INFO", f"{title}: " + " ".join(lines))]
    with pytest.raises(RuntimeError, match="no help about 'nope'"):
        bpy.ops.flame.help(topic="nope")
    assert draw_errors(capfd) == []


@pytest.mark.parametrize("path, shown", [
    ("FLAME2020/generic_model.pkl", ["FLAME 2020, 3 identity, 3 expression",
                                     "Licence: MPI FLAME licence (non-commercial)"]),
    ("flame2023_Open.pkl", ["FLAME 2023 Open, 3 identity, 3 expression", "Licence: CC-BY-4.0"]),
])
def test_head_panel_shows_the_edition_and_its_licence(small_model_file, tmp_path, path, shown, capfd):
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(small_model_file, tmp_path / path)
    bpy.ops.flame.import_model(filepath=str(tmp_path / path), n_shape=3, n_expr=3)
    labels = [i["draw_string"] for i in layout_items(draw(panel.VIEW3D_PT_flame))]
    start = labels.index(shown[0])
    assert labels[start:start + 2] == shown
    assert draw_errors(capfd) == []
