"""Preview renders: :mod:`.settings` (engine, samples, lights), :mod:`.frames` (PNG frames, source frames,
compositing), :mod:`.video` (MP4), :mod:`.preview` (all of it with progress) and :mod:`.operator`
(``flame.render_preview``)."""
