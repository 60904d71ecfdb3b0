"""Command groups. Each module defines ``register(app)`` and adds its commands to the ``curate`` app."""
