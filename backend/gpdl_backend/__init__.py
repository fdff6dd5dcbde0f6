"""gpdl's server-side package: what runs inside the database, plus its drivers."""

__version__ = "0.1.0"
