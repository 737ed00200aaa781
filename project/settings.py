"""Settings for the cash office, read from the environment through one ``env`` object.

``DJANGO_ENV`` is ``dev`` (default), ``test`` or ``production``. Production has no
defaults for its secrets, so a missing one stops start-up with a clear message.
"""

import datetime as dt
from pathlib import Path

import environ

from project import key_rules

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="dev")
if DJANGO_ENV not in {"dev", "test", "production"}:
    raise environ.ImproperlyConfigured(
        f"DJANGO_ENV must be dev, test or production, not {DJANGO_ENV!r}"
    )
IS_PRODUCTION = DJANGO_ENV == "production"

if IS_PRODUCTION:
    # No default: env() raises ImproperlyConfigured("Set the SECRET_KEY environment variable").
    SECRET_KEY = env.str("SECRET_KEY")
    AUDIT_CHAIN_KEY = env.str("AUDIT_CHAIN_KEY")
    AUDIT_SIGNING_KEY = env.str("AUDIT_SIGNING_KEY")
    SITE_URL = env.str("SITE_URL")
    SMTP_PASSWORD_KEYS = env.list("SMTP_PASSWORD_KEYS")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-secret-key-not-for-production")
    AUDIT_CHAIN_KEY = env.str("AUDIT_CHAIN_KEY", default=key_rules.DEV_CHAIN_KEY)
    AUDIT_SIGNING_KEY = env.str("AUDIT_SIGNING_KEY", default=key_rules.DEV_SIGNING_KEY)
    SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
    SMTP_PASSWORD_KEYS = env.list("SMTP_PASSWORD_KEYS", default=[key_rules.DEV_SMTP_PASSWORD_KEY])
# Links in emails start with it.
SITE_URL = key_rules.site_url_clean(SITE_URL)

# The audit trail's keys (project/key_rules.py holds their rules; auditing/README.md the
# rotation runbook). Each entry stores the id of the HMAC key it was written with, so
# entries written before a rotation still verify with their own, retired, key.
AUDIT_CHAIN_KEY = key_rules.chain_key_check(AUDIT_CHAIN_KEY, production=IS_PRODUCTION)
AUDIT_CHAIN_KEY_ID = key_rules.key_id_check(env.str("AUDIT_CHAIN_KEY_ID", default="1"))
AUDIT_CHAIN_RETIRED_KEYS = key_rules.retired_chain_keys_parse(
    env.str("AUDIT_CHAIN_RETIRED_KEYS", default="{}"),
    current_id=AUDIT_CHAIN_KEY_ID,
    production=IS_PRODUCTION,
)
AUDIT_CHAIN_KEYS: dict[str, str] = key_rules.chain_keys(
    current_id=AUDIT_CHAIN_KEY_ID, current_key=AUDIT_CHAIN_KEY, retired=AUDIT_CHAIN_RETIRED_KEYS
)
# Checkpoints are signed with Ed25519: verifying them needs only the public key, which
# auditors may hold, and every checkpoint file carries it. A signing key that was replaced
# stays trusted for the checkpoints it signed through AUDIT_RETIRED_PUBLIC_KEYS.
AUDIT_SIGNING_KEY = key_rules.signing_key_check(AUDIT_SIGNING_KEY, production=IS_PRODUCTION)
AUDIT_PUBLIC_KEY = key_rules.public_key_check(
    env.str("AUDIT_PUBLIC_KEY", default=""), signing_key=AUDIT_SIGNING_KEY
)
AUDIT_TRUSTED_PUBLIC_KEYS: list[str] = key_rules.trusted_public_keys(
    current=AUDIT_PUBLIC_KEY, retired=env.list("AUDIT_RETIRED_PUBLIC_KEYS", default=[])
)
# Where checkpoints go, outside the database: file:///absolute/dir or s3://bucket/prefix.
AUDIT_CHECKPOINT_SINKS: list[str] = key_rules.checkpoint_sinks_check(
    env.list(
        "AUDIT_CHECKPOINT_SINKS",
        default=[] if IS_PRODUCTION else [f"file://{BASE_DIR / 'var' / 'checkpoints'}"],
    ),
    production=IS_PRODUCTION,
)
# The auditors who receive the daily verification email with the signed head.
AUDITOR_EMAILS = env.list("AUDITOR_EMAILS", default=[])
# An entry stamped later than now plus this is a violation (clocks drift a little).
AUDIT_CLOCK_SKEW_SECONDS = key_rules.clock_skew_check(
    env.int("AUDIT_CLOCK_SKEW_SECONDS", default=300)
)

DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Behind an HTTPS proxy in production; a plain-HTTP stack must opt out explicitly.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=IS_PRODUCTION)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    # First, so that its admin/index.html (the dashboard) overrides the stock index.
    "backoffice",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "auditing",
    "mailing",
    "payments",
    "reporting",
    "tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite is the embedded default for the demo only; tests and production use PostgreSQL.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
if IS_PRODUCTION and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    # The run locks, the audit chain's lock and its append-only triggers need PostgreSQL.
    raise environ.ImproperlyConfigured("DJANGO_ENV=production needs a PostgreSQL DATABASE_URL")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The money tables: the application's database role may add and change their rows, never
# delete them (nothing in the application does; every foreign key to them is PROTECT).
# `manage.py setup_database_roles` reads them here, so that auditing, which grants, need not
# import payments, which owns them; tests/auditing/test_database_roles.py holds the names to
# the models' tables.
MONEY_TABLES = ("payments_cashsession", "payments_cashtransaction", "payments_commission")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if DJANGO_ENV == "test":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Emails and notifications are written in LANGUAGE_CODE (French by default); a language
# without translations falls back to English. The suite asserts the English source
# strings, so a LANGUAGE_CODE=fr copied into .env must not reach it.
LANGUAGE_CODE = "en" if DJANGO_ENV == "test" else env.str("LANGUAGE_CODE", default="fr")
LANGUAGES = [("fr", "Français"), ("en", "English")]
TIME_ZONE = env.str("TIME_ZONE", default="Indian/Antananarivo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DJANGO_ENV == "test":
    # Tests never collect static files; WhiteNoise would only warn about the missing root.
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    MIDDLEWARE.remove("whitenoise.middleware.WhiteNoiseMiddleware")

# Email: EMAIL_URL takes smtp://user:pass@host:port, smtp+tls://..., consolemail:// or
# filemail:///absolute/folder. Without it, dev and the demo write each message as a file
# under var/sent-mail/.
# The SMTP configuration edited in the admin (mailing.SmtpConfiguration) comes first;
# while it is disabled, mail goes through this fallback.
if "EMAIL_URL" in env:
    vars().update(env.email_url("EMAIL_URL"))
elif IS_PRODUCTION:
    # Never "send" to a file in production: an unconfigured server fails, and is logged.
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = BASE_DIR / "var" / "sent-mail"
EMAIL_FALLBACK_BACKEND = EMAIL_BACKEND
# The SMTP password set in the admin is stored encrypted (mailing/passwords.py) with these
# Fernet keys: the first encrypts, all decrypt. To rotate, put a new key first, run
# `manage.py smtp_password_reencrypt`, then drop the old one (README, "Keys and their backup").
SMTP_PASSWORD_KEYS: list[str] = key_rules.smtp_password_keys_check(
    SMTP_PASSWORD_KEYS, production=IS_PRODUCTION
)
EMAIL_BACKEND = "mailing.backend.ConfiguredEmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="cash-office@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The longest a delivery waits on each step of an SMTP conversation; the timeout set in
# the admin is capped to it, so a hanging server holds one delivery seconds, not minutes.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# A message left "sending" (its delivery died: kill -9, a time limit, a lost database) is
# sent again, with the same Message-ID, once this has passed: longer than any delivery runs.
EMAIL_SENDING_GRACE_SECONDS = env.int("EMAIL_SENDING_GRACE_SECONDS", default=15 * 60)
# The most messages one sweep delivers; the rest wait for the next one (every minute).
EMAIL_SWEEP_LIMIT = env.int("EMAIL_SWEEP_LIMIT", default=200)

# Celery. The database is the single source of schedules (django-celery-beat).
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
# django-celery-results' "django-db" backend, retrying a write while the database is away
# and sending the message back to the queue if it stays away (project/celery_recovery.py).
CELERY_RESULT_BACKEND = "project.celery_recovery:DatabaseBackend"
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
# Up to 5 s between tries (random, growing from 10 ms), about two minutes in all: a
# database restart is waited out, a longer outage hands the message back to the broker.
CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS = 5_000
CELERY_RESULT_BACKEND_MAX_RETRIES = 60
CELERY_RESULT_EXTENDED = True
# Task results (what Flower and the admin show of each run) are kept 30 days, time to look
# into last month's failures; beat's daily celery.backend_cleanup deletes older ones.
CELERY_RESULT_EXPIRES = dt.timedelta(days=30)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
# django-celery-beat's DatabaseScheduler, recording a heartbeat and the runs it could not send.
CELERY_BEAT_SCHEDULER = "tasks.scheduler:HeartbeatDatabaseScheduler"
# Every worker runs the watchdog this often (tasks/watchdog.py); 0 turns it off.
WATCHDOG_INTERVAL_SECONDS = env.int("WATCHDOG_INTERVAL_SECONDS", default=60)
CELERY_BEAT_SCHEDULE: dict = {}
# Limits: soft < hard < the Redis visibility timeout, or a long task still running would be
# handed to a second worker. Tasks may set tighter limits of their own.
CELERY_TASK_SOFT_TIME_LIMIT = 20 * 60
CELERY_TASK_TIME_LIMIT = 25 * 60
REDIS_VISIBILITY_TIMEOUT = 2 * 60 * 60
# A broker that accepts the connection and never answers (a hung Redis, a dead peer behind a
# NAT or a proxy) fails every call within this many seconds instead of hanging it: `--enqueue`
# exits 5, a worker reconnects. The worker's polling waits 1 s (kombu's brpop_timeout).
BROKER_SOCKET_TIMEOUT = 5
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_SOCKET_TIMEOUT
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": REDIS_VISIBILITY_TIMEOUT,
    "socket_connect_timeout": BROKER_SOCKET_TIMEOUT,
    "socket_timeout": BROKER_SOCKET_TIMEOUT,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker restart must not kill the worker (project/celery_recovery.py says why).
CELERY_WORKER_CONSUMER = "project.celery_recovery:Consumer"
# Tasks running when the broker connection drops finish their run and acknowledge over
# the new connection. (Cancelling them, Celery 6's default, would stop an operation
# half-way only for it to start over.)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
    "loggers": {
        name: {
            "handlers": ["console"],
            "level": env.str("APP_LOG_LEVEL", default="INFO"),
            "propagate": False,
        }
        for name in ("auditing", "mailing", "payments", "reporting", "tasks")
    },
}
