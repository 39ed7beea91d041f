"""Every state of a report, a case, a helpline case, a notice and a mail message's
acknowledgement, and every allowed transition, in one place.

A report's or a case's state changes only through `lifecycle.transition`, which
checks this table, stamps the time the state was first entered (`<state>_at`), moves
`state_changed_at`, and writes an audit event in the same transaction. A notice's
changes through `lifecycle.notice_transition` (or, for a set of rows changed by one
UPDATE, with its pairs checked by `lifecycle.check_notice_moves`).
"""

from __future__ import annotations

from enum import StrEnum


class ReportState(StrEnum):
    RECEIVED = "received"  # stored, waiting for normalisation
    NORMALISED = "normalised"  # canonical URL known, waiting for deduplication
    REJECTED = "rejected"  # cannot be a URL we process; kept with the reason
    DUPLICATE = "duplicate"  # joined a case that was already open
    NEW_CASE = "new_case"  # opened a case of its own


class CaseState(StrEnum):
    NORMALISED = "normalised"  # opened by deduplication, waiting for tracing
    TRACED = "traced"  # hosting origin traced (or marked unknown)
    AWAITING_ASSESSMENT = "awaiting_assessment"  # in the analysts' queue
    IN_ASSESSMENT = "in_assessment"  # claimed by an analyst (with a lease)
    AWAITING_SECOND_ASSESSMENT = "awaiting_second_assessment"  # four eyes
    AWAITING_SUPERVISOR = "awaiting_supervisor"  # the two analysts disagreed
    ASSESSED = "assessed"  # decision final, waiting for routing
    ROUTED = "routed"  # destinations decided, notices planned
    POLICE_HOLD = "police_hold"  # police asked us to wait before telling the provider
    NOTIFIED = "notified"  # notices sent
    MONITORING = "monitoring"  # checked on a schedule until the content is gone
    REMOVED = "removed"  # content confirmed gone
    CLOSED = "closed"  # nothing more to do


R, C = ReportState, CaseState

# (from, to) -> the action recorded in the audit event. `None` as from = creation.
REPORT_TRANSITIONS: dict[tuple[ReportState | None, ReportState], str] = {
    (None, R.RECEIVED): "report_received",
    (R.RECEIVED, R.NORMALISED): "report_normalised",
    (R.RECEIVED, R.REJECTED): "report_rejected",
    (R.NORMALISED, R.DUPLICATE): "report_joined_case",
    (R.NORMALISED, R.NEW_CASE): "report_opened_case",
    # A duplicate whose case is gone before it could attach is re-deduplicated.
    (R.DUPLICATE, R.NORMALISED): "report_requeued",
}

CASE_TRANSITIONS: dict[tuple[CaseState | None, CaseState], str] = {
    (None, C.NORMALISED): "case_opened",
    (C.NORMALISED, C.TRACED): "case_traced",
    (C.TRACED, C.AWAITING_ASSESSMENT): "case_queued",
    (C.AWAITING_ASSESSMENT, C.IN_ASSESSMENT): "case_claimed",
    # Released by the analyst, or the lease ran out.
    (C.IN_ASSESSMENT, C.AWAITING_ASSESSMENT): "case_released",
    (C.IN_ASSESSMENT, C.ASSESSED): "case_assessed",
    (C.IN_ASSESSMENT, C.AWAITING_SECOND_ASSESSMENT): "case_needs_second_assessment",
    # Same-site work: an analyst applies one decision to cases they did not claim one by one.
    (C.AWAITING_ASSESSMENT, C.ASSESSED): "case_assessed",
    (C.AWAITING_ASSESSMENT, C.AWAITING_SECOND_ASSESSMENT): "case_needs_second_assessment",
    (C.AWAITING_SECOND_ASSESSMENT, C.ASSESSED): "case_confirmed",
    (C.AWAITING_SECOND_ASSESSMENT, C.AWAITING_SUPERVISOR): "case_disputed",
    (C.AWAITING_SUPERVISOR, C.ASSESSED): "case_decided_by_supervisor",
    (C.ASSESSED, C.ROUTED): "case_routed",
    # "not illegal" and "out of remit" close without routing.
    (C.ASSESSED, C.CLOSED): "case_closed",
    (C.ROUTED, C.POLICE_HOLD): "case_held_for_police",
    (C.ROUTED, C.NOTIFIED): "case_notified",
    # A rule may decide that nobody is to be told (e.g. already handled elsewhere).
    (C.ROUTED, C.CLOSED): "case_closed",
    (C.POLICE_HOLD, C.NOTIFIED): "case_police_cleared",
    # The police take the case over entirely: no provider notice.
    (C.POLICE_HOLD, C.CLOSED): "case_closed",
    (C.NOTIFIED, C.MONITORING): "case_monitoring",
    (C.MONITORING, C.REMOVED): "case_removed",
    # The content moved: trace again and route again.
    (C.MONITORING, C.TRACED): "case_retraced",
    # Traced while the registries were unreachable (origin unknown) and not claimed
    # yet: traced again once they answer, then back in the queue.
    (C.AWAITING_ASSESSMENT, C.TRACED): "case_retrace_unreachable",
    # Traced again after it moved, a case already assessed is routed again (a new
    # round of notices to the new host), not put back in front of the analysts.
    (C.TRACED, C.ASSESSED): "case_rerouted",
    (C.NOTIFIED, C.REMOVED): "case_removed",
    # The content was unreachable before the first notice (the trace found no
    # reachable host, no check ever saw it): its own outcome, never "removed".
    (C.MONITORING, C.CLOSED): "case_gone_before_notice",
    # The checks cannot tell whether the content is there (the host answers the
    # hotline's resolver with non-global addresses only): an analyst looks.
    (C.MONITORING, C.AWAITING_ASSESSMENT): "case_takedown_inconclusive",
    (C.REMOVED, C.CLOSED): "case_closed",
}

# States in which a case is still being worked on (its URL is "open" for deduplication).
OPEN_CASE_STATES = frozenset(set(CaseState) - {C.REMOVED, C.CLOSED})

# Columns stamped with the time a state was first entered.
REPORT_STATE_TIME_COLUMNS = {state: f"{state.value}_at" for state in ReportState}
CASE_STATE_TIME_COLUMNS = {state: f"{state.value}_at" for state in CaseState}


class HelplineCaseState(StrEnum):
    """A helpline case: formed from a contact, closed as advisory or referred
    to institutions, answered by them, and closed."""

    OPEN = "open"  # formed by a contact; counsellors work on it
    ADVISORY = "advisory"  # advice given, nothing to refer: closed as advisory
    REFERRED = "referred"  # the case file went to one or more institutions
    ANSWERED = "answered"  # every institution referred to replied or gave a reference
    CLOSED = "closed"  # a referred case with nothing more to do


H = HelplineCaseState

HELPLINE_CASE_TRANSITIONS: dict[tuple[HelplineCaseState | None, HelplineCaseState], str] = {
    (None, H.OPEN): "helpline_case_formed",
    (H.OPEN, H.ADVISORY): "helpline_case_closed_advisory",
    (H.OPEN, H.REFERRED): "helpline_case_referred",
    (H.REFERRED, H.ANSWERED): "helpline_case_answered",
    # The counsellor closes a referred case before every institution answered (one
    # said it will not reply, or the case was handed over by telephone).
    (H.REFERRED, H.CLOSED): "helpline_case_closed",
    (H.ANSWERED, H.CLOSED): "helpline_case_closed",
    # The caller comes back: an advisory case is worked on again (and may be referred).
    (H.ADVISORY, H.OPEN): "helpline_case_reopened",
    # A later referral to one more institution after the first ones answered.
    (H.ANSWERED, H.REFERRED): "helpline_case_referred_again",
}

# Where a helpline case counts as ended, for retention.
HELPLINE_ENDED_STATES = frozenset({H.ADVISORY, H.CLOSED})
HELPLINE_CASE_STATE_TIME_COLUMNS = {state: f"{state.value}_at" for state in HelplineCaseState}


class NoticeState(StrEnum):
    """A notice (to a provider, the police, a partner, an institution) on its way out;
    docs/pipeline/routing-and-dispatch.md tells the whole story."""

    PLANNED = "planned"  # written by routing (or escalation, helpline), waiting to go out
    HELD = "held"  # waits for the police to clear the case
    SENDING = "sending"  # claimed by a dispatcher, under a lease
    HANDING_OVER = "handing_over"  # SMTP: only the final "." and its reply are left
    FAILED = "failed"  # a passing failure: tried again at `due_at`
    SENT = "sent"  # the receiver has it
    DEAD = "dead"  # dead-lettered (`hotline deadletters retry` revives it)
    UNCONFIRMED = "unconfirmed"  # handed over, outcome never seen: an operator decides
    CANCELLED = "cancelled"  # the police took the case over


N = NoticeState

# (from, to) -> the action of the audit event written on the notice's case (or
# helpline case), or None where the change is recorded elsewhere: a notice is written
# (from None) by a stage that records it on the case itself; the claim, the SMTP
# marker and a retry are delivery steps kept on the notice's own columns (lease,
# attempts, last_error) and in the log; the police reply is recorded as the case's
# transition. `None` as from = creation.
NOTICE_TRANSITIONS: dict[tuple[NoticeState | None, NoticeState], str | None] = {
    (None, N.PLANNED): None,
    (None, N.HELD): None,  # routed with a police hold
    (None, N.DEAD): None,  # an escalation that cannot be sent (no address)
    (N.HELD, N.PLANNED): None,  # the police proceed, or the hold ran out
    (N.HELD, N.CANCELLED): None,  # the police take the case over
    # The claim: due, a retry whose time came, or a dead one named by an operator.
    (N.PLANNED, N.SENDING): None,
    (N.FAILED, N.SENDING): None,
    (N.DEAD, N.SENDING): None,
    # A claim whose lease ran out is taken over (the lost claim is audited), or a
    # dead worker's claim goes back to planned at once.
    (N.SENDING, N.SENDING): "notice_claim_lost",
    (N.SENDING, N.PLANNED): "notice_claim_lost",
    (N.SENDING, N.HANDING_OVER): None,  # SMTP: the marker before the final "."
    (N.SENDING, N.SENT): "notice_sent",
    (N.HANDING_OVER, N.SENT): "notice_sent",
    (N.SENDING, N.FAILED): None,
    (N.HANDING_OVER, N.FAILED): None,  # a 4xx to the final "."
    (N.SENDING, N.DEAD): "notice_dead",
    (N.HANDING_OVER, N.DEAD): "notice_dead",  # a 5xx to the final "."
    # No reply to the final ".", or the worker stopped after the marker. (From
    # `sending`: a channel that reports an unknown outcome without a marker.)
    (N.HANDING_OVER, N.UNCONFIRMED): "notice_unconfirmed",
    (N.SENDING, N.UNCONFIRMED): "notice_unconfirmed",
    # An operator's decision after checking with the receiver.
    (N.UNCONFIRMED, N.SENT): "notice_confirmed_sent",
    (N.UNCONFIRMED, N.PLANNED): "notice_send_again",
}

# The states in which a dispatcher holds a notice under a lease (`Notice.lease_owner`).
LEASED_NOTICE_STATES = (N.SENDING, N.HANDING_OVER)


class AckState(StrEnum):
    """The acknowledgement of a mail message (`MailMessage.ack_state`, its own outbox
    entry), sent by `pipeline.stages.mail_acks` over the dispatch channels as a notice
    is: the same lease, SMTP marker and retries."""

    NONE = "none"  # not to be sent: automatic mail, no sender, switched off
    QUEUED = "queued"  # to be sent at `ack_due_at`
    SENDING = "sending"  # claimed, under a lease (`ack_lease_until`)
    HANDING_OVER = "handing_over"  # SMTP: the data is with the server, the final "." left
    SENT = "sent"  # the reporter's server has it
    UNCONFIRMED = "unconfirmed"  # a hand-over whose outcome nobody saw: never sent again
    FAILED = "failed"  # a passing failure: tried again at `ack_due_at`
    DEAD = "dead"  # given up (a permanent refusal, or out of attempts)


# The acknowledgements a sender still has to deal with (a partial index: 0016).
WAITING_ACK_STATES = (AckState.QUEUED, AckState.SENDING, AckState.FAILED)
