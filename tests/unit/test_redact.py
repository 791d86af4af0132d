"""Secret redaction: every secret of the corpus goes, everything around it stays."""

from __future__ import annotations

from collections import Counter

import pytest

from server.redact import Finding, find_secrets, redact
from tests.unit.data.secrets_corpus import NOT_SECRETS, SECRETS, SecretCase


@pytest.mark.parametrize("case", SECRETS, ids=lambda case: case.id)
def test_secret_is_redacted_and_the_rest_kept(case: SecretCase) -> None:
    redacted = redact(case.text)
    assert case.secret not in redacted
    assert redacted == case.expected


@pytest.mark.parametrize("case", SECRETS, ids=lambda case: case.id)
def test_finding_spans_the_secret(case: SecretCase) -> None:
    start = case.template.index("§")
    assert find_secrets(case.text) == [Finding(case.kind, start, start + len(case.secret))]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_ordinary_code_is_unchanged(text: str) -> None:
    assert find_secrets(text) == []
    assert redact(text) is text


def test_corpus_is_broad() -> None:
    assert len(SECRETS) >= 40
    assert len(NOT_SECRETS) >= 25
    assert len({case.kind for case in SECRETS}) >= 20


def test_several_secrets_in_one_file() -> None:
    # Keys cut by a prompt's edge only make sense at the edge: joined, they make one key.
    cases = [case for case in SECRETS if not case.id.startswith("pem-cut-")]
    text = "\n".join(case.text for case in cases)
    assert redact(text) == "\n".join(case.expected for case in cases)
    assert Counter(f.kind for f in find_secrets(text)) == Counter(c.kind for c in cases)


def test_offsets_count_characters_not_bytes() -> None:
    text = '# café — naïve 🙂\npassword = "S3cr3t-pw"\nname = "Zoë"\nsecret = "kë1ÿ-ünïcødé"\n'
    assert redact(text) == (
        '# café — naïve 🙂\npassword = "<redacted:password>"\nname = "Zoë"\n'
        'secret = "<redacted:secret>"\n'
    )


def test_crlf_and_lone_surrogates() -> None:
    text = "DB_PASSWORD=hunter22\r\npassword: hunter2\r\nname = '\udcff'\r\n"
    expected = (
        "DB_PASSWORD=<redacted:password>\r\npassword: <redacted:password>\r\nname = '\udcff'\r\n"
    )
    assert redact(text) == expected


def test_redaction_is_idempotent() -> None:
    once = redact("\n\n".join(case.text for case in SECRETS))
    assert redact(once) == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('password = "p4ss"', 'password = "<redacted:password>"'),  # 4 characters: a password
        ('password = "abc"', 'password = "abc"'),  # 3: too short to matter
        ('password = "correct horse battery"', 'password = "correct horse battery"'),  # prose
        ("password: hunter", "password: hunter"),  # a bare word: a JS variable as likely
        ("password: hunter2", "password: <redacted:password>"),
        ("password = hunter2", "password = hunter2"),  # spaced `=`: code
        ("PASSWORD=hunter2", "PASSWORD=<redacted:password>"),
        ('token = r"[A-Z]{4}\\d"', 'token = r"[A-Z]{4}\\d"'),  # a raw string is a pattern
        ('API_KEY = "OPENAI_API_KEY"', 'API_KEY = "OPENAI_API_KEY"'),  # a variable's name
        ('X_API_KEY = "abc-123-def"', 'X_API_KEY = "<redacted:api-key>"'),
        ("aws_secret_access_key = /etc/aws", "aws_secret_access_key = /etc/aws"),  # a path
    ],
)
def test_edges(text: str, expected: str) -> None:
    assert redact(text) == expected


ADVERSARIAL = [
    "a" * 200_000,
    '"' * 200_000,
    "=" * 200_000,
    "-" * 200_000,
    "_" * 200_000,
    "@" * 200_000,
    ":" * 200_000,
    "password=" * 22_000,
    "password: " * 20_000,
    "token = '" * 22_000,
    "key" * 66_000,
    "sk-" * 66_000,
    "sk-a1" * 40_000,
    "ghp_" * 50_000,
    "eyJ" * 66_000,
    "eyJ" + "a" * 199_000,
    "AKIA" * 50_000,
    "Bearer " * 28_000,
    "-----BEGIN PRIVATE KEY-----\n" * 7_000,
    "-----END PRIVATE KEY-----\n" * 7_500,
    "-----BEGIN PRIVATE KEY-----\n" + "A" * 199_000,
    "A" * 199_000 + "\n-----END PRIVATE KEY-----",
    "://" * 66_000,
    "://a:" + "b" * 199_000,
    "://a:b@" * 28_000,
    "x://u:" + "@" * 199_000,
    "hooks.slack.com/services/" * 8_000,
    "Authorization: Token " * 9_000,
    ("MII" + "a" * 61 + "\n") * 3_000,
]


@pytest.mark.timeout(5)
@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda text: repr(text[:12]))
def test_adversarial_input_stays_linear(text: str) -> None:
    """A guard against catastrophic backtracking: 200 KB of pathological text in seconds."""
    redact(text)
