"""The video tracker, run outside Blender in the user's own Python with torch.

``python -m flame_blender_addon.tracking track --model MODEL --input VIDEO --output DIR`` fits a
FLAME sequence to facial landmarks and writes ``DIR/flame_sequence.npz``. Blender never imports
this package at all: it starts the program with ``subprocess.Popen`` and reads the JSON lines
described in :mod:`..core.tracker_protocol` (standard library only, like the stand-in
``tests/fake_tracker.py``).
Importing this package itself imports nothing.
"""
