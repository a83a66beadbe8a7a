"""reelpick: personalise a streaming home page, and prove what it does.

Layers (lower never import higher): ``errors`` -> ``data`` -> ``world`` -> ``metrics``/``models`` ->
``policies``/``ope``/``causal``/``artwork`` -> ``serve``/``report`` -> ``cli``.
"""

__version__ = "0.1.0"
