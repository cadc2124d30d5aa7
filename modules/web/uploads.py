"""Receiving uploaded export files: saved to the instance folder under safe names, then one job."""
from __future__ import annotations

import shutil
import uuid

from flask import current_app
from werkzeug.utils import secure_filename

from ..jobs import start_job


class UploadRejected(ValueError):
    pass


def start_upload_import(files):
    """Save the uploaded files (never trusting their names as paths) and start the import job."""
    files = [f for f in files if f and f.filename]
    if not files:
        raise UploadRejected("No file received: choose one or more export files (field 'files').")
    upload_dir = current_app.config["UPLOAD_DIR"] / uuid.uuid4().hex
    upload_dir.mkdir(parents=True)
    saved = []
    try:
        for i, storage in enumerate(files):
            display = storage.filename.replace("\\", "/").rsplit("/", 1)[-1][:200] or f"file-{i + 1}"
            path = upload_dir / f"{i:03d}-{secure_filename(display) or 'upload'}"
            storage.save(path)  # werkzeug streams the spooled upload to disk in chunks
            saved.append({"path": str(path), "name": display})
        return start_job("upload_import", {"files": saved, "upload_dir": str(upload_dir)})
    except BaseException:
        shutil.rmtree(upload_dir, ignore_errors=True)
        raise
