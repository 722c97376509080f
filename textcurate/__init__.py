"""textcurate: turn a large pretraining corpus into a better, smaller one."""

__version__ = "0.1.0"
