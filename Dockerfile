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
RUN pip install . \
    && DJANGO_ENV=production SECRET_KEY=build-only AUDIT_CHAIN_KEY=build-only \
       python manage.py collectstatic --no-input \
    && useradd --system --uid 1000 app
USER app

EXPOSE 8000
CMD ["gunicorn", "project.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
