"""Built-in demo content, so everything works before the user has FLAME (numpy and core only).

- :mod:`.head`: a procedural head in FLAME's exact layout (5023 vertices, 400 components).
- :mod:`.embedding`: MediaPipe landmarks on that head, for the tracker.
- :mod:`.performance`: a few seconds of speech-like animation with a camera.
- :mod:`.character`: a stylised character of another topology, for retargeting.
"""
