"""Domain errors, worded for the person who sees them."""


class QAError(Exception):
    """Base class: the CLI prints it as one `Error: ...` line, the API as a JSON error."""

    code = "error"
    http_status = 400


class InvalidInput(QAError):
    code = "invalid_input"
    http_status = 400


class NotFound(QAError):
    code = "not_found"
    http_status = 404


class Conflict(QAError):
    code = "conflict"
    http_status = 409


class ParseError(QAError):
    """A file that cannot be ingested; the message names the file and why."""

    code = "parse_error"
    http_status = 400


class IndexNotBuilt(QAError):
    code = "index_not_built"
    http_status = 503

    def __init__(self, message: str = 'no index has been built yet: run "qa build" first'):
        super().__init__(message)


class IndexMismatch(QAError):
    code = "index_mismatch"
    http_status = 503


class DatabaseDamaged(QAError):
    """The knowledge base's SQLite file is not a database or is corrupt."""

    code = "database_damaged"
    http_status = 503

    def __init__(self, path, reason: str):
        super().__init__(f"the knowledge base {path} is damaged ({reason}): move it aside, with any {path.name}-wal beside "
                         'it, then bring back the last backup with "qa restore BACKUP"')


class DiskFull(QAError):
    code = "disk_full"
    http_status = 503

    def __init__(self, path):
        super().__init__(f"the disk holding {path} is full: the change under way was not stored (those before it were); "
                         "free some space and run the command again")


class Unauthorized(QAError):
    """No API key, or one that is unknown or revoked (HTTP 401)."""

    code = "unauthorized"
    http_status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="qa_engine"'}


class Forbidden(QAError):
    """A valid API key whose role may not use this endpoint (HTTP 403)."""

    code = "forbidden"
    http_status = 403
