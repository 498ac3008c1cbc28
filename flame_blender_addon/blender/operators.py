"""Operators of the ``flame.*`` namespace. All inputs are properties, so scripts and
``blender --background`` can call them with no selection or UI state (``target`` names the head)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.errors import FlameError
from ..core.formats.assets import Assets, find_assets, read_assets
from ..core.model import FlameModel, load_model
from . import assets, head, preferences
from .asset_operators import report_assets, texture_components, texture_components_property
from .help import section
from .operator_base import HeadOperator, reports_errors
from .progress import progress
from .transaction import rollback_on_error


class _BuildOperator:
    """Mixin: component counts and the build itself, all-or-nothing (call it inside ``reports_errors``)."""

    n_shape: IntProperty(name="Identity components", default=300, min=0, max=300)
    n_expr: IntProperty(name="Expression components", default=100, min=0, max=100)

    def build(self, context, model: FlameModel, name: str, found: Assets | None = None):
        """Build the head, and put ``found`` (asset files beside the model) on it, all-or-nothing."""
        model = model.truncated(self.n_shape, self.n_expr)
        with rollback_on_error(context), progress(context, f"Building {name}") as report:
            armature = head.build_head(context, model, name, report)
            summary = assets.apply_assets(context, armature, found) if found is not None else ""
        for warning in model.warnings:
            self.report({"WARNING"}, f"{model.name}: {warning}")
        self.report({"INFO"}, f"Built {armature.name} from {model.name} "
                              f"({model.n_shape} identity, {model.n_expr} expression components)")
        if found is not None:
            report_assets(self, found, summary, Path(model.path).parent)
        return {"FINISHED"}


class FLAME_OT_import_model(_BuildOperator, ImportHelper, bpy.types.Operator):
    """Build a rigged FLAME head from your generic_model.pkl / flame2023.pkl (or a converted .npz)"""

    bl_idname = "flame.import_model"
    bl_label = "Import FLAME Model"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH",
                             description="A FLAME model: generic_model.pkl, flame2023.pkl or a converted .npz")
    filter_glob: StringProperty(default="*.pkl;*.npz", options={"HIDDEN"})
    import_assets: BoolProperty(name="Masks, UVs, albedo, landmarks", default=True,
                                description="Also add FLAME_masks.pkl, head_template.obj, a texture space and "
                                            "landmark embeddings found beside the model (a damaged file is "
                                            "skipped with a warning)")
    texture_components: texture_components_property()

    def invoke(self, context, event):
        folder = preferences.model_folder(context)
        if not self.filepath and folder is not None:  # open the browser in the Model folder
            self.filepath = str(folder) + os.sep
        return ImportHelper.invoke(self, context, event)

    def draw(self, context):
        col = section(self.layout, "Components", "head", icon="SHAPEKEY_DATA")
        col.prop(self.properties, "n_shape")
        col.prop(self.properties, "n_expr")
        section(self.layout, "Beside the model", "assets", icon="GROUP_VERTEX", data=self.properties,
                names=("import_assets", "texture_components"))

    @reports_errors
    def execute(self, context):
        if not self.filepath:
            raise FlameError("No model file given: choose your generic_model.pkl or flame2023.pkl")
        path = Path(bpy.path.abspath(self.filepath))
        model = load_model(path)
        found = read_assets(find_assets(path.parent), model.faces, model.n_verts, strict=False,
                            n_texture=texture_components(self.texture_components)) if self.import_assets else None
        return self.build(context, model, "FLAME", found)


class FLAME_OT_add_demo_head(_BuildOperator, bpy.types.Operator):
    """Add the built-in procedural demo head (FLAME layout, no download needed)"""

    bl_idname = "flame.add_demo_head"
    bl_label = "FLAME Demo Head"
    bl_options = {"REGISTER", "UNDO"}

    @reports_errors
    def execute(self, context):
        from ..demo import head as demo_head  # generated on demand: ~50 MB of arrays

        return self.build(context, demo_head.demo_model(), "FLAME_demo")


class FLAME_OT_update_joints(HeadOperator, bpy.types.Operator):
    """Move the joints to where FLAME regresses them for the current shape and expression"""

    bl_idname = "flame.update_joints"
    bl_label = "Update Joints"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context, armature):
        head.update_joints(context, armature)
        return {"FINISHED"}


class _CoefficientOperator(HeadOperator):
    """Set identity or expression coefficients to zero or to random N(0, strength^2) draws (overflow
    keys to zero), then update the joints (FLAME's joints follow both)."""

    bl_options = {"REGISTER", "UNDO"}
    prefix = ""  # head.SHAPE_PREFIX or head.EXPR_PREFIX
    randomize = False

    strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=3.0,
                            description="Standard deviation of the random coefficients")
    seed: IntProperty(name="Seed", default=0, min=0, options={"SKIP_SAVE"},
                      description="The same seed gives the same face; 0 draws a new seed every time")

    def invoke(self, context, event):
        """From the UI: draw the seed now, so that tweaking Strength in the redo panel keeps the face."""
        if self.randomize and not self.seed:
            self.seed = random.randrange(1, 2**31 - 1)
        return self.execute(context)

    def run(self, context, armature):
        blocks = armature.flame.mesh.data.shape_keys.key_blocks
        values = np.empty(len(blocks), dtype=np.float32)
        blocks.foreach_get("value", values)
        mask = np.array([head.is_coefficient_key(kb.name, self.prefix) for kb in blocks])
        values[mask] = 0.0
        if self.randomize:
            keys = mask & ~np.char.endswith([kb.name for kb in blocks], head.OVERFLOW_SUFFIX)
            rng = np.random.default_rng(self.seed or None)
            values[keys] = np.clip(rng.normal(scale=self.strength, size=keys.sum()), -10, 10)
        blocks.foreach_set("value", values)
        head.update_joints(context, armature)
        return {"FINISHED"}


class FLAME_OT_random_shape(_CoefficientOperator, bpy.types.Operator):
    """Draw a random identity"""

    bl_idname, bl_label, prefix, randomize = "flame.random_shape", "Random Shape", head.SHAPE_PREFIX, True


class FLAME_OT_reset_shape(_CoefficientOperator, bpy.types.Operator):
    """Reset the identity to the mean head"""

    bl_idname, bl_label, prefix = "flame.reset_shape", "Reset Shape", head.SHAPE_PREFIX


class FLAME_OT_random_expression(_CoefficientOperator, bpy.types.Operator):
    """Draw a random expression"""

    bl_idname, bl_label, prefix, randomize = "flame.random_expression", "Random Expression", head.EXPR_PREFIX, True


class FLAME_OT_reset_expression(_CoefficientOperator, bpy.types.Operator):
    """Reset the expression to neutral"""

    bl_idname, bl_label, prefix = "flame.reset_expression", "Reset Expression", head.EXPR_PREFIX


class FLAME_OT_reset_pose(HeadOperator, bpy.types.Operator):
    """Reset every joint rotation and the translation"""

    bl_idname = "flame.reset_pose"
    bl_label = "Reset Pose"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context, armature):
        head.rest_bones(armature)
        return {"FINISHED"}


CLASSES = (
    FLAME_OT_import_model, FLAME_OT_add_demo_head, FLAME_OT_update_joints,
    FLAME_OT_random_shape, FLAME_OT_reset_shape, FLAME_OT_random_expression,
    FLAME_OT_reset_expression, FLAME_OT_reset_pose,
)
