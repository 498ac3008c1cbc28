"""``flame.import_identity``: a head's identity from MICA, DECA, EMOCA or SMIRK files, or a FLAME-topology mesh."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core import rig
from ..core.identity import is_mesh_file, read_identity_code, read_identity_mesh
from ..core.sequence import fit_width
from . import head, takes
from .help import section
from .operator_base import HeadOperator
from .transaction import rollback_on_error


class FLAME_OT_import_identity(HeadOperator, ImportHelper, bpy.types.Operator):
    """Set the head's identity from MICA's identity.npy, a DECA / EMOCA / SMIRK code or a FLAME-topology mesh"""

    bl_idname = "flame.import_identity"
    bl_label = "Import Identity"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH",
                             description="identity.npy, shape.npy, a DECA / SMIRK code file, or a FLAME mesh")
    filter_glob: StringProperty(default="*.npy;*.npz;*.pkl;*.pt;*.pth;*.ply;*.obj", options={"HIDDEN"})

    def draw(self, context):
        col = section(self.layout, "Head", "identity", icon="ARMATURE_DATA")
        col.prop_search(self.properties, "target", context.scene, "objects", icon="OUTLINER_OB_ARMATURE")

    def run(self, context, armature):
        path = Path(bpy.path.abspath(self.filepath))
        props, warnings = armature.flame, []
        if is_mesh_file(path):
            fit = read_identity_mesh(path, *head.identity_basis(armature))
            betas = fit.betas
            note = (f"solved from {len(betas)} components, mesh in {'millimetres' if fit.scale < 1 else 'metres'}; "
                    f"residual {fit.residual_m * 1000:.3g} mm RMS, {fit.max_m * 1000:.3g} mm at most")
        else:
            betas = fit_width(read_identity_code(path), props.n_shape, "identity", warnings)
            note = f"{props.n_shape} components"
        rig.split_for_sliders(betas)  # refuses coefficients no head can hold, before anything changes
        with rollback_on_error(context, edited_head=armature):
            head.set_shape(props.mesh, betas)
            # an animated head keys the expression's joint shift on its bones: rest at zero expression then
            expr = np.zeros(props.n_expr) if takes.has_animation(armature) else head.coefficient_values(armature)[1]
            head.set_rest_joints(context, armature, head.joints_for(armature, betas, expr))
            takes.update_identity(armature)
        for warning in warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"{armature.name}: identity from {path.name} ({note})")
        return {"FINISHED"}


CLASSES = (FLAME_OT_import_identity,)
