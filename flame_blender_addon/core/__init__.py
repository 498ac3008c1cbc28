"""Blender-free FLAME maths and file formats (numpy and the standard library only).

Everything in this package runs in plain Python, inside Blender and inside the tracker process;
a test imports each module with ``bpy``, ``mathutils`` and ``torch`` blocked to keep it that way.
"""
