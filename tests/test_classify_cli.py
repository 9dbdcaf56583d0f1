"""`mailbeacon classify` (B3): the classifier over JSON lines, for operators and for
scoring the rules on a labelled set; bad lines answer an error and the rest go on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mailbeacon.classify_lines import classify_lines

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)"


def judged(*specs: object) -> list[dict[str, object]]:
    lines = [s if isinstance(s, str) else json.dumps(s) for s in specs]
    return [json.loads(line) for line in classify_lines(lines, lambda ip: "")]


def test_each_copy_is_judged_in_time_order_with_its_neighbours() -> None:
    answers = judged(
        {"copy": "ben", "link": 2, "user_agent": CHROME, "seconds_after_delivery": 3600.4},
        {"copy": "ben", "link": 1, "user_agent": CHROME, "seconds_after_delivery": 3600},
        {"copy": "carl", "user_agent": OUTLOOK},
        {"copy": "anna", "user_agent": "Mozilla/5.0", "seconds_after_delivery": 4},
        {"copy": "dan", "link": "honeypot", "user_agent": CHROME},
    )
    assert [(a["class"], a["reason"]) for a in answers] == [
        ("scanner", "click_burst"),
        ("scanner", "click_burst"),
        ("human", "mail_client"),
        ("prefetch", "apple_mpp"),
        ("scanner", "honeypot"),
    ]
    assert answers[2]["client"] == "Outlook on Windows" and answers[2]["counted"] is True


def test_bad_lines_answer_an_error_and_the_rest_go_on() -> None:
    answers = judged("not json", "[1, 2]", {"kind": "teleport"}, {"user_agent": OUTLOOK})
    assert [("error" in a) for a in answers] == [True, True, True, False]
    assert answers[3]["class"] == "human"


def test_the_command_reads_stdin_and_tags_full_addresses(tmp_path: Path) -> None:
    # 172.224.226.1 is in the shipped sample of Apple's relay list.
    lines = json.dumps({"user_agent": "Mozilla/5.0", "ip": "172.224.226.1"}) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "mailbeacon.cli", "classify"],
        input=lines,
        capture_output=True,
        text=True,
        env={"MAILBEACON_VAR_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin"},
        check=True,
        timeout=60,
    )
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert (answer["class"], answer["reason"], answer["network"]) == (
        "prefetch",
        "apple_mpp",
        "apple-relay",
    )
