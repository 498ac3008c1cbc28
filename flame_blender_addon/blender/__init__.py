"""Blender glue: thin layers that move numpy arrays from :mod:`..core` into Blender data in bulk."""
