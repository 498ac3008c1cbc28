"""The file formats of FLAME data, one module per family (numpy and the standard library only).

- :mod:`.model_file`: FLAME model files (Python-2 ``.pkl`` with chumpy/scipy objects, converted ``.npz``).
- :mod:`.metrical`: metrical-tracker's ``checkpoint/*.frame`` files and eyelid blendshapes, read and
  written; :mod:`.torch_zip` is their ``torch.save`` container.
- :mod:`.npz`: VHAP, GaussianAvatars and this project's ``flame_sequence.npz``, read and written.
- :mod:`.dispatch`: :func:`~.dispatch.read_sequence` recognises any of the sequence inputs
  (``core.sequence.read_sequence`` is the public entry point).

Every sequence reader returns a validated :class:`~..sequence.FlameSequence`.
"""
