"""Flask configuration classes. ``create_app`` starts from one and layers the settings on it."""

from __future__ import annotations


class BaseConfig:
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # Survive a PostgreSQL restart: test a pooled connection before handing it out.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # Tests put objects here: a TokenVerifier, and a callable returning a GlanceSync.
    TOKEN_VERIFIER = None
    ENGINE_FACTORY = None
    STARTED_AT = None  # when the server started; default: when the app was created
    # True for `run.py db ...`: no Keystone credential or sync configuration needed.
    DATABASE_ONLY = False


class ProductionConfig(BaseConfig):
    DEBUG = False
    TESTING = False
