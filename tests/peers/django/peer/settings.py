"""The original service the conformance kit is checked against: Django with
djangorestframework-simplejwt and djoser, configured as the app the fixtures in tests/fixtures/django
were captured from (rotation with blacklisting, `Bearer`, JSON bodies only). Run by
crates/cli/tests/cli.rs with the test venv's Django (scripts/test-venv.sh); PEER_DB names its SQLite
file and PEER_SECRET its SECRET_KEY (simplejwt's signing key)."""

import os

SECRET_KEY = os.environ["PEER_SECRET"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "peer.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "djoser",
]
MIDDLEWARE = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PEER_DB"]}}
REST_FRAMEWORK = {
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
}
SIMPLE_JWT = {"ROTATE_REFRESH_TOKENS": True, "BLACKLIST_AFTER_ROTATION": True, "AUTH_HEADER_TYPES": ("Bearer",)}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
