"""Errors the library raises for things a user can fix, with the facts a front end needs.

Every error carries what went wrong as data: `path` (the file or folder at fault), `field` (the
setting, column or option concept, in the library's own vocabulary: "date", "bands", "k", ...),
`value` (the offending value) and `hint` (what to do, in the library's terms). Its message is one
line made by `one_line`. Front ends word these in their own terms: the command line maps `field`
to its flag (`xvision.cli`), the assistant and the app to their own controls. The library itself
never names a command-line flag.
"""

from __future__ import annotations

from pathlib import Path


def one_line(subject: object | None, problem: str, hint: str | None = None) -> str:
    """"subject: problem; hint" on one line (subject and hint optional, newlines folded)."""
    text = problem if subject in (None, "") else f"{subject}: {problem}"
    if hint:
        text = f"{text}; {hint}"
    return " ".join(text.split())


class XVisionError(Exception):
    """Base class: a one-line message naming the file, field or value at fault.

    `path`, `field`, `value` and `hint` repeat those facts as attributes so that a front end can
    word the error in its own terms (a flag, a form field) without parsing the message.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None,
                 value: object = None, hint: str | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        self.path = None if path is None else str(path)
        self.field = field
        self.value = value
        self.hint = hint

    @classmethod
    def about(cls, subject: object | None, problem: str, *, hint: str | None = None, path: str | Path | None = None,
              field: str | None = None, value: object = None) -> XVisionError:
        """Build the error with `one_line(subject, problem, hint)` as its message."""
        return cls(one_line(subject, problem, hint), path=path, field=field, value=value, hint=hint)


class InputError(XVisionError):
    """A raster, parcels file, STAC item or setting the user gave cannot be used."""


class StoreError(XVisionError):
    """The store cannot be opened or written (corrupt, missing files, inconsistent)."""


class NotFoundError(StoreError):
    """The store holds no record for what was asked (an unknown parcel, a date without data)."""


class EncoderMismatchError(StoreError):
    """The store was written by another encoder than the one asked for."""


class WeightsError(XVisionError):
    """Model weights are missing locally or do not match the expected layout."""


def require_positive_int(value: object, label: str) -> None:
    """InputError "`label` must be a positive integer, got ..." unless `value` is an int >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{label} must be a positive integer, got {value!r}", field=label, value=value)
