"""Framework integrations, installed as ``comet_callbacks.integrations``.

Each module imports its framework lazily; importing this package imports none.
"""
