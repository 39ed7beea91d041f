"""The analysts' work from the terminal: users add, queue, claim, assess, case show."""

from __future__ import annotations

import json

from sqlalchemy import select

from pipeline.store.assessment_models import Assessment
from pipeline.store.models import Case, User
from tests.assessment_support import queue


def test_users_add_prints_a_one_time_password_or_a_token(cli, sqlite_runtime):
    added = cli("users", "add", "ana", "--role", "analyst")
    assert "One-time password" in added.stderr
    password = added.stdout.strip()  # the secret alone on standard output
    assert password and "\n" not in password and " " not in password
    token = cli("users", "add", "sue", "--role", "supervisor", "--token").stdout.strip()
    assert token.startswith("hl_")
    with sqlite_runtime.session_factory() as session:
        ana = session.execute(select(User).where(User.name == "ana")).scalar_one()
    assert ana.password_hash.startswith("$argon2id$")
    assert "role" in cli("users", "add", "bo", "--role", "root", ok=False).output
    listing = cli("users", "list").output
    assert "ana\tanalyst\tactive" in listing and "sue\tsupervisor" in listing


def test_an_analyst_works_a_case_from_the_terminal(cli, sqlite_runtime, monkeypatch):
    cli("users", "add", "ana", "--role", "analyst")
    [case_id] = queue(sqlite_runtime, {"url": "http://a.example/1", "claimed_category": "csam",
                                       "urgent": True})
    with sqlite_runtime.session_factory() as session:
        ref = session.get(Case, case_id).ref
    assert ref in cli("queue", "--as", "ana").output
    assert f"Claimed case {ref}" in cli("claim", "--as", "ana").output

    missing = cli("assess", ref, "--as", "ana", "--legality", "illegal_international",
                  "--category", "csam", ok=False)
    # The console's sentences, one per line, without a framework's "Error:" prefix.
    assert missing.exit_code == 1
    assert ("hotline: Choose an age group: it is required for child sexual abuse material."
            in missing.output)
    assert "Say whether the site is commercial" in missing.output
    assert "Error" not in missing.output and "Value error" not in missing.output
    monkeypatch.setenv("LANG", "sr_RS.UTF-8")
    serbian = cli("assess", ref, "--as", "ana", "--legality", "illegal_international",
                  "--category", "csam", ok=False)
    assert "hotline: Izaberite starosnu grupu: obavezna je za materijal seksualnog " \
        "zlostavljanja dece." in serbian.output
    monkeypatch.setenv("LANG", "en_GB.UTF-8")

    out = cli("assess", ref, "--as", "ana", "--legality", "illegal_international",
              "--category", "csam", "--age-group", "pubescent", "--gender", "male",
              "--site-type", "forum", "--content-type", "image", "--not-commercial").output
    assert f"Case {ref}: finalised (now assessed)." in out
    view = json.loads(cli("case", "show", ref, "--as", "ana").output)
    assert view["legality"] == "illegal_international"
    assert view["assessments"][0]["commercial"] is False
    with sqlite_runtime.session_factory() as session:
        assert session.execute(select(Assessment.analyst_id)).scalar_one() is not None


def test_a_denied_command_says_so_and_exits_non_zero(cli, sqlite_runtime):
    cli("users", "add", "al", "--role", "auditor")
    queue(sqlite_runtime, {"url": "http://a.example/1"})
    result = cli("claim", "--as", "al", ok=False)
    assert result.exit_code == 1 and "denied: an auditor may not claim cases" in result.output
    assert "no active user" in cli("claim", "--as", "nobody", ok=False).output


def test_same_site_claim_release_and_welfare_from_the_terminal(cli, sqlite_runtime):
    cli("users", "add", "ana", "--role", "analyst")
    cli("users", "add", "sue", "--role", "supervisor")
    ids = queue(sqlite_runtime, *[{"url": f"http://x.bad.example/{i}", "host": "x.bad.example",
                                   "registered_domain": "bad.example"} for i in range(2)])
    out = cli("claim", "--as", "ana", "--domain", "bad.example").output
    assert "Claimed 2 cases of bad.example; 0 held by others." in out
    assert "back in the queue" in cli("release", str(ids[0]), "--as", "ana").output
    out = cli("assess", str(ids[1]), "--as", "ana", "--legality", "not_illegal").output
    assert "closed" in out
    assert "ana\t" in cli("welfare", "--as", "ana").output
    everyone = cli("welfare", "--as", "sue", "--all").output
    assert "ana\t" in everyone and "sue\t" in everyone
    assert "denied" in cli("welfare", "--as", "ana", "--all", ok=False).output


def test_a_refused_user_is_told_why_in_a_sentence_without_a_framework_prefix(cli,
                                                                            monkeypatch):
    cli("users", "add", "ana", "--role", "analyst")
    again = cli("users", "add", "ana", "--role", "analyst", ok=False)
    assert again.exit_code == 1
    assert again.output.strip() == ("hotline: Choose another name: a user named ana exists "
                                    "already.")
    monkeypatch.setenv("LANG", "sr_RS.UTF-8")
    serbian = cli("users", "add", "ana", "--role", "analyst", ok=False)
    assert serbian.output.startswith("hotline: Izaberite drugo ime")
    assert "Error" not in serbian.output and "name:" not in serbian.output
