"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class XVisionError(Exception):
    """Base class: the message names the file, field or value at fault."""


class InputError(XVisionError):
    """A raster, parcels file, STAC item or option the user gave cannot be used."""


class StoreError(XVisionError):
    """The store cannot be opened or written (corrupt, missing files, inconsistent)."""


class EncoderMismatchError(StoreError):
    """The store was written by another encoder than the one asked for."""


class WeightsError(XVisionError):
    """Model weights are missing locally or do not match the expected layout."""


def require_positive_int(value: object, label: str) -> None:
    """InputError "`label` must be a positive integer, got ..." unless `value` is an int >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{label} must be a positive integer, got {value!r}")
