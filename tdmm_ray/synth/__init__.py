"""Clip synthesis: motion scripts from prompt attributes and the procedural face-video generator."""
