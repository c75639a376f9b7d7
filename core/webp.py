"""STUB: format plugin, to be written."""
