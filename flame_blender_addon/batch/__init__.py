"""Batch processing of many clips: track -> import onto the user's model -> preview -> exports, on Ray.

Only the ``batch`` command imports this package; Blender never does (the layering test enforces it):

- :mod:`.manifest` turns folders, globs, CSV and JSON lists into clips with per-clip options;
- :mod:`.layout` is the output folder: per-clip staging, atomic commit, resume records;
- :mod:`.stages` runs one clip's steps in worker processes (tracker and Blender as child processes);
- :mod:`.clip_job` is the Blender side of a clip, run inside a Blender child process;
- :mod:`.runner` schedules the stages on Ray (the only module that imports ``ray``).
"""
