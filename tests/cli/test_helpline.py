"""`hotline contacts ...` and `hotline helpline-cases ...` as a counsellor uses them, in
a separate process (embedded mode: the referral is delivered to the outbox folder)."""

from __future__ import annotations

import json
import re

from tests.cli.test_cli import env, hotline  # noqa: F401  (the fixture and the runner)


def test_a_counsellor_records_a_call_forms_a_case_and_refers_it_from_the_terminal(env, tmp_path):  # noqa: F811
    hotline(env, "migrate")
    hotline(env, "users", "add", "cara", "--role", "counsellor")
    hotline(env, "users", "add", "ana", "--role", "analyst")
    out = hotline(env, "contacts", "add", "--as", "cara", "--caller", "child", "--topic",
                  "sextortion", "--minutes", "7", "--contact", "cara-caller@example.rs",
                  "--summary", "Blackmailed on a messenger", "--case-type", "sextortion",
                  "--age", "14_15").stdout
    ref = re.search(r"helpline case (H-[A-Z0-9-]+)", out).group(1)
    out = hotline(env, "helpline-cases", "refer", "--as", "cara", ref, "@police").stdout
    assert "1 referral(s) planned" in out
    again = hotline(env, "helpline-cases", "refer", "--as", "cara", ref, "@police").stdout
    assert "referred there already" in again
    shown = json.loads(hotline(env, "helpline-cases", "show", "--as", "cara", ref).stdout)
    assert shown["state"] == "referred"
    assert shown["referrals"][0]["notice_state"] == "sent"  # delivered to the outbox
    assert len(list((tmp_path / "var" / "outbox").glob("notice-*"))) == 1
    denied = hotline(env, "helpline-cases", "show", "--as", "ana", ref, check=False)
    assert denied.returncode == 1 and "denied" in denied.stderr
    bad = hotline(env, "contacts", "add", "--as", "cara", "--caller", "child", "--topic",
                  "grooming", "--join", "H-NOPE", check=False)
    assert bad.returncode == 1 and "hotline: There is no helpline case H-NOPE." in bad.stderr
    listing = hotline(env, "helpline-cases", "institutions").stdout
    assert "rs-social-work-centre" in listing and "ADDRESS NOT SET" in listing
    folder = tmp_path / "evidence"
    out = hotline(env, "helpline-cases", "evidence", "--as", "cara", ref, "--out",
                  str(folder)).stdout
    assert "Evidence bundle written" in out
    from pipeline.stages.evidence import verify_folder

    [bundle] = list(folder.iterdir())
    assert verify_folder(bundle) == []
    assert b"cara-caller@example.rs" not in (bundle / "contacts.json").read_bytes()
    refused = hotline(env, "helpline-cases", "evidence", "--as", "cara", ref, "--out",
                      str(tmp_path / "e2"), "--with-personal-data", check=False)
    assert refused.returncode == 1 and "denied" in refused.stderr
    assert "1 helpline rules" in hotline(env, "helpline-cases", "check-rules").stdout
    assert "Audit trail intact." in hotline(env, "audit", "verify").stdout




def test_a_counsellor_turns_mail_into_a_contact_and_takes_it_up_from_the_terminal(env,  # noqa: F811
                                                                                  tmp_path):
    import sqlite3

    hotline(env, "migrate")
    hotline(env, "users", "add", "cara", "--role", "counsellor")
    hotline(env, "users", "add", "ana", "--role", "analyst")
    with sqlite3.connect(tmp_path / "var" / "h.db") as db:  # a message without a URL
        db.execute("INSERT INTO mail_messages (message_key, via, received_at, subject, size, "
                   "state, reason, report_count, attachments, ack_state, ack_attempts) VALUES "
                   "('k1', 'lmtp', '2025-01-06 08:00:00', 'Pomoć', 10, 'look_at', "
                   "'no URL found', 0, '[]', 'none', 0)")
    denied = hotline(env, "contacts", "from-mail", "--as", "ana", "1", check=False)
    assert denied.returncode == 1 and "denied" in denied.stderr
    out = hotline(env, "contacts", "from-mail", "--as", "cara", "1").stdout
    ref = re.search(r"helpline contact (K-[A-Z0-9-]+)", out).group(1)
    again = hotline(env, "contacts", "from-mail", "--as", "cara", "1").stdout
    assert f"already helpline contact {ref}" in again
    shown = json.loads(hotline(env, "contacts", "show", "--as", "cara", ref).stdout)
    assert (shown["channel"], shown["source"], shown["anonymous"]) == ("email", "mailbox", True)
    assert shown["summary"].startswith("E-mail: Pomoć")
    out = hotline(env, "contacts", "take-up", "--as", "cara", ref, "--caller", "parent",
                  "--topic", "grooming", "--case-type", "grooming", "--url",
                  "https://bad.example.net/p/1").stdout
    assert "helpline case H-" in out and "URL reports R-" in out
