"""Emails and in-app notifications speak settings.LANGUAGE_CODE (French in production),
whatever language the caller has active; English is the source and the fallback. Amounts
keep their currency code and times are shown in TIME_ZONE (Indian/Antananarivo, UTC+3)."""

import ast
import datetime as dt
import gettext
import re
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import translation

from auditing.services import audit_entry_append
from mailing.services import smtp_test_send
from payments.models import CashSession, Notification, NotificationKind
from payments.services import (
    session_close,
    session_close_automatically,
    session_open,
    transaction_record,
)
from tests.auditing.tampering import (
    delete_entries,
    disable_append_only_trigger,
    enable_append_only_trigger,
    set_column,
)
from tests.factories import (
    AgentFactory,
    CashSessionFactory,
    CashTransactionFactory,
    StaffUserFactory,
)
from tests.reporting.helpers import takings

pytestmark = pytest.mark.django_db

LOCAL = ZoneInfo("Indian/Antananarivo")
PROJECT_DIR = Path(settings.BASE_DIR)
CATALOGS = [
    PROJECT_DIR / app / "locale" / "fr" / "LC_MESSAGES"
    for app in ("payments", "reporting", "auditing")
]
# Words that only an English text has: none may be left in a French email.
ENGLISH = re.compile(r"\b(the|Hello|not counted|Please|Expected|closed|issues?|report)\b")


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LOCAL)


def bodies(mail) -> tuple[str, str]:
    [(html, mimetype)] = mail.alternatives
    assert mimetype == "text/html"
    return mail.body, html


def assert_french(*texts: str) -> None:
    for text in texts:
        assert not ENGLISH.search(text), ENGLISH.search(text)


@pytest.fixture
def french(settings):
    settings.LANGUAGE_CODE = "fr"


@pytest.fixture
def run(run_command):
    """Run a command at ``when`` and deliver what it queued; return its stdout."""

    def run_at(name: str, *args: str, when: dt.datetime, expect_exit: int = 0) -> str:
        with time_machine.travel(when, tick=False):
            return run_command(name, *args, expect_exit=expect_exit).stdout

    return run_at


# close_expired_sessions ---------------------------------------------------------------

CLOSE_AT = local(2026, 3, 10, 15, 0)


def expired_session(**kwargs) -> CashSession:
    """Opened at 02:00 local (23:00 UTC the day before), past the 12 h timeout at 15:00."""
    return CashSessionFactory(
        opened_at=local(2026, 3, 10, 2, 0), opening_balance=Decimal("25000.00"), **kwargs
    )


def auto_close(run, **kwargs) -> tuple[CashSession, list]:
    session = expired_session(**kwargs)
    run("close_expired_sessions", when=CLOSE_AT)
    return session, list(Notification.objects.filter(session=session))


def test_an_auto_closed_session_is_announced_in_french_with_local_times_and_currency(
    french, run, mailoutbox
):
    agent = AgentFactory(full_name="Rova Rakoto", email="rova@agents.example.com")
    session, [notification] = auto_close(run, agent=agent)

    [mail] = mailoutbox
    assert mail.subject == f"Session {session.number} clôturée automatiquement le 2026-03-10"
    text, html = bodies(mail)
    for body in (text, html):
        assert "Bonjour Rova Rakoto," in body
        assert f"Votre session de caisse {session.number}, ouverte le 2026-03-10 02:00" in body
        assert "Le système l'a clôturée le 2026-03-10 15:00 (Indian/Antananarivo)." in body
        assert "25\N{NO-BREAK SPACE}000,00 MGA" in body
        assert "2026-03-09 23:00" not in body  # the UTC opening time
    assert "Espèces attendues en caisse : 25\N{NO-BREAK SPACE}000,00 MGA" in text
    assert "Montant compté : non compté" in text
    assert "<em>non compté</em>" in html
    assert '<html lang="fr">' in html
    assert "Les heures sont indiquées dans le fuseau horaire Indian/Antananarivo." in html
    assert_french(text, html, mail.subject)

    assert notification.title == mail.subject
    assert notification.message == (
        "Clôturée automatiquement le 2026-03-10 15:00 (Indian/Antananarivo) : ouverte depuis "
        "13,0 h, au-delà de la limite de 12 h. Espèces non comptées : veuillez les apporter "
        "à votre administrateur."
    )
    # The session's own record stays in English, like the rest of the stored data.
    session.refresh_from_db()
    assert "Cash not counted." in session.closing_notes


def test_an_expired_session_with_payments_gets_a_french_notice_and_in_app_message(
    french, run, mailoutbox
):
    session = expired_session()
    CashTransactionFactory(session=session, tax_amount=Decimal("5000.00"))

    run("close_expired_sessions", when=CLOSE_AT)

    [mail] = mailoutbox
    assert mail.subject == (
        f"Session {session.number} expirée le 2026-03-10 : comptez les espèces et clôturez-la"
    )
    text, html = bodies(mail)
    assert "a dépassé la limite de 12 heures et ne peut plus recevoir de paiements" in text
    assert "Paiements enregistrés : 1" in text
    assert "Espèces attendues en caisse : 30\N{NO-BREAK SPACE}000,00 MGA" in text
    assert "Veuillez compter vos espèces et clôturer la session dès maintenant." in html
    assert_french(text, html)
    [notification] = Notification.objects.filter(kind=NotificationKind.SESSION_EXPIRED)
    assert notification.title == mail.subject
    assert notification.message == (
        f"La session {session.number} a dépassé la limite de 12 h avec 1 paiement enregistré. "
        "Comptez les espèces et clôturez-la."
    )


def test_an_agent_without_an_address_gets_the_french_in_app_notification_only(
    french, run, mailoutbox
):
    session, [notification] = auto_close(run, agent=AgentFactory(email=""))

    assert mailoutbox == []
    assert notification.title == f"Session {session.number} clôturée automatiquement le 2026-03-10"
    assert notification.message.startswith("Clôturée automatiquement le 2026-03-10 15:00")


# generate_commission_report -----------------------------------------------------------

REPORT_AT = local(2026, 11, 2, 9, 0)


@pytest.fixture
def october(config):
    """One agent's October: 10,000 paid commission, 20,000 at 23:30 local on the 31st
    (20:30 UTC, still October) pending, 5,000 voided."""
    agent = AgentFactory(code="AG0001", full_name="Hery Rakoto")
    takings(agent, local(2026, 10, 5, 10, 0), "10000.00", "5000.00", void=[1], paid=[0])
    takings(agent, local(2026, 10, 31, 23, 30), "20000.00")
    return agent


def test_the_commission_report_is_french_with_the_month_name_amounts_and_local_times(
    french, october, run, mailoutbox
):
    run("generate_commission_report", "--email", "chef@example.com", when=REPORT_AT)

    [mail] = mailoutbox
    assert mail.subject == "Rapport des commissions \N{EM DASH} octobre 2026"
    text, html = bodies(mail)
    assert text.startswith("Rapport des commissions \N{EM DASH} octobre 2026\n")
    assert (
        "Période : du 1 octobre 2026 au 31 octobre 2026 inclus, heure locale "
        "(Indian/Antananarivo)." in text
    )
    assert "Généré le 2026-11-02 09:00 (Indian/Antananarivo)." in text  # 06:00 UTC
    assert "VUE D'ENSEMBLE" in text
    assert "Transactions (paiements effectués) : 2" in text
    assert "Paiements annulés (non comptés) : 1" in text
    assert "Taxes perçues : 30\N{NO-BREAK SPACE}000,00 MGA" in text
    assert "Total des commissions (acquises = en attente + payées) : 600,00 MGA" in text
    assert "En attente : 1 commission, 400,00 MGA" in text
    assert "Payée : 1 commission, 200,00 MGA" in text
    assert "Annulée : 1 commission, 100,00 MGA" in text
    assert "Commission acquise : 600,00 MGA (en attente 400,00 MGA, payée 200,00 MGA)" in text
    assert (
        '<h2 style="color: #12355b;">Rapport des commissions \N{EM DASH} octobre 2026</h2>' in html
    )
    assert "<h3>Par agent partenaire</h3>" in html
    assert "<strong>600,00 MGA</strong>" in html
    assert_french(mail.subject, text, html)


# verify_audit_trail -------------------------------------------------------------------

VERIFY_AT = local(2026, 5, 20, 10, 0)


@pytest.fixture
def tampered_chain():
    """Three entries at 12:00 local (09:00 UTC) on 1-3 May; the second one's data changed."""
    for day in (1, 2, 3):
        with time_machine.travel(local(2026, 5, day, 12, 0), tick=False):
            audit_entry_append(action="test.event", actor=None, data={"n": day})
    disable_append_only_trigger()
    set_column(2, "data", {"n": 2, "amount": "1.00"})
    enable_append_only_trigger()


def test_the_tampering_alert_is_french_with_the_count_the_date_and_local_times(
    french, tampered_chain, run, mailoutbox
):
    StaffUserFactory(email="zoe.admin@example.com")

    # Exit 3: tampering found.
    run("verify_audit_trail", "--alert-on-tampering", when=VERIFY_AT, expect_exit=3)

    [mail] = mailoutbox
    assert mail.subject == (
        "[ALERTE] Falsification de la piste d'audit détectée le 2026-05-20 \N{EM DASH} 1 anomalie"
    )
    text, html = bodies(mail)
    assert text.startswith("FALSIFICATION DE LA PISTE D'AUDIT DÉTECTÉE\n")
    assert (
        "du 2026-05-20 10:00 a trouvé 1 anomalie dans la piste d'audit "
        "(du 2026-04-20 au 2026-05-20, date de fin incluse)." in text
    )
    assert "Horodatage : 2026-05-02 12:00:00" in text
    assert "le contenu de l'entrée ne correspond pas à son empreinte stockée." in text
    # The kind in words, in the email's language; its code only in the attached CSV.
    assert "contenu non conforme (l'entrée a été modifiée)" in text
    assert "content_mismatch" not in text
    assert "<td>2026-05-02 12:00:00</td>" in html
    assert "Conservez une copie de la base de données" in html
    assert_french(mail.subject, text, html)


def test_the_alert_explains_each_violation_in_french_from_its_stored_fields(
    french, tampered_chain, run, mailoutbox
):
    StaffUserFactory(email="zoe.admin@example.com")
    for day in (4, 5, 6):
        with time_machine.travel(local(2026, 5, day, 12, 0), tick=False):
            audit_entry_append(action="test.event", actor=None, data={"n": day})
    disable_append_only_trigger()
    delete_entries(4, 5)
    enable_append_only_trigger()

    run("verify_audit_trail", "--alert-on-tampering", when=VERIFY_AT, expect_exit=3)

    [mail] = mailoutbox
    assert mail.subject.endswith("\N{EM DASH} 3 anomalies")
    text, html = bodies(mail)
    assert "les entrées 4 à 5 sont manquantes." in text
    assert "previous_hash ne correspond pas à l&#x27;empreinte de l&#x27;entrée précédente." in html
    assert_french(text, html)


# reconciliation_reminder --email-admins -----------------------------------------------

REMIND_AT = local(2026, 11, 25, 8, 0)


def closed(agent, *, opened: dt.datetime, closed_at: dt.datetime, counted: str | None):
    """A session with one 20,000 payment; ``counted=None``: closed automatically, uncounted."""
    with time_machine.travel(opened, tick=False):
        session = session_open(agent=agent, opening_balance=Decimal("10000.00"), actor=agent.user)
        transaction_record(
            session=session,
            payer_reference="NIF-1",
            tax_amount=Decimal("20000.00"),
            amount_tendered=Decimal("20000.00"),
            actor=agent.user,
        )
    with time_machine.travel(closed_at, tick=False):
        if counted is not None:
            return session_close(session=session, counted_cash=Decimal(counted), actor=agent.user)
        with transaction.atomic():
            locked = (
                CashSession.objects.select_for_update().select_related("agent").get(pk=session.pk)
            )
            return session_close_automatically(session=locked, notes="Expired.")


@pytest.fixture
def unreconciled():
    """Hery: one session counted 2,500 short (closed 17:00 local), one uncounted (closed
    06:30 local, 03:30 UTC). Tiana, without an address: one uncounted session."""
    StaffUserFactory(email="boss@example.com")
    hery = AgentFactory(full_name="Hery Rakoto", email="hery@agents.example.com")
    tiana = AgentFactory(full_name="Tiana Randria", email="")
    short = closed(
        hery,
        opened=local(2026, 11, 24, 8, 0),
        closed_at=local(2026, 11, 24, 17, 0),
        counted="27500.00",
    )
    uncounted = closed(
        hery, opened=local(2026, 11, 24, 18, 0), closed_at=local(2026, 11, 25, 6, 30), counted=None
    )
    closed(
        tiana, opened=local(2026, 11, 24, 9, 0), closed_at=local(2026, 11, 24, 20, 0), counted=None
    )
    return {"hery": hery, "tiana": tiana, "short": short, "uncounted": uncounted}


def test_reminders_and_the_admins_summary_are_french_with_not_counted_never_zero(
    french, unreconciled, run, mailoutbox
):
    run("reconciliation_reminder", "--email-admins", when=REMIND_AT)

    [reminder] = [mail for mail in mailoutbox if mail.to == ["hery@agents.example.com"]]
    assert reminder.subject == (
        "Rappel de rapprochement du 2026-11-25 : 2 sessions de caisse en attente"
    )
    text, html = bodies(reminder)
    assert "Bonjour Hery Rakoto," in text
    assert (
        "Les sessions de caisse clôturées suivantes attendent toujours leur rapprochement" in text
    )
    assert (
        f"- {unreconciled['uncounted'].number}, clôturée le 2026-11-25 06:30 (automatiquement)"
        in text
    )
    assert "Écart : non compté" in text
    assert "Écart : -2\N{NO-BREAK SPACE}500,00 MGA" in text
    assert "Solde attendu total : 60\N{NO-BREAK SPACE}000,00 MGA" in text
    assert "Écart total : -2\N{NO-BREAK SPACE}500,00 MGA (1 session non comptée)" in text
    assert "<em>non compté</em>" in html
    assert "2026-11-25 03:30" not in text + html  # the UTC closing time
    assert_french(reminder.subject, text, html)

    [summary] = [mail for mail in mailoutbox if mail.to == ["boss@example.com"]]
    assert (
        summary.subject == "Synthèse des rapprochements du 2026-11-25 : 3 sessions non rapprochées"
    )
    text, html = bodies(summary)
    assert "Action requise : effectuez le rapprochement de ces sessions" in text
    assert "Sessions non comptées : 2" in text
    assert "Montant total non rapproché (solde attendu) : 90\N{NO-BREAK SPACE}000,00 MGA" in text
    assert "Écart total : -2\N{NO-BREAK SPACE}500,00 MGA (2 sessions non comptées)" in text
    assert f"{unreconciled['hery'].code} Hery Rakoto : 2 sessions" in text
    assert "écart non compté" in text
    assert "<em>non compté</em>" in html
    assert_french(summary.subject, text, html)

    [in_app] = Notification.objects.filter(agent=unreconciled["tiana"])
    assert in_app.title == "Rappel de rapprochement du 2026-11-25 : 1 session de caisse en attente"
    assert in_app.message.startswith("Ces sessions clôturées attendent leur rapprochement :")
    assert "Écart total : non compté (1 session non comptée)" in in_app.message
    assert_french(in_app.title, in_app.message)


# The language is the deployment's, not the caller's -----------------------------------


def test_with_language_code_en_the_same_emails_are_english(settings, october, run, mailoutbox):
    settings.LANGUAGE_CODE = "en"

    run("generate_commission_report", "--email", "chef@example.com", when=REPORT_AT)

    [mail] = mailoutbox
    assert mail.subject == "Commission report \N{EM DASH} October 2026"
    text, html = bodies(mail)
    assert "Period: 1 October 2026 to 31 October 2026 inclusive" in text
    assert "Pending: 1 commission, 400.00 MGA" in text
    assert '<html lang="en">' in html
    assert "octobre" not in text + html


def test_an_email_queued_under_another_active_language_still_comes_out_in_language_code(
    french, october, run, mailoutbox
):
    with translation.override("en"):
        run("generate_commission_report", "--email", "chef@example.com", when=REPORT_AT)
        session, [notification] = auto_close(run)

    report, closing = mailoutbox
    assert report.subject == "Rapport des commissions \N{EM DASH} octobre 2026"
    assert "Taxes perçues : 30\N{NO-BREAK SPACE}000,00 MGA" in report.body
    assert closing.subject == f"Session {session.number} clôturée automatiquement le 2026-03-10"
    assert notification.message.startswith("Clôturée automatiquement")


def test_an_english_deployment_is_not_turned_french_by_the_callers_language(
    settings, run, mailoutbox
):
    settings.LANGUAGE_CODE = "en"

    with translation.override("fr"):
        session, [notification] = auto_close(run)

    [mail] = mailoutbox
    assert mail.subject == f"Session {session.number} closed automatically on 2026-03-10"
    assert "Counted cash: not counted" in mail.body
    assert notification.message.startswith("Closed automatically on 2026-03-10 15:00")


def test_the_admins_test_email_is_french_although_the_browser_asks_for_english(
    french, admin_client, mailoutbox
):
    with time_machine.travel(local(2026, 11, 25, 14, 3), tick=False):
        response = admin_client.post(
            reverse("admin:mailing_smtpconfiguration_send_test"),
            {"recipient": "ops@example.com"},
            HTTP_ACCEPT_LANGUAGE="en",
        )

    assert response.status_code == 302
    [mail] = mailoutbox
    assert mail.subject == "Bureau de caisse : e-mail de test \N{EM DASH} 2026-11-25 14:03"
    assert "demandé par admin le 2026-11-25 14:03 (Indian/Antananarivo)" in mail.body
    assert_french(mail.subject, *bodies(mail))


def test_a_language_without_translations_falls_back_to_english_month_names_included(
    settings, october, run, mailoutbox
):
    settings.LANGUAGE_CODE = "de"

    run("generate_commission_report", "--email", "chef@example.com", when=REPORT_AT)
    with time_machine.travel(local(2026, 11, 25, 14, 3), tick=False):
        test_mail = smtp_test_send(recipient="ops@example.com", requested_by="ops")

    report, _ = mailoutbox
    assert report.subject == "Commission report \N{EM DASH} October 2026"
    assert "Period: 1 October 2026 to 31 October 2026 inclusive" in report.body
    assert "Oktober" not in report.body + bodies(report)[1]
    assert '<html lang="en">' in bodies(report)[1]
    assert test_mail.subject == "Cash office: test email \N{EM DASH} 2026-11-25 14:03"


# The catalogues ------------------------------------------------------------------------


def po_entries(path: Path) -> dict[str, list[str]]:
    """{key: msgstr forms} of a .po file, keyed like GNUTranslations (context\\x04msgid)."""
    entries: dict[str, list[str]] = {}
    fields: dict[str, str] = {}
    current = None

    def flush() -> None:
        if "msgid" in fields and fields["msgid"]:
            key = fields["msgid"]
            if "msgctxt" in fields:
                key = f"{fields['msgctxt']}\x04{key}"
            forms = sorted(name for name in fields if name.startswith("msgstr"))
            entries[key] = [fields[name] for name in forms]
            if "msgid_plural" in fields:
                entries[key + "\x00plural"] = [fields["msgid_plural"]]
        fields.clear()

    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            flush()
            current = None
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            fields[current] += unquote(line)
        else:
            current, _, value = line.partition(" ")
            fields[current] = unquote(value)
    return entries


def unquote(text: str) -> str:
    # A .po string's escapes (\\n, \\", \\\\) read the same as a Python literal's.
    return ast.literal_eval(text.strip())


@pytest.mark.parametrize("folder", CATALOGS, ids=lambda folder: folder.parts[-4])
def test_every_french_message_is_translated_and_none_is_fuzzy(folder):
    text = (folder / "django.po").read_text(encoding="utf-8")
    entries = po_entries(folder / "django.po")

    assert len(entries) > 10
    # msgfmt leaves fuzzy entries out, and a fuzzy header would lose the plural rule.
    assert [line for line in text.splitlines() if line.startswith("#,") and "fuzzy" in line] == []
    untranslated = [
        key for key, forms in entries.items() if not key.endswith("\x00plural") and not all(forms)
    ]
    assert untranslated == []


@pytest.mark.parametrize("folder", CATALOGS, ids=lambda folder: folder.parts[-4])
def test_the_compiled_catalogue_matches_the_po_file(folder):
    """The .mo is what runs: compilemessages must have been run after the last edit."""
    entries = po_entries(folder / "django.po")
    with (folder / "django.mo").open("rb") as mo:
        catalog = gettext.GNUTranslations(mo)._catalog

    compiled: dict[str, list[str]] = {}
    for key, value in catalog.items():
        if key == "":
            continue
        if isinstance(key, tuple):
            compiled.setdefault(key[0], []).append(value)
        else:
            compiled[key] = [value]
    expected = {key: forms for key, forms in entries.items() if not key.endswith("\x00plural")}
    assert compiled == expected
    assert "Plural-Forms: nplurals=2; plural=(n > 1);" in catalog[""]
