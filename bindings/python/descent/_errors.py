from . import _lib


class DescentError(Exception):
    """An error reported by libdescent (or by the binding's checks before calling it).

    ``status`` is the library's status code (an int, e.g. 6 for DESCENT_ERR_OUT_OF_RANGE),
    ``status_name`` its name and ``message`` the library's message."""

    def __init__(self, status, message):
        self.status = int(status)
        self.message = message
        super().__init__(message)

    @property
    def status_name(self):
        name = _lib.lib.descent_status_name(self.status)
        return name.decode() if name else f"status {self.status}"

    def __repr__(self):
        return f"DescentError({self.status_name}, {self.message!r})"
