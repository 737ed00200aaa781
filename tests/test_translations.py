"""Every text the admin shows has a French translation.

The checks, from the cheapest:

- the catalogues: every entry of every app's French .po is translated, none is fuzzy, and
  the compiled .mo holds exactly what the .po says (a forgotten ``msgfmt`` shows here),
  no msgid is there twice, and the French shown is ours (not another catalogue's);
- what the code declares: for every model and admin of our apps (app names, model and
  field names, help texts, choices, actions, filters, columns, inlines, form fields), the
  text is marked for translation and French gives another text, unless it is one of the
  few words French spells the same;
- what the pages render: a superuser with a French browser opens every admin page of our
  apps (the index, each app, each list, add, change, history and delete pages of a real
  object, and the custom pages of ``get_urls``) while every catalogue lookup that misses
  the French catalogue is noted; each page is also opened in English, and a heading,
  label, header, button or action name that reads the same in both is a text nobody
  marked for translation.

The checks find the pages and texts by walking ``admin.site``: a model, an admin or a
page added later is covered without touching this file; a model registered without data
to show is reported, so that the seed below grows with the admin.
"""

import gettext as gettext_module
import re
from collections import defaultdict
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin import SimpleListFilter
from django.contrib.auth import get_user_model
from django.db import models
from django.test import RequestFactory
from django.urls import URLPattern, reverse
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation.trans_real import DjangoTranslation

from auditing.chain import Violation, ViolationKind
from auditing.models import VerificationFinding
from auditing.selectors import ChainHead
from auditing.services import verification_run_finish, verification_run_start
from auditing.verification import VerificationResult
from mailing.models import OutboxSweep, SmtpConfiguration
from payments.demo import demo_seed
from tasks.models import Heartbeat, Incident, IncidentKind

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
OUR_APPS = ("auditing", "mailing", "payments", "reporting", "tasks", "backoffice")

# The only texts allowed to read the same in French: words French spells the same. Say
# why when adding one; a text missing from the catalogues is never one of them.
SAME_IN_FRENCH = frozenset(
    {
        "action",
        "code",
        "commission",
        "commissions",
        "crontabs",  # django-celery-beat's name for its cron schedules
        "description",
        "incident",
        "incidents",
        "message",
        "notes",
        "Message-ID",  # the email header's name
        "port",
        "session",  # a cash session, in the dashboard's and lists' columns
        "signature",
        "table",  # a database table's name
        "total",
        "transactions",  # the report's count of payments, as its CSV names it
    }
)

SAME_IN_FRENCH_LOWER = frozenset(word.lower() for word in SAME_IN_FRENCH)

# Texts that Django or a library looks up and that its own French catalogue lacks, which we
# choose to leave in English: the rendered check ignores these lookups. Prefer translating
# them in our catalogue (tasks/apps.py does so for django-celery-results' menu names).
NOT_OURS_UNTRANSLATED = frozenset()


# The catalogues ------------------------------------------------------------------------


def po_files() -> list[Path]:
    return sorted(ROOT.glob("*/locale/fr/LC_MESSAGES/django.po"))


def _unquote(text: str) -> str:
    return text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")


def po_entries(path: Path) -> list[dict]:
    """Each entry of a .po file: its flags, msgctxt, msgid, msgid_plural and msgstr(s)."""
    entries, entry, key = [], None, None
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = line.strip()
        if not line:
            if entry is not None:
                entries.append(entry)
            entry, key = None, None
            continue
        if entry is None:
            entry = {"flags": set(), "msgstr": {}, "msgctxt": None, "msgid_plural": None}
        if line.startswith("#,"):
            entry["flags"].update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            if isinstance(key, tuple):
                entry["msgstr"][key[1]] += _unquote(line)
            else:
                entry[key] += _unquote(line)
        else:
            keyword, _, value = line.partition(" ")
            match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
            if match or keyword == "msgstr":
                key = ("msgstr", int(match.group(1)) if match else 0)
                entry["msgstr"][key[1]] = _unquote(value)
            else:
                key = keyword
                entry[key] = _unquote(value)
    return [e for e in entries if "msgid" in e]


@pytest.mark.parametrize("po", po_files(), ids=lambda path: path.parts[-5])
def test_every_catalogue_entry_is_translated_and_none_is_fuzzy(po):
    problems = []
    for entry in po_entries(po):
        if entry["msgid"] == "":
            if "fuzzy" in entry["flags"]:
                problems.append("the header is fuzzy")
            continue
        if "fuzzy" in entry["flags"]:
            problems.append(f"fuzzy: {entry['msgid']!r}")
        if not all(entry["msgstr"].values()):
            problems.append(f"no translation: {entry['msgid']!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("po", po_files(), ids=lambda path: path.parts[-5])
def test_every_compiled_catalogue_holds_what_its_po_says(po):
    with po.with_suffix(".mo").open("rb") as mo:
        compiled = gettext_module.GNUTranslations(mo)._catalog
    expected = {}
    for entry in po_entries(po):
        if entry["msgid"] == "" or "fuzzy" in entry["flags"]:
            continue
        msgid = entry["msgid"]
        if entry["msgctxt"] is not None:
            msgid = f"{entry['msgctxt']}\x04{msgid}"
        if entry["msgid_plural"] is None:
            expected[msgid] = entry["msgstr"][0]
        else:
            for index, text in entry["msgstr"].items():
                expected[(msgid, index)] = text
    compiled = {key: text for key, text in compiled.items() if key != ""}
    missing = sorted(str(key) for key in expected.keys() - compiled.keys())
    stale = sorted(
        str(key) for key in expected if key in compiled and compiled[key] != expected[key]
    )
    assert (missing, stale) == ([], []), f"run msgfmt on {po.relative_to(ROOT)}"


@pytest.mark.parametrize("po", po_files(), ids=lambda path: path.parts[-5])
def test_no_catalogue_holds_an_entry_twice(po):
    seen = defaultdict(int)
    for entry in po_entries(po):
        seen[(entry["msgctxt"], entry["msgid"])] += 1
    assert [key for key, count in seen.items() if count > 1] == []


@pytest.mark.parametrize("po", po_files(), ids=lambda path: path.parts[-5])
def test_every_catalogue_translation_is_the_one_shown(po):
    """Django merges every catalogue into one, and the first app in INSTALLED_APPS wins a
    msgid two of them hold: a text of ours that Django's own catalogue (or another app's)
    translates otherwise would show that other translation."""
    shown_otherwise = []
    with translation.override("fr"):
        for entry in po_entries(po):
            if entry["msgid"] and entry["msgctxt"] is None and entry["msgid_plural"] is None:
                shown = translation.gettext(entry["msgid"])
                if shown != entry["msgstr"][0]:
                    shown_otherwise.append(f"{entry['msgid']!r}: {shown!r}")
    assert not shown_otherwise, "\n".join(shown_otherwise)


# What the code declares ----------------------------------------------------------------


def _text_problem(value) -> str | None:
    """Why ``value`` would show untranslated in French, or None."""
    if not isinstance(value, Promise):
        return "not marked for translation"
    with translation.override("en"):
        english = str(value)
    with translation.override("fr"):
        french = str(value)
    if french == english and english not in SAME_IN_FRENCH:
        return "no French translation"
    return None


def _ours(obj) -> bool:
    return type(obj).__module__.split(".")[0] in OUR_APPS


def our_model_admins():
    """The admins of our apps' models, and the admins our apps register for other models
    (the back office's own admin of groups or schedules)."""
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in OUR_APPS or _ours(model_admin)
    ]


def _model_texts(model):
    opts = model._meta
    yield f"{opts.label} verbose_name", opts.verbose_name
    yield f"{opts.label} verbose_name_plural", opts.verbose_name_plural
    for field in opts.get_fields():
        if field.auto_created:
            continue  # the primary key's "ID" and the reverse relations
        if field.model._meta.app_label not in OUR_APPS:
            continue  # a proxy's inherited field: its admin names what it shows (below)
        yield f"{opts.label}.{field.name} verbose_name", field.verbose_name
        if field.help_text:
            yield f"{opts.label}.{field.name} help_text", field.help_text
        for value, label in field.flatchoices or ():
            if label != value:  # a code shown as it is stored (a currency) is no word
                yield f"{opts.label}.{field.name} choice {value!r}", label
    for constraint in opts.constraints:
        message = getattr(constraint, "violation_error_message", None)
        if message and message != constraint.default_violation_error_message:
            yield f"{opts.label} constraint {constraint.name}", message


def _described(owner, name: str):
    """The description of a column, a read-only field or an action named ``name``."""
    for source in owner:
        attribute = getattr(source, name, None)
        if attribute is not None:
            return getattr(attribute, "short_description", None), True
    return None, False


def _admin_texts(model, model_admin):
    where = type(model_admin).__name__
    request = RequestFactory().get("/admin/")
    request.user = get_user_model()(is_superuser=True, is_staff=True, is_active=True)
    for name, (_func, _name, description) in model_admin.get_actions(request).items():
        if name != "delete_selected":  # Django's own, translated by Django
            yield f"{where} action {name}", description
    for entry in model_admin.list_filter:
        if isinstance(entry, type) and issubclass(entry, SimpleListFilter):
            yield f"{where} filter {entry.__name__} title", entry.title
            for value, label in entry(request, {}, model, model_admin).lookup_choices:
                yield f"{where} filter {entry.__name__} choice {value!r}", label
    field_names = {field.name for field in model._meta.get_fields()}
    columns = [
        *model_admin.list_display,
        *model_admin.get_readonly_fields(request),
    ]
    for column in columns:
        if callable(column):
            yield (
                f"{where} column {column.__name__}",
                getattr(column, "short_description", None),
            )
        elif column not in field_names and column != "__str__":
            description, found = _described((model_admin, model), column)
            if found:
                yield f"{where} column {column}", description
    form = model_admin.form
    for name, field in getattr(form, "declared_fields", {}).items():
        if field.label is not None:
            yield f"{where} form field {name} label", field.label
        if field.help_text:
            yield f"{where} form field {name} help_text", field.help_text
    for inline in model_admin.inlines:
        for attribute in ("verbose_name", "verbose_name_plural"):
            if attribute in vars(inline) and vars(inline)[attribute] is not None:
                yield f"{inline.__name__} {attribute}", vars(inline)[attribute]


def declared_texts():
    for app_label in OUR_APPS:
        config = apps.get_app_config(app_label)
        yield f"app {app_label} verbose_name", config.verbose_name
        for model in config.get_models():
            yield from _model_texts(model)
    for model, model_admin in our_model_admins():
        yield from _admin_texts(model, model_admin)


def test_every_declared_admin_text_is_marked_and_translated_into_french():
    problems = [
        f"{where}: {value!r} {problem}"
        for where, value in declared_texts()
        if (problem := _text_problem(value)) is not None
    ]
    assert not problems, "\n".join(problems)


def test_the_declared_texts_are_found():
    """The walk above sees the admin: a broken walk must not pass silently."""
    texts = dict(declared_texts())
    assert texts["payments.CashSession.discrepancy verbose_name"] == "discrepancy"
    assert "app tasks verbose_name" in texts
    assert any(where.endswith("title") for where in texts)
    assert any(" action " in where for where in texts)


# What the pages render -----------------------------------------------------------------


@pytest.fixture
def seeded(run_command, settings):
    """A month of the demo's history, the four operations run once on it, and the records
    only faults create (a tampered run, an incident), so that every list has rows and
    every change page has an object."""
    settings.ADMINS = [("Admin", "admin@example.com")]
    demo_seed(now=timezone.now())
    for command in (
        ("sync_schedules",),
        ("close_expired_sessions",),
        ("generate_commission_report", "--email", "boss@example.com"),
        ("verify_audit_trail",),
        ("reconciliation_reminder", "--email-admins"),
    ):
        run_command(*command, expect_exit=None)
    run = verification_run_start(
        started_at=timezone.now(),
        trigger="manual",
        full=True,
        range_start=None,
        range_end=None,
        head=ChainHead(sequence=2, current_hash="a" * 64),
    )
    verification_run_finish(
        run=run,
        result=VerificationResult(
            entries_checked=2, first_sequence=1, last_sequence=2, ranges=[(1, 2)]
        ),
        violations=[
            Violation(
                kind=ViolationKind.CONTENT_MISMATCH,
                sequence=1,
                detail="the entry's content does not match its stored hash",
                expected="a" * 64,
                stored="b" * 64,
            ),
            Violation(
                kind=ViolationKind.ENFORCEMENT_OFF,
                sequence=None,
                detail="auditing_auditentry: trigger t is disabled",
            ),
        ],
        duration_ms=3,
    )
    Heartbeat.objects.get_or_create(name="beat", defaults={"beat_at": timezone.now()})
    Incident.objects.create(
        kind=IncidentKind.JOB_OVERDUE,
        subject="verify_audit_trail",
        opened_at=timezone.now(),
        detail={"due_at": "2026-11-20T03:00:00+03:00"},
    )
    OutboxSweep.load()
    SmtpConfiguration.load()
    assert VerificationFinding.objects.exists()


@pytest.fixture
def french_misses(monkeypatch):
    """Every msgid looked up in French and missing from the French catalogue, with the
    page it was looked up for (``misses.page`` names the page being rendered)."""

    class Misses(dict):
        page = "?"

        def note(self, msgid: str) -> None:
            self.setdefault(msgid, set()).add(self.page)

    misses = Misses()
    plain_gettext = DjangoTranslation.gettext
    plain_ngettext = DjangoTranslation.ngettext

    def gettext(self, message):
        if self.language() == "fr" and message and message not in self._catalog:
            misses.note(message)
        return plain_gettext(self, message)

    def ngettext(self, singular, plural, number):
        if self.language() == "fr" and (singular, 0) not in self._catalog:
            misses.note(singular)
        return plain_ngettext(self, singular, plural, number)

    monkeypatch.setattr(DjangoTranslation, "gettext", gettext, raising=False)
    monkeypatch.setattr(DjangoTranslation, "ngettext", ngettext)
    return misses


def _without_arguments(pattern: URLPattern) -> bool:
    return not pattern.pattern.converters and not re.search(r"\(\?P?<", str(pattern.pattern))


def _object_pattern(pattern: URLPattern) -> bool:
    """A page of one object: its one argument is given the first object's key."""
    return len(pattern.pattern.converters) == 1


def admin_pages() -> list[tuple[str, str]]:
    """(what, url) of every admin page of our apps worth opening with a GET."""
    pages = [("index", reverse("admin:index"))]
    labels = sorted({model._meta.app_label for model, _admin in our_model_admins()})
    pages += [(f"{label} index", reverse("admin:app_list", args=[label])) for label in labels]
    for model, model_admin in our_model_admins():
        opts = model._meta
        name = f"admin:{opts.app_label}_{opts.model_name}"
        pages.append((f"{opts.label} list", reverse(f"{name}_changelist")))
        pages.append((f"{opts.label} add", reverse(f"{name}_add")))
        keys = representatives(model)
        if not keys:
            pages.append((f"{opts.label}: nothing seeded", ""))
            continue
        pages += [
            (f"{opts.label} {view}", reverse(f"{name}_{view}", args=[keys[0]]))
            for view in ("history", "delete")
        ]
        pages += [
            (f"{opts.label} change #{key}", reverse(f"{name}_change", args=[key])) for key in keys
        ]
        standard = {f"{opts.app_label}_{opts.model_name}_{view}" for view in STANDARD_VIEWS}
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            if pattern.name in standard:
                continue
            if _without_arguments(pattern):
                pages.append((f"{opts.label} {pattern.name}", reverse(f"admin:{pattern.name}")))
            elif _object_pattern(pattern):
                argument = next(iter(pattern.pattern.converters))
                pages += [
                    (
                        f"{opts.label} {pattern.name} #{key}",
                        reverse(f"admin:{pattern.name}", kwargs={argument: key}),
                    )
                    for key in keys
                ]
    return pages


def representatives(model) -> list:
    """The keys of a few objects that together show each state: the first object, and the
    first of each value of every field with choices or a yes/no answer (an open, a closed
    and a reconciled session; an intact and a tampered run)."""
    manager = model._default_manager.order_by("pk")
    keys = list(manager.values_list("pk", flat=True)[:1])
    for field in model._meta.concrete_fields:
        if field.choices or isinstance(field, models.BooleanField):
            for value in manager.order_by().values_list(field.attname, flat=True).distinct():
                key = manager.filter(**{field.attname: value}).values_list("pk", flat=True)[0]
                if key not in keys:
                    keys.append(key)
    return keys


class PageWords(HTMLParser):
    """The texts a page names things with: headings, column and row names, labels, help
    texts, buttons and the actions' names. Values (cells, the object's name in a list's
    first column, fields' contents) are left out: data reads the same in every language."""

    NAMING = {"h1", "h3", "th", "label", "legend", "button", "caption"}
    EMPTY = {"input", "br", "img", "meta", "link", "hr", "col", "source"}

    def __init__(self) -> None:
        super().__init__()
        self.words: set[str] = set()
        self._open: list[tuple[str, bool]] = []  # (tag, names something)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "input" and attrs.get("type") == "submit" and attrs.get("value"):
            self.words.add(attrs["value"])
        if tag in self.EMPTY:
            return
        inherited = bool(self._open) and self._open[-1][1]
        naming = inherited or "help" in classes
        if tag in self.NAMING:
            # A list's first column is a <th class="field-..."> holding the object's name.
            naming = not any(name.startswith("field-") for name in classes)
        if tag == "option":
            naming = attrs.get("value") != "" and self._parent_is("action")
        name = "action" if tag == "select" and attrs.get("name") == "action" else tag
        self._open.append((name, naming))

    def _parent_is(self, name: str) -> bool:
        return bool(self._open) and self._open[-1][0] == name

    def handle_endtag(self, tag):
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag or (
                tag == "select" and self._open[index][0] == "action"
            ):
                del self._open[index:]
                return

    def handle_data(self, data):
        if self._open and self._open[-1][1]:
            self.words.add(data)


def page_words(html: str) -> set[str]:
    """The naming texts of a page that hold a word (three letters or more)."""
    parser = PageWords()
    parser.feed(html)
    texts = {" ".join(text.split()).strip(" :") for text in parser.words}
    return {text for text in texts if re.search(r"[A-Za-z]{3}", text)}


STANDARD_VIEWS = ("changelist", "add", "history", "delete", "change")


def test_every_admin_page_renders_in_french_without_a_missing_translation(
    seeded, client, french_misses
):
    superuser = get_user_model().objects.create_superuser(
        username="translator", email="translator@example.com", password="pw"
    )
    client.force_login(superuser)
    problems = []
    unchanged = {}  # naming texts that read the same in both languages: the pages
    visited = 0
    for what, url in admin_pages():
        if not url:
            problems.append(f"{what}: seed one in this test's `seeded` fixture")
            continue
        french_misses.page = what
        response = client.get(url, headers={"accept-language": "fr"}, follow=True)
        if response.status_code >= 500:
            problems.append(f"{what}: {url} answered {response.status_code}")
        if response.streaming:
            b"".join(response.streaming_content)  # a download: its texts are looked up now
        elif response.status_code == 200 and response["Content-Type"].startswith("text/html"):
            visited += 1
            english = client.get(url, headers={"accept-language": "en"}, follow=True)
            same = page_words(response.content.decode()) & page_words(english.content.decode())
            for word in same:
                if word.lower() not in SAME_IN_FRENCH_LOWER:
                    unchanged.setdefault(word, set()).add(what)
    missing = {
        msgid: pages for msgid, pages in french_misses.items() if msgid not in NOT_OURS_UNTRANSLATED
    }
    problems += [
        f"{msgid!r} has no French translation (on: {', '.join(sorted(pages))})"
        for msgid, pages in sorted(missing.items())
    ]
    problems += [
        f"{text!r} reads the same in French: not marked for translation? (on: "
        f"{', '.join(sorted(pages)[:5])}{', ...' if len(pages) > 5 else ''})"
        for text, pages in sorted(unchanged.items())
    ]
    assert not problems, "\n".join(problems)
    assert visited > 50


def test_a_page_in_french_is_french(client, admin_user):
    """The check above only means something if a French browser gets French pages."""
    client.force_login(admin_user)
    response = client.get(
        reverse("admin:payments_cashsession_changelist"), headers={"accept-language": "fr"}
    )
    page = response.content.decode()
    assert "Sessions de caisse" in page
    assert "Paiements en espèces" in page
    assert "Cash sessions" not in page


# Small texts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "example"),
    [
        ("en", "Cash office &lt;cash-office@example.com&gt;"),
        ("fr", "Bureau de caisse &lt;bureau-caisse@example.com&gt;"),
    ],
)
def test_the_from_address_help_keeps_its_example_on_the_edit_and_the_read_only_page(
    client, admin_user, django_user_model, language, example
):
    """The admin renders help texts as HTML: the example's angle brackets must arrive
    escaped, or the browser takes the address for a tag and shows nothing."""
    from django.contrib.auth.models import Permission

    configuration = SmtpConfiguration.load()
    url = reverse("admin:mailing_smtpconfiguration_change", args=[configuration.pk])
    viewer = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_smtpconfiguration"))
    for user, editable in ((admin_user, True), (viewer, False)):
        client.force_login(user)
        page = client.get(url, headers={"accept-language": language}).content.decode()
        assert example in page
        assert ('name="from_email"' in page) is editable


def test_a_cash_session_refusal_reads_in_one_language(admin_user):
    """A service's refusal is an English sentence: the status inside it stays English
    whatever language the admin's request runs in."""
    from payments.services import PaymentsError, transaction_record
    from tests.factories import CashSessionFactory

    session = CashSessionFactory(closed=True)
    with translation.override("fr"), pytest.raises(PaymentsError) as refusal:
        transaction_record(
            session=session,
            payer_reference="NIF-1",
            tax_amount=Decimal("100.00"),
            amount_tendered=Decimal("100.00"),
            actor=admin_user,
        )
    assert f"Session {session.number} is closed;" in str(refusal.value)


# The French alert ----------------------------------------------------------------------


def test_the_french_tampering_alert_names_every_violation_kind_in_french(settings):
    """Every kind a verification can find, as the alert's French reader sees it: in words
    of the French catalogue, never the English label nor the stored code."""
    from tasks.audit_emails import tampering_alert_queue

    settings.LANGUAGE_CODE = "fr"
    when = timezone.now()
    fields = {
        ViolationKind.GAP: {"sequence": 9, "expected": "8", "stored": "9"},
        ViolationKind.TRUNCATED: {"sequence": 20, "expected": "21", "stored": "19"},
        ViolationKind.UNKNOWN_KEY: {"sequence": 3, "stored": "k9"},
        ViolationKind.CHECKPOINT_MISMATCH: {"sequence": 4, "expected": "a" * 64, "stored": ""},
        ViolationKind.CHECKPOINT_INVALID: {"sequence": None, "reference": "cp.json"},
        ViolationKind.ENFORCEMENT_OFF: {"sequence": None},
        ViolationKind.ROW_DIFFERS: {"sequence": 5, "table": "t", "row": "1", "field": "f"},
        ViolationKind.ROW_NOT_AUDITED: {"sequence": None, "table": "t", "row": "2"},
        ViolationKind.AUDITED_ROW_MISSING: {"sequence": 6, "table": "t", "row": "3"},
    }
    violations = [
        Violation(
            kind=kind,
            detail="as the verifier wrote it",
            timestamp=when,
            **{"sequence": position, **fields.get(kind, {})},
        )
        for position, kind in enumerate(ViolationKind, start=1)
    ]
    run = verification_run_start(
        started_at=when,
        trigger="beat",
        full=True,
        range_start=None,
        range_end=None,
        head=ChainHead(sequence=30, current_hash="a" * 64),
    )
    run = verification_run_finish(
        run=run,
        result=VerificationResult(
            entries_checked=30, first_sequence=1, last_sequence=30, ranges=[(1, 30)]
        ),
        violations=violations,
        duration_ms=1,
    )

    email_id = tampering_alert_queue(
        run=run,
        recipients=["security@example.com"],
        head=ChainHead(sequence=30, current_hash="a" * 64),
        last_good=None,
    )

    from mailing.models import EmailMessage

    email = EmailMessage.objects.get(pk=email_id)
    for kind in ViolationKind:
        label = VerificationFinding.KIND_LABELS[kind]
        with translation.override("en"):
            english = str(label)
        with translation.override("fr"):
            french = str(label)
        assert french != english
        for body in (email.body_text, email.body_html):
            assert french.replace("'", "&#x27;" if body is email.body_html else "'") in body
            assert english not in body
            assert f" {kind.value}" not in body
