"""File suffixes the project reads as video, in a module without PyAV, so that training
code (models/data.py) imports on machines that have torch but not PyAV (a lent GPU image)."""

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg"})
