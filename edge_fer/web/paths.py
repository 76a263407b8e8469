"""Where the phone page's files live in the package (pure paths: importing this loads nothing else,
so the live page's server can share the static files without importing the exporter)."""

from __future__ import annotations

from pathlib import Path

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
VENDOR_DIR = WEB_DIR / "vendor"
PHONE_MODEL = WEB_DIR.parent / "models" / "edgenet_fer2013_phone.tflite"
