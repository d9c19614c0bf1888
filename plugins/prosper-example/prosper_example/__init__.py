"""A template prosper plugin (see plugin.py)."""
