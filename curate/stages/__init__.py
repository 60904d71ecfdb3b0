"""Stage families, one module each. Importing a module registers its stages (and imports no models)."""
