"""``sha256`` without ``hashlib``: importing hashlib loads OpenSSL (~2 ms of every submit, both
in the CLI and in the supervisor's early start); the builtin module gives the same digests."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha256 as sha256
else:
    try:
        from _sha2 import sha256  # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.11
        except ImportError:  # an interpreter built without them
            from hashlib import sha256

__all__ = ["sha256"]
