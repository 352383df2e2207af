"""compress: distil a teacher into a small student and ship it to edge devices."""

__version__ = "0.1.0"
