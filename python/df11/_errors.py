"""Exceptions. Every error of the library arrives as a Df11Error subclass
chosen by the CLI's exit-code class of its code (OutOfMemory and Internal
have classes of their own), carrying the code's stable name (e.g.
"Df11BadMagic") and the library's one-line message, which names the file,
the tensor and the rule broken."""



class Df11Error(Exception):
    """Base class. Attributes: code (numeric df11 status, None for errors
    raised by the Python layer itself), name (stable code name), message."""

    def __init__(self, message, name, code=None):
        super().__init__(message)
        self.message = message
        self.name = name
        self.code = code

    def __reduce__(self):
        # The default rebuilds from self.args (the message alone), which this
        # __init__ refuses: pickle (multiprocessing, ProcessPoolExecutor) and
        # copy would fail or lose name and code.
        return type(self), (self.message, self.name, self.code), self.__dict__

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


class OutOfMemoryError(Df11Error, MemoryError):
    """A host allocation in the library failed (code OutOfMemory; CLI exit
    code 3). Also a MemoryError, so that `except MemoryError` sees it."""


class InternalError(Df11Error, RuntimeError):
    """An unexpected failure inside the library, i.e. a bug in df11 (code
    Internal; CLI exit code 3)."""


# The exit code alone would make these two InputErrors (bad input), which
# they are not: a caller may retry after freeing memory, and a bug is a bug.
_BY_NAME = {"OutOfMemory": OutOfMemoryError, "Internal": InternalError}
_BY_EXIT_CODE = {1: CorruptDataError, 2: UsageError, 3: InputError}


def raise_for_status(code, name, exit_code, message):
    cls = _BY_NAME.get(name) or _BY_EXIT_CODE.get(exit_code, Df11Error)
    raise cls(message or name, name, code)


def one_line(name):
    """How df11 puts a name (a path) into a one-line message, as the library
    does (df11::one_line, formats/one_line.cpp): control bytes, and the C1
    controls of UTF-8, are escaped, so that a name holding a newline or an
    escape sequence can neither split a message nor forge another. A path
    comes as the bytes given to the library; a str (a tensor name, which is
    UTF-8 in the file) is encoded as UTF-8, whatever the locale."""
    raw = name if isinstance(name, bytes) else str(name).encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        u = raw[i]
        if u == 0xC2 and i + 1 < len(raw) and 0x80 <= raw[i + 1] <= 0x9F:
            out += b"\\x%02x\\x%02x" % (u, raw[i + 1])
            i += 2
            continue
        if u >= 0x20 and u != 0x7F:
            out.append(u)
        else:
            out += {0x0A: b"\\n", 0x09: b"\\t", 0x0D: b"\\r"}.get(u, b"\\x%02x" % u)
        i += 1
    # As the library's messages are read (_lib.raise_status).
    return out.decode("utf-8", "replace")
