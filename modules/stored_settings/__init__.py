"""Settings saved in the app: stored in the database (secrets encrypted), followed live by every process.

`LiveSettings` is the mapping every part of Sillon reads (`app.extensions["sillon"]["settings"]`):
the environment, the saved values, config.json and the defaults combined (config.resolve). Each
process calls `refresh()` at the start of a request, of a job and of each live tracker poll; it
costs one primary-key read and reloads only when the settings version moved.
"""
from .cipher import Cipher
from .live import LiveSettings, SettingRefused
from .store import VERSION_ID

__all__ = ["Cipher", "LiveSettings", "SettingRefused", "VERSION_ID"]
