"""In-panel help: a short how-to per panel section, shown by the "?" buttons (no web links)."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..core.errors import FlameError

TOPICS = {
    "head": ("FLAME Head", (
        "Build a head: File > Import > FLAME Model, or pick a model from the Model folder preference.",
        "No FLAME file yet? Add > FLAME Demo Head gives a head with the same layout.",
        "Get FLAME at flame.is.tue.mpg.de: 2017-2023 are non-commercial; FLAME 2023 Open is CC-BY-4.0.",
        "Select the head (armature or mesh) to edit it here; Delete Head removes everything it made.",
    )),
    "assets": ("Masks, UVs, albedo and landmarks", (
        "Assets adds FLAME_masks.pkl as vertex groups mask.<region> (face, lips, scalp...).",
        "head_template.obj gives the UV map UVMap; landmark embeddings become <head>.lmk.<name> points.",
        "A texture space (BFM's first) becomes an albedo material, its first Texture components keyable.",
        "Landmark points follow the animated head exactly; attribute 'landmark' holds each point's number.",
        "Files beside a model are added when it is imported (the Masks, UVs, albedo, landmarks option).",
    )),
    "animation": ("Animation and takes", (
        "Import Sequence reads metrical-tracker, VHAP, GaussianAvatars or flame_sequence.npz output.",
        "Each import is a take named after the file; earlier takes are kept, switch back in the list.",
        "The head's camera is reused: one camera per head, its lens and background follow the take.",
        "Clear Animation removes the current take and returns the head to its rest pose.",
    )),
    "track": ("Tracking a video", (
        "Set Preferences > Add-ons > FLAME Head > Tracker Python to a Python with torch, then Check.",
        "Track Video: pick a video or a landmarks .npz; for a folder of frames, open it and press Track.",
        "The bar at the bottom shows progress; Esc stops the tracker. The result becomes a new take.",
        "Without a head selected, tracking fits the Model picked in the dialog (or the demo head).",
    )),
    "appearance": ("Albedo and lighting", (
        "A tracked take's albedo and SH lighting become the head's material, lit as in the tracker.",
        "Use the Standard view transform (Color Management) to see the tracker's own colours.",
        "Import Texture Space: FLAME_texture.npz or FLAME_albedo_from_BFM.npz on the head.",
        "Its coefficients are the material's tex000, tex001, ...: key them, the albedo follows.",
        "metrical-tracker's coefficients need its space (usually FLAME_albedo_from_BFM.npz).",
    )),
    "pose": ("Posing", (
        "The sliders turn neck, jaw and eyes in degrees (X: nod or open, Y: turn, Z: tilt).",
        "They edit the bones' quaternions, which stay what is keyed and exported.",
        "Correctives: FLAME's pose-dependent shapes; off shows plain skinning, like the official add-on.",
        "Reset Pose returns every joint to rest; Update Joints refits joints to shape and expression.",
    )),
    "expression": ("Expression", (
        "Each slider is one FLAME expression coefficient (about -3 to 3 looks natural).",
        "Random draws a face; change Seed or Strength in the Adjust Last Operation panel.",
        "The joints follow the expression when you press Update Joints or use Random / Reset.",
    )),
    "identity": ("Identity", (
        "Each slider is one FLAME shape coefficient: the person's face, independent of expression.",
        "Random draws a new person; the same Seed always gives the same face.",
        "Sliders shown sets how many of the 300 components are listed.",
        "Import Identity: MICA's identity.npy or mesh, a DECA / EMOCA / SMIRK code, a FLAME-topology mesh.",
    )),
    "export": ("Exporting", (
        "File > Export > FLAME: FBX for Unreal or Unity, glTF, Alembic, USD, OBJ/PLY per frame.",
        "Closed Mesh writes a watertight OBJ/STL of the current head, holes capped, for 3-D printing.",
        "FLAME Sequence writes the animation back as flame_sequence.npz or metrical checkpoints.",
        "Each file names the model's FLAME edition and licence; a non-commercial one is reported.",
        "Render > FLAME Preview renders PNG frames and an MP4; Esc stops it between frames.",
    )),
}


class FLAME_OT_help(bpy.types.Operator):
    """Show a short how-to for this part of the FLAME panel"""

    bl_idname = "flame.help"
    bl_label = "FLAME Help"
    bl_options = {"INTERNAL"}

    topic: StringProperty(name="Topic", description="Which how-to to show")

    @classmethod
    def description(cls, context, properties):
        title, _ = TOPICS.get(properties.topic, ("FLAME Help", ()))
        return f"How to: {title}"

    def lines(self) -> tuple[str, tuple[str, ...]]:
        if self.topic not in TOPICS:
            raise FlameError(f"no help about '{self.topic}' (topics: {', '.join(TOPICS)})")
        return TOPICS[self.topic]

    def draw_popup(self, menu, context) -> None:
        """The how-to in a popup (``menu``: the popup, with its ``layout``)."""
        for line in self.lines()[1]:
            menu.layout.label(text=line)

    def invoke(self, context, event):
        title, _ = self.lines()
        context.window_manager.popup_menu(self.draw_popup, title=title, icon="QUESTION")
        return {"FINISHED"}

    def execute(self, context):  # scripts, background: the text as reports
        try:
            title, lines = self.lines()
        except FlameError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{title}: " + " ".join(lines))
        return {"FINISHED"}


def section(layout: bpy.types.UILayout, title: str, topic: str = "", icon: str = "NONE", data=None,
            names: tuple[str, ...] = ()) -> bpy.types.UILayout:
    """A titled box with an optional "?" button opening ``TOPICS[topic]``, listing the properties
    ``names`` of ``data``; returns its column for more."""
    box = layout.box()
    row = box.row()
    row.label(text=title, icon=icon)
    if topic:
        help_button(row, topic)
    col = box.column()
    for name in names:
        col.prop(data, name)
    return col


def help_button(layout: bpy.types.UILayout, topic: str) -> None:
    """A borderless "?" button showing the how-to of ``topic``."""
    layout.operator(FLAME_OT_help.bl_idname, text="", icon="QUESTION", emboss=False).topic = topic


CLASSES = (FLAME_OT_help,)
