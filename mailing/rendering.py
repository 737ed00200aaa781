"""Every email and in-app text is rendered from templates, in the email language.

A message named ``<name>`` has ``<name>.subject.txt`` (one line), ``<name>.txt`` and
``<name>.html``; an agent's in-app notification adds ``<name>.message.txt``.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body_text: str
    body_html: str


def email_language() -> str:
    """The language of every email and notification: settings.LANGUAGE_CODE when it is one
    of LANGUAGES, else English, the source language, so that a text never mixes two
    languages (Django's own catalogue would translate only the month names)."""
    try:
        return translation.get_supported_language_variant(settings.LANGUAGE_CODE)
    except LookupError:
        return "en"


def text_render(*, template: str, context: Mapping[str, Any]) -> str:
    """One template rendered in the email language, whatever language the caller has
    active (an admin request may run in the browser's language)."""
    with translation.override(email_language()):
        return render_to_string(template, dict(context))


def subject_render(*, template: str, context: Mapping[str, Any]) -> str:
    """``<template>.subject.txt`` as one line: a subject never carries a line break."""
    return " ".join(text_render(template=f"{template}.subject.txt", context=context).split())


def email_render(*, template: str, context: Mapping[str, Any]) -> RenderedEmail:
    return RenderedEmail(
        subject=subject_render(template=template, context=context),
        body_text=text_render(template=f"{template}.txt", context=context),
        body_html=text_render(template=f"{template}.html", context=context),
    )
