"""A config: YAML read with positions (``source``), pydantic models and ``--set`` (``models``),
the JSON Schema (``schema``). Imports only ``cnncli.errors``; no Keras, pandas or NumPy model code.
"""
