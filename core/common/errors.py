"""The one error type users see: a single line naming the file, the field and the fix."""

from __future__ import annotations

EXIT_USAGE = 2


def printable(text: str) -> str:
    """Untrusted text (keys, names, paths) made safe for one terminal line: control characters escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception as one short line: libraries (OpenVINO, onnxruntime) raise multi-line messages."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class UserError(Exception):
    """Bad input from the user. The CLI prints `str(err)` and exits with code 2."""

    def __init__(self, message: str, *, file: object = None, field: str | None = None, fix: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        self.fix = fix
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}: "
        if self.field:
            where += f"{self.field}: "
        text = f"{where}{self.message}"
        if self.fix:
            text += f" ({self.fix})"
        return printable(text)


class Interrupted(Exception):
    """SIGTERM, turned into an exception so the report is still written."""
