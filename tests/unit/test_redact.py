"""Secret redaction: every secret of the corpus goes, everything around it stays."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from server.redact import Finding, find_secrets, redact
from server.redact.reversible import redact_all, redact_messages
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
    assert len(SECRETS) >= 120
    assert len(NOT_SECRETS) >= 80
    assert len({case.kind for case in SECRETS}) >= 40


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


def test_offsets_of_a_token_found_inside_a_value() -> None:
    # The assignment's value and the Databricks token overlap; both are counted in characters.
    token = "da" + "pi" + "0123456789abcdef" * 2
    text = f'# naïve 🙂\ntoken = "{token}"\nname = "Zoë"\n'
    assert redact(text) == '# naïve 🙂\ntoken = "<redacted:databricks-token>"\nname = "Zoë"\n'


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
        # A fused name counts by its stem; `…pass` only after a word that makes it one.
        ("PGPASSWORD=abc123xyz", "PGPASSWORD=<redacted:password>"),
        ("adminpass: S3cret99", "adminpass: <redacted:password>"),
        ("minipass: S3cret99", "minipass: S3cret99"),  # a package
        ("compass = 'N45E12'", "compass = 'N45E12'"),
        # Any `*_KEY` holds a secret if its value looks generated, not if it is a name or id.
        ('AZURE_KEY = "3f1c9a7e5b2d4c6e8f0a1b3c5d7e9f12"', 'AZURE_KEY = "<redacted:secret>"'),
        ("AZURE_KEY=Ab3dE9fGh2JkL5mNp8QrS1tUv", "AZURE_KEY=<redacted:secret>"),
        ("f(azure_key=Ab3dE9fGh2JkL5mNp8QrS1tUv)", "f(azure_key=Ab3dE9fGh2JkL5mNp8QrS1tUv)"),
        ('AZURE_KEY = "user_profile_cache_v2"', 'AZURE_KEY = "user_profile_cache_v2"'),
        ('azure_key = "8f14e45f-ceea-467f-a9b0-0c1d5a3b2e7f"', None),  # a UUID: an id
        ('cache_key = "3f1c9a7e5b2d4c6e8f0a1b3c5d7e9f12"', None),  # a digest, as a cache key
        ('key = "3f1c9a7e5b2d4c6e8f0a1b3c5d7e9f12"', None),  # whose key? a dict's, a GPG one
        # Short flags hold a password only after their command, and mysql's only fused.
        ("mysql -uroot -pS3cret app", "mysql -uroot -p<redacted:password> app"),
        ("mysql -uroot -p app", "mysql -uroot -p app"),  # prompts; `app` is the database
        ("mysql -uroot -P3306 app", "mysql -uroot -P3306 app"),  # the port
        ("sshpass -p S3cret ssh h", "sshpass -p <redacted:password> ssh h"),
        ("sshpass -f ~/.pw ssh h", "sshpass -f ~/.pw ssh h"),
        ("mkdir -p build/S3cret", "mkdir -p build/S3cret"),
        ("curl -u admin:S3cret https://x.test", "curl -u admin:<redacted:password> https://x.test"),
        ("curl -u admin https://x.test", "curl -u admin https://x.test"),  # prompts
        ("docker run -u 1000:1000 img", "docker run -u 1000:1000 img"),  # user and group
        ("curl https://x.test; docker run -u 1000:1000 img", None),  # another command
        # A long flag says what it holds; a bare word after it is prose.
        ("--password S3cret99", "--password <redacted:password>"),
        ("--password must be set", "--password must be set"),
        ("--api-key 3f1c9a7e5b2d4c6e8f0a", "--api-key <redacted:api-key>"),
        # `.netrc`: after `machine … login …`, or alone on its line.
        ("password hunter22", "password <redacted:password>"),
        ("password reset123 sent", "password reset123 sent"),
        (
            "machine h\nlogin u\npassword hunter22\n",
            "machine h\nlogin u\npassword <redacted:password>\n",
        ),
    ],
)
def test_edges(text: str, expected: str | None) -> None:
    """`None`: the text is left as it is."""
    expected = text if expected is None else expected
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
    # Names, fused names and values checked at every hit.
    "PGPASSWORD=" * 18_000,
    "dbpass" * 33_000,
    "a_key=" * 33_000,
    "AZURE_KEY=" + "Ab1" * 66_000,
    "x_key = '" + "Ab1" * 66_000,
    # Flags and their commands.
    "-" * 200_000 + "p",
    " -p" * 66_000,
    " -" * 100_000,
    "mysql -p" * 25_000,
    "sshpass -p " * 18_000,
    "curl -u a:" * 20_000,
    "curl \\\n" * 28_000 + "-u a:b",
    "--user " * 28_000,
    "--password " * 18_000,
    '"--password", "' * 13_000,
    "-pass pass:" * 18_000,
    "machine a login b password " * 7_000,
    "\n password a1" * 15_000,
    # Prefixes of tokens without their bodies.
    "hvs." * 50_000,
    "dapi" * 50_000,
    "shpat_" * 33_000,
    "key-" * 50_000,
    "1234567890:A" * 16_000,
    "AAAA" * 50_000,
    "discord.com/api/webhooks/" * 8_000,
]


# A hang guard, not a benchmark: each input takes under a second; backtracking that
# went quadratic on 200 KB would take hours, so the limit leaves room for a loaded CI.
@pytest.mark.timeout(30)
@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda text: repr(text[:12]))
def test_adversarial_input_stays_linear(text: str) -> None:
    """A guard against catastrophic backtracking: 200 KB of pathological text."""
    redact(text)


def test_a_chat_answer_gets_the_secrets_its_prompt_had() -> None:
    key, other = "AKIA" + "IOSFODNN7EXAMPLE", "AKIA" + "I44QH8DHBEXAMPLE"
    document = f'A = "{key}"\nB = "{other}"\npassword = "S3cret99"\nC = "{key}"\n'
    messages, redaction = redact_messages(
        [{"role": "system", "content": "fix it"}, {"role": "user", "content": document}]
    )
    assert messages[0] == {"role": "system", "content": "fix it"}
    assert messages[1]["content"] == (
        'A = "<redacted:aws-access-key:1>"\nB = "<redacted:aws-access-key:2>"\n'
        'password = "<redacted:password:1>"\nC = "<redacted:aws-access-key:1>"\n'
    )
    # The model reorders and keeps the tags; each gets exactly its own secret back.
    answer = (
        'B: str = "<redacted:aws-access-key:2>"\nA: str = "<redacted:aws-access-key:1>"\n'
        'password = "<redacted:password:1>"  # <redacted:github-token:1> <redacted:password>\n'
    )
    assert redaction.restore(answer) == (
        f'B: str = "{other}"\nA: str = "{key}"\n'
        'password = "S3cret99"  # <redacted:github-token:1> <redacted:password>\n'
    )
    assert redaction.restore("no placeholders") == "no placeholders"


def test_a_fix_of_the_second_of_two_passwords_gets_the_second() -> None:
    document = 'DB_PASSWORD = "Xk9vQ2mW7tLp"\n\n\ndef connect():\n    password = "Zr8nB4cH1sYe"\n'
    redaction = redact_all([document])
    fix = '    password = "<redacted:password:2>"  # from the vault soon\n'
    assert "<redacted:password:2>" in redaction.texts[0]
    assert redaction.restore(fix) == '    password = "Zr8nB4cH1sYe"  # from the vault soon\n'


def _untagged(text: str) -> str:
    return re.sub(r"<redacted:([a-z0-9-]+):[0-9]+\n*>", r"<redacted:\1>", text)


@pytest.mark.parametrize("case", SECRETS, ids=lambda case: case.id)
def test_restored_answer_is_the_original(case: SecretCase) -> None:
    redaction = redact_all([case.text])
    assert tuple(_untagged(text) for text in redaction.texts) == (case.expected,)
    assert redaction.restore(redaction.texts[0]) == case.text


def test_a_secret_over_several_lines_keeps_the_line_count() -> None:
    # Actions and reviews address lines: line 7 must be line 7 in the redacted text.
    key = "\n".join(
        [
            "-----BEGIN RSA PRIVATE KEY-----",
            "MIIEpAIBAAKCAQEA1c5j0Qx7Yz3Lk2Vb8Nn4Tq9Wr6Ey1Ui7Op0As5Df3Gh2Jk",
            "X9Lz8Cv7Bn6Mm5Qw4Er3Ty2Ui1Op0As9Df8Gh7Jk6Lz5Xc4Vb3Nm2Qw1Er0Ty9Ui",
            "-----END RSA PRIVATE KEY-----",
        ]
    )
    document = f'a = 1\nKEY = """{key}\n"""\nb = 2\n'
    redaction = redact_all([document])
    assert key not in redaction.texts[0]
    assert redaction.texts[0].splitlines()[-1] == "b = 2"
    assert len(redaction.texts[0].splitlines()) == len(document.splitlines())
    assert redaction.restore(redaction.texts[0]) == document
