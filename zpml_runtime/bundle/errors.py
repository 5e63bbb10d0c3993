"""Typed errors (and the one warning) of bundle export, validation and loading.

Every error derives from :class:`BundleError`, itself a
:class:`~zpml_runtime.errors.ZeroProofRuntimeError` and a ``ValueError``, so
``except BundleError`` catches everything a bundle operation refuses.
"""

from __future__ import annotations

from zpml_symbolic.errors import BoxError

from ..errors import ZeroProofRuntimeError

__all__ = [
    "BundleBusyError",
    "BundleError",
    "BundleMetadataError",
    "BundlePathError",
    "BundleSmokeTestError",
    "BundleValidationError",
    "InputBoxError",
    "NotARegularFileError",
    "NotNpyFileError",
    "NpyContentError",
    "SigningKeyFileError",
    "UnverifiedBundleWarning",
    "UserFileError",
]


class BundleError(ZeroProofRuntimeError, ValueError):
    """A bundle could not be written, read or used."""


class BundleValidationError(BundleError):
    """A bundle failed validation; ``problems`` lists every problem found."""

    def __init__(self, directory: str, problems: list[str]) -> None:
        self.directory = directory
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"bundle {directory!r} is invalid ({len(self.problems)} problem(s)):\n{listing}"
        )


class BundleSmokeTestError(BundleError):
    """The bundle's outputs differ from the reference module's."""


class BundleBusyError(BundleError):
    """Another export holds the lock of this bundle path for longer than the timeout."""


class BundlePathError(BundleError):
    """The bundle path cannot be used: its parent directory or the lock file next to it
    cannot be created (a read-only or special directory such as ``/proc``)."""


class BundleMetadataError(BundleError):
    """A metadata field has the wrong type or value; ``field`` names it (``a.b[2]``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"metadata {field}: {message}")


class InputBoxError(BundleError, BoxError):
    """A bad operating box for a bundle; ``field`` names the variable (or ``"input_box"``)."""

    def __init__(self, message: str, *, field: str) -> None:
        BoxError.__init__(self, message, field=field)


class UserFileError(BundleError):
    """A file named by the user cannot be used (wrong kind of file, size or content)."""


class NotARegularFileError(UserFileError):
    """A path that must name a regular file names a device, pipe, directory or socket."""


class SigningKeyFileError(UserFileError):
    """A signing-key file is too large or holds an empty key."""


class NotNpyFileError(UserFileError):
    """A file given as a ``.npy`` array is not a ``.npy`` file."""


class NpyContentError(UserFileError):
    """A ``.npy`` file holds something other than a plain numeric array, or is damaged."""


class UnverifiedBundleWarning(UserWarning):
    """A bundle was loaded whose graph is not (fully) verified; the message says what is not."""
