"""What a person sees of a run beyond the tables: its plots (``plots``, drawn by ``train`` into
the run folder), ``summary.json`` (``summary``: data, layers, per-class scores) and the report
of a run in the terminal and as one HTML file (``content``, ``html``); the runs of a folder
(``history``, ``cnncli runs``) and several runs side by side (``compare``). Imports ``serve``,
``model``, ``runs``, ``data`` and ``config``; never ``train``. matplotlib is imported only
inside the functions that draw (``plots``, ``compare``).
"""
