"""Helpers for Blender-tier tests (imported by name; tests/ has no packages)."""

import ast
import inspect
import types

import bpy
import numpy as np


def evaluated_vertices(obj) -> np.ndarray:
    """The depsgraph-evaluated mesh of ``obj`` in its local coordinates: (V, 3) float64."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(3 * len(mesh.vertices), dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3).astype(np.float64)


def scene_state() -> dict:
    """Names of every datablock that an import could create, mode and active object, and the scene
    settings an import sets (frame rate, range and current frame, render size, camera)."""
    names = {c: sorted(i.name for i in getattr(bpy.data, c)) for c in (
        "objects", "meshes", "armatures", "shape_keys", "actions", "cameras", "images", "collections",
        "materials", "worlds", "lights", "node_groups")}
    active = bpy.context.view_layer.objects.active
    scene, render = bpy.context.scene, bpy.context.scene.render
    settings = (render.fps, render.fps_base, render.resolution_x, render.resolution_y, render.resolution_percentage,
                render.pixel_aspect_x, render.pixel_aspect_y, scene.frame_start, scene.frame_end, scene.frame_current,
                scene.camera.name if scene.camera else None)
    return {**names, "active": active.name if active else None, "mode": bpy.context.mode, "scene": settings}



# --------------------------------------------------------------------------------------------------
# The UI in background mode. Blender never draws panels, shows dialogs or calls ``invoke`` / ``modal``
# there (``'INVOKE_DEFAULT'`` falls back to ``execute`` without a window event). These helpers call
# the add-on's own draw, invoke and modal code directly, against real Blender objects.

UI_ERRORS = ("property not found", "unknown operator", "not found", "unknown menutype")


def ui_layout():
    """A real ``bpy.types.UILayout``: the layout of a popup menu that is begun and never shown.

    Showing it needs a window's event state, which background mode lacks (ending the popup
    segfaults there), so it stays open: a few kilobytes per call stay allocated until exit."""
    popup = bpy.context.window_manager.popmenu_begin__internal("", icon="NONE")
    return popup.layout.column()  # introspected alone, without the popup's title


def draw_errors(capfd) -> list[str]:
    """What Blender printed about the last draws: a missing property, operator, menu or panel
    is printed (``rna_uiItemR: property not found: ...``), never raised."""
    out, err = capfd.readouterr()
    return [line for line in (out + err).splitlines() if any(e in line for e in UI_ERRORS)]


def layout_items(layout) -> list[dict]:
    """Every button of a layout, depth first (``UILayout.introspect``): dicts with ``draw_string``,
    ``rna`` ('Struct.prop[index]') or ``operator`` ('bpy.ops.flame.x(...)')."""
    def walk(items):
        for item in items:
            if "items" in item:
                yield from walk(item["items"])
            else:
                yield item
    return list(walk(layout.introspect()))


def operator_calls(layout) -> list[tuple[str, dict]]:
    """The operator buttons of a layout: (idname, the properties it sets), e.g. ('flame.help', {'topic': 'pose'})."""
    calls = []
    for item in layout_items(layout):
        if "operator" in item:
            call = ast.parse(item["operator"], mode="eval").body
            calls.append((ast.unparse(call.func).removeprefix("bpy.ops."),
                          {k.arg: ast.literal_eval(k.value) for k in call.keywords}))
    return calls


def operators_in(layout) -> list[str]:
    """Operator idnames of a layout's buttons, e.g. ['flame.import_model', ...]."""
    return [idname for idname, _ in operator_calls(layout)]


class Event:
    """An event as ``invoke`` and ``modal`` read it."""

    def __init__(self, type: str = "NONE", value: str = "PRESS"):
        self.type, self.value = type, value


class OperatorDouble:
    """Stands in for an operator instance so that tests can call ``invoke``, ``modal``, ``draw`` and
    ``check``: its properties are the operator's real RNA properties (reset to their defaults), its
    methods the class's own, ``layout`` a real layout and ``report`` records what was reported."""

    def __init__(self, cls, **values):
        props = bpy.context.window_manager.operator_properties_last(cls.bl_idname)
        for prop in props.bl_rna.properties:
            if prop.identifier != "rna_type":
                props.property_unset(prop.identifier)
        for name, value in values.items():
            setattr(props, name, value)
        object.__setattr__(self, "_cls", cls)
        object.__setattr__(self, "properties", props)
        object.__setattr__(self, "layout", None)
        object.__setattr__(self, "reports", [])

    def _is_property(self, name: str) -> bool:
        return name in self.properties.bl_rna.properties

    def __getattr__(self, name):
        if self._is_property(name):
            return getattr(self.properties, name)
        static = inspect.getattr_static(self._cls, name)
        return types.MethodType(static, self) if inspect.isfunction(static) else getattr(self._cls, name)

    def __setattr__(self, name, value):
        if self._is_property(name):
            setattr(self.properties, name, value)
        else:
            object.__setattr__(self, name, value)

    def report(self, kind, message):
        self.reports.append((next(iter(kind)), message))

    def draw_into(self, layout, context=None):
        """Run the operator's ``draw`` into ``layout``."""
        object.__setattr__(self, "layout", layout)
        self._cls.draw(self, context or bpy.context)
        return layout


class ContextDouble:
    """``bpy.context`` with some members replaced, e.g. a ``MagicMock`` window manager that records
    ``fileselect_add``, ``modal_handler_add`` and the progress bar."""

    def __init__(self, **members):
        self.__dict__.update(members)

    def __getattr__(self, name):
        return getattr(bpy.context, name)


def write_take(path, frames: int):
    """A small flame_sequence.npz (10 identity, 10 expression components, a camera) of ``frames``
    frames, written by the stand-in tracker's own writer."""
    from fake_tracker import fake_sequence, write_npz

    write_npz(str(path), fake_sequence(frames))
    return path


def fbx_contents(path) -> tuple[float, dict[str, dict[bytes, list]], np.ndarray]:
    """The file's UnitScaleFactor, each Model node's properties and the mesh's vertices (V, 3), read
    with Blender's FBX parser."""
    from io_scene_fbx import parse_fbx

    root, _ = parse_fbx.parse(str(path))

    def properties(elem) -> dict[bytes, list]:
        p70 = next((e for e in elem.elems if e.id == b"Properties70"), None)
        return {p.props[0]: p.props[4:] for p in p70.elems} if p70 is not None else {}

    settings = properties(next(e for e in root.elems if e.id == b"GlobalSettings"))
    objects = next(e for e in root.elems if e.id == b"Objects")
    models = {e.props[1].split(b"\x00")[0].decode(): properties(e) for e in objects.elems if e.id == b"Model"}
    geometry = next(e for e in objects.elems if e.id == b"Geometry" and e.props[2] == b"Mesh")
    vertices = np.array(next(e for e in geometry.elems if e.id == b"Vertices").props[0]).reshape(-1, 3)
    return settings[b"UnitScaleFactor"][0], models, vertices
