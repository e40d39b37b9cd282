"""The store key file: Fernet keys, one per line, the primary first.

The primary encrypts; the others only decrypt (what they sealed before a rotation).
A key's id is the first 16 hex digits of its SHA-256, what each stored credential
carries (agent.store.encryption). Reading tightens the file to 0600; writing is atomic
(a temporary file, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from loguru import logger

from agent.errors import StoreKeyError
from agent.file_modes import FILE_MODE, tighten

_KEY_LINE = re.compile(r"^[A-Za-z0-9_-]{43}=$")


class StoreKey:
    """One Fernet key; its repr never shows the key."""

    __slots__ = ("_fernet", "_secret", "id")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._fernet = Fernet(secret)
        self.id = hashlib.sha256(secret).hexdigest()[:16]

    @classmethod
    def generate(cls) -> StoreKey:
        return cls(Fernet.generate_key())

    def __repr__(self) -> str:
        return f"StoreKey(id={self.id})"

    def line(self) -> str:
        return self._secret.decode()

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()


class KeyRing:
    """The keys of the key file: the primary encrypts, every one decrypts what it sealed."""

    def __init__(self, keys: Sequence[StoreKey], source: Path) -> None:
        if not keys:
            raise StoreKeyError(f"key file {source} holds no key")
        self.keys = tuple(keys)
        self.source = source
        self._by_id = {key.id: key for key in self.keys}

    @property
    def primary(self) -> StoreKey:
        return self.keys[0]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def seal(self, value: str) -> str:
        return self.primary.encrypt(value)

    def unseal(self, token: str, key_id: str) -> str:
        """The clear value of ``token``, sealed with key ``key_id`` ("" for a clear value).

        Raises:
            StoreKeyError: the key file does not hold that key, or the value does not
                decrypt with it (damaged).
        """
        if not key_id:
            return token
        key = self._by_id.get(key_id)
        if key is None:
            raise StoreKeyError(
                f"key file {self.source} does not hold key {key_id}, which encrypted "
                "stored credentials (wrong key file?)"
            )
        try:
            return key.decrypt(token)
        except InvalidToken:
            raise StoreKeyError(
                f"a stored credential does not decrypt with key {key_id} of {self.source}"
            ) from None


def read_key_file(path: Path) -> KeyRing | None:
    """The key ring in ``path``; None when there is no such file.

    Raises:
        StoreKeyError: unreadable, or a line that is not a key (named by number, never shown).
    """
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreKeyError(f"cannot read key file {path}: {_reason(exc)}") from None
    if tighten(path):
        logger.warning("key file {} was readable by others: now 0600", path)
    keys: list[StoreKey] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _KEY_LINE.match(line):
            raise StoreKeyError(
                f"key file {path} line {number}: not a key (44 characters of URL-safe base64)"
            )
        keys.append(StoreKey(line.encode()))
    return KeyRing(keys, path)


def write_key_file(path: Path, keys: Sequence[StoreKey]) -> None:
    """Replace ``path`` atomically with ``keys`` (primary first), mode 0600.

    Raises:
        StoreKeyError: the file cannot be written.
    """
    body = (
        "# provsync store key: keep it secret and back it up apart from the store.\n"
        "# The first key encrypts; the others only decrypt. `provsync keys rotate`.\n"
        + "".join(key.line() + "\n" for key in keys)
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, body.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StoreKeyError(f"cannot write key file {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
