"""Refresh each app's French catalogue (`make messages`, or `scripts/messages.py APP ...`):
extract with makemessages, run from inside the app so that each app keeps its own
strings, then compile.

Django is set up before moving into an app folder, so that `mailing/tasks.py` can never
shadow the `tasks` app.
"""

import os
import sys
from pathlib import Path

import django
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
APPS = ("auditing", "mailing", "payments", "reporting", "tasks", "backoffice")

sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()
for app in sys.argv[1:] or APPS:
    if not (ROOT / app / "locale").is_dir():
        continue
    os.chdir(ROOT / app)
    call_command("makemessages", locale=["fr"], verbosity=0)
    call_command("compilemessages", locale=["fr"], verbosity=0)
