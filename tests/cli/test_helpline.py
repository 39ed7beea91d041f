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
    assert bad.returncode == 1 and "no helpline case H-NOPE" in bad.stderr
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


