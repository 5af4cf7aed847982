"""Exceptions. Every error of the library arrives as a Df11Error subclass
chosen by the CLI's exit-code class of its code, carrying the code's stable
name (e.g. "Df11BadMagic") and the library's one-line message, which names
the file, the tensor and the rule broken."""


class Df11Error(Exception):
    """Base class. Attributes: code (numeric df11 status, None for errors
    raised by the Python layer itself), name (stable code name), message."""

    def __init__(self, message, name, code=None):
        super().__init__(message)
        self.message = message
        self.name = name
        self.code = code

    def __str__(self):
        # The library's messages already end with "(RuleName)"; say the name
        # only when the message lacks it.
        if self.name and f"({self.name})" not in self.message:
            return f"{self.message} ({self.name})"
        return self.message


class CorruptDataError(Df11Error):
    """Data written by df11 that no longer matches itself (CLI exit code 1)."""


class UsageError(Df11Error):
    """API misuse: unknown tensor, wrong buffer, closed file (CLI exit code 2)."""


class InputError(Df11Error):
    """I/O error, invalid or unsupported input, no GPU (CLI exit code 3)."""


_BY_EXIT_CODE = {1: CorruptDataError, 2: UsageError, 3: InputError}


def raise_for_status(code, name, exit_code, message):
    cls = _BY_EXIT_CODE.get(exit_code, Df11Error)
    raise cls(message or name, name, code)
