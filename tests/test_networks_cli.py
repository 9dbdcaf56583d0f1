"""`mailbeacon networks refresh|list` (B3): the operator's lists, from a file or a URL.

Run as the real command in a child process; URLs are served by a real local HTTP server.
A wrong source must leave the list in use exactly as it was (rule 6).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mailbeacon.settings import load_settings
from mailbeacon.store.networks import FetchError, load_network_table, read_source

MAILBEACON = [sys.executable, "-m", "mailbeacon.cli"]
APPLE = (
    "172.224.226.0/27,GB,GB-EN,London,\n"
    "172.224.226.32/31,GB,GB-SC,Aberdeen,\n"
    "172.224.226.34/31,GB,GB-EN,Oxford,\n"
    "2a02:26f7:b3c0:4000::/64,GB,GB-EN,London,\n"
    "this is not a row\n"
)


def run(var: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAILBEACON, "networks", *args],
        env={**os.environ, "MAILBEACON_VAR_DIR": str(var)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server for files put in the returned folder."""
    folder = tmp_path / "site"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()
    thread.join()


def test_refresh_from_a_file_writes_the_collapsed_list_owner_only(tmp_path: Path) -> None:
    source = tmp_path / "egress-ip-ranges.csv"
    source.write_text(APPLE)
    done = run(tmp_path / "var", "refresh", "apple-relay", "--from", str(source))
    assert done.returncode == 0, done.stderr
    assert "loaded 4 ranges (apple)" in done.stdout
    assert "skipped 1 lines" in done.stdout and "this is not a row" in done.stdout
    written = tmp_path / "var" / "networks" / "apple-relay.csv"
    ranges = [line for line in written.read_text().splitlines() if not line.startswith("#")]
    assert ranges == ["172.224.226.0/27", "172.224.226.32/30", "2a02:26f7:b3c0:4000::/64"]
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    table = load_network_table(load_settings(var_dir=tmp_path / "var"))
    assert table.tag_of("172.224.226.35") == "apple-relay"
    assert table.tag_of("146.75.253.246") == ""  # the sample is no longer used
    listing = run(tmp_path / "var", "list")
    assert listing.returncode == 0
    apple = next(line for line in listing.stdout.splitlines() if line.startswith("apple-relay"))
    assert str(written) in apple and str(source) in apple


def test_refresh_from_an_http_url(tmp_path: Path, web: tuple[str, Path]) -> None:
    base, folder = web
    aws = {
        "prefixes": [{"ip_prefix": "3.5.140.0/22"}],
        "ipv6_prefixes": [{"ipv6_prefix": "2600:1f14::/35"}],
    }
    (folder / "ip-ranges.json").write_text(json.dumps(aws))
    done = run(tmp_path / "var", "refresh", "aws", "--from", f"{base}/ip-ranges.json")
    assert done.returncode == 0, done.stderr
    assert "aws: loaded 2 ranges (json)" in done.stdout
    table = load_network_table(load_settings(var_dir=tmp_path / "var"))
    assert table.tag_of("3.5.141.1") == "aws"


@pytest.mark.parametrize(
    ("body", "fmt", "says"),
    [
        ("<!doctype html><title>Not found</title>", "apple", "no address ranges found"),
        ("1.2.3.0/24\n", "apple", "no address ranges found"),  # not Apple's shape
        ("", "cidr", "no address ranges found"),
        ("{oops", "json", "not a JSON file"),
    ],
)
def test_a_wrong_file_keeps_the_old_list(
    tmp_path: Path, web: tuple[str, Path], body: str, fmt: str, says: str
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(APPLE)
    assert run(tmp_path / "var", "refresh", "apple-relay", "--from", str(good)).returncode == 0
    written = tmp_path / "var" / "networks" / "apple-relay.csv"
    before = written.read_bytes()
    base, folder = web
    (folder / "wrong").write_text(body)
    done = run(
        tmp_path / "var", "refresh", "apple-relay", "--from", f"{base}/wrong", "--format", fmt
    )
    assert done.returncode == 1
    assert says in done.stderr and "the current apple-relay list is unchanged" in done.stderr
    assert written.read_bytes() == before
    assert sorted(p.name for p in written.parent.iterdir()) == ["apple-relay.csv"]  # no leftovers


def test_an_unreachable_or_failing_url_is_a_clear_error(
    tmp_path: Path, web: tuple[str, Path]
) -> None:
    base, _ = web
    done = run(tmp_path / "var", "refresh", "apple-relay", "--from", f"{base}/missing.csv")
    assert done.returncode == 1 and "answered HTTP 404" in done.stderr
    assert not (tmp_path / "var" / "networks" / "apple-relay.csv").exists()


def test_a_bad_tag_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_text("192.0.2.0/24\n")
    done = run(tmp_path / "var", "refresh", "../escape", "--from", str(source))
    assert done.returncode == 1 and "not a valid tag" in done.stderr
    assert not (tmp_path / "escape.csv").exists()


def test_downloads_are_size_capped(web: tuple[str, Path]) -> None:
    base, folder = web
    (folder / "big.csv").write_text("192.0.2.0/24\n" * 1000)
    with pytest.raises(FetchError, match="more than 1000 bytes"):
        read_source(f"{base}/big.csv", max_bytes=1000)
    assert read_source(f"{base}/big.csv", max_bytes=20_000).count("\n") == 1000
