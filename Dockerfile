FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY project ./project
COPY payments ./payments
COPY auditing ./auditing
COPY mailing ./mailing
COPY reporting ./reporting
COPY tasks ./tasks
COPY backoffice ./backoffice
COPY scripts ./scripts
COPY manage.py ./
# Static files are collected with the development settings: they hash and compress exactly
# as production does (the same STORAGES), and need none of production's secrets, which an
# image must never hold.
RUN pip install . \
    && DJANGO_ENV=dev python manage.py collectstatic --no-input \
    && useradd --system --uid 1000 app
USER app

EXPOSE 8000
CMD ["gunicorn", "project.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
