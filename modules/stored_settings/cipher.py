"""The key that encrypts saved secrets: a Fernet key in the instance folder, readable by its owner only.

A copy of the database alone gives no secret away. Losing or replacing the key only makes the
secrets saved with the old one unreadable: the settings page names them, to be entered again.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "settings.key"


class Cipher:
    def __init__(self, instance_path):
        self.path = Path(instance_path) / KEY_FILE

    def _read(self):
        try:
            return self.path.read_bytes().strip() or None
        except FileNotFoundError:
            return None

    def _key(self, create):
        key = self._read()
        if key is None and create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process wrote it first
                return self._read()
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
            key = self._read()
        return key

    def encrypt(self, text):
        """A Fernet token (text) for `text`; makes the key on first use."""
        return Fernet(self._key(create=True)).encrypt(text.encode()).decode()

    def decrypt(self, token):
        """The text of `token`, or None when this key did not make it (lost or replaced key)."""
        key = self._key(create=False)
        if key is None:
            return None
        try:
            return Fernet(key).decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            return None
