"""`RedactTokens`: a logging filter that removes sessionward tokens from log records.

For apps that log request headers, cookies or URLs by mistake. Attach it to a *handler* so
that it sees every record the handler emits, including records propagated from child
loggers (a filter on a logger only sees records logged on that very logger)::

    import logging
    import sessionward

    handler = logging.StreamHandler()
    handler.addFilter(sessionward.RedactTokens())
    logging.getLogger().addHandler(handler)

Every well-formed token (``swd_`` + 54 base62 characters + a 6-character checksum) in the
message, in its arguments, in the formatted exception and in the stack info is replaced
with ``swd_[REDACTED]``. Records without a token pass through untouched. The filter never
drops a record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sessionward._native import TOKEN_PREFIX, redact_tokens

__all__ = ["RedactTokens"]

_FORMATTER = logging.Formatter()


def _redact_arg(arg: object) -> object:
    if isinstance(arg, str):
        return redact_tokens(arg) if TOKEN_PREFIX in arg else arg
    if isinstance(arg, (int, float, bool)) or arg is None:
        return arg
    try:
        text = str(arg)
    except Exception:  # an argument whose __str__ fails is left for logging to report
        return arg
    if TOKEN_PREFIX in text:
        redacted = redact_tokens(text)
        if redacted != text:
            return redacted
    return arg


class RedactTokens(logging.Filter):
    """A `logging.Filter` that replaces sessionward tokens in records with ``swd_[REDACTED]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            if TOKEN_PREFIX in record.msg:
                record.msg = redact_tokens(record.msg)
        else:
            record.msg = _redact_arg(record.msg)
        args: Any = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in args)
        elif isinstance(args, Mapping):
            record.args = {key: _redact_arg(value) for key, value in args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text and TOKEN_PREFIX in record.exc_text:
            record.exc_text = redact_tokens(record.exc_text)
        if record.stack_info and TOKEN_PREFIX in record.stack_info:
            record.stack_info = redact_tokens(record.stack_info)
        return True
