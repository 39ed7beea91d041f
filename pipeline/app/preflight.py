"""What a long-running process checks as it starts: the rules files it will act on.

A broken rules file (routing and destinations, escalation, helpline, priorities) used
to be found only when a case first needed it: the stage then failed batch after batch
into the dead letters, while the process had started without a word. `hotline run`,
`worker` and `scheduler` now name every problem as they start (an ERROR line each,
with the command that checks the file), and go on: intake, tracing and the queue do
not depend on these files, and stopping the whole pipeline for a typo in an
escalation ladder would hold back every report. The checks are the ones of the
`check` commands, called here so that both say the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError
from pipeline.domain.rules import RulesInvalid, load_ruleset
from pipeline.stages import escalation, helpline, queueing

log = logging.getLogger(__name__)


def rules_problems(settings: Settings) -> list[str]:
    """Every problem of the configured rules files, each naming its file and the
    command that checks it; empty when all of them load."""
    problems: list[str] = []

    def check(what: str, command: str, load: Callable[[], Any]) -> Any:
        try:
            return load()
        except (RulesInvalid, ConfigError) as exc:
            problems.extend(f"{what}: {p} (check with `hotline {command}`)"
                            for p in exc.problems)
        except (OSError, ValueError) as exc:
            problems.append(f"{what}: {exc} (check with `hotline {command}`)")
        return None

    ruleset = check(f"routing rules ({settings.routing.rules_dir})", "rules check",
                    lambda: load_ruleset(settings.routing.rules_dir))
    check(f"escalation rules ({settings.escalation.rules_file})", "escalation check",
          lambda: escalation.load_rules(settings.escalation.rules_file,
                                        directory=escalation.load_directory_for(settings)))
    if ruleset is not None:  # (its directory is the routing rules': said above if broken)
        check(f"helpline rules ({settings.helpline.rules_file})",
              "helpline-cases check-rules",
              lambda: helpline.load_helpline_rules(settings.helpline.rules_file,
                                                   ruleset.directory))
    check(f"priority rules ({settings.assessment.priority_rules})", "config check",
          lambda: queueing.load_rules(settings.assessment.priority_rules))
    return problems


def say_rules_problems(settings: Settings) -> list[str]:
    """Log each problem of `rules_problems` as an ERROR; return them."""
    problems = rules_problems(settings)
    for problem in problems:
        log.error("Broken rules file, the stages that use it will fail until it is "
                  "mended: %s", problem)
    return problems
