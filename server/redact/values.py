"""What a found secret is (`Finding`), and whether a value looks like one.

Shared by the three passes: a shape's check (`credential`), an assignment's value
(`is_literal_secret`, then `looks_generated` or `looks_random` by the name's kind) and a
command-line flag's value (`is_placeholder`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


# Splits names and values into words: `dbPassword` → db, Password; `AZURE_KEY` → AZURE, KEY.
WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


# Substring tests and searches rather than loops over characters: a value is checked at
# every name of a run like `a_key=a_key=…`, so its checks must stay cheap.
_LETTER = re.compile(r"[^\W\d_]")
_BASE64_SIGN = re.compile(r"[+/=]")


def digit_and_letter(value: str) -> bool:
    return any(digit in value for digit in "0123456789") and _LETTER.search(value) is not None


def mixed_case(value: str) -> bool:
    return value.lower() != value != value.upper()


def looks_generated(value: str) -> bool:
    """Generated rather than chosen: `token = "upgrades"`, `secret = "my-secret"` and
    `Bearer authentication` are words; a real token mixes digits and letters, or cases, or
    is base64."""
    return (
        digit_and_letter(value) or mixed_case(value[1:]) or _BASE64_SIGN.search(value) is not None
    )


_KEY_BODY = re.compile(r"[A-Za-z0-9+/=_-]{20,1024}")
HEX = re.compile(r"[0-9a-f]{20,1024}|[0-9A-F]{20,1024}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# Random base64 or alphanumerics break into fragments of 1 to 3 characters on average
# (`kT`, `9`, `Qw`…); a name written as a value has words: `myAppStateV2Cache` averages 3.8,
# `user_id_2024_partition` 5.5. Under 3.5 lets through about 9 random 32-character
# lower-case alphanumeric keys in 10, and 999 mixed-case ones in 1,000 (hex is taken whole).
_FRAGMENT_MAX = 3.5


def looks_random(value: str) -> bool:
    """A generated key, for names that say `key` but not which (`AZURE_OPENAI_KEY`,
    `azure_key`, `hmacKey`), where `looks_generated` would also take identifiers, ids and
    cache keys (`"user:1"`, `"feature_v2"`): 20 or more characters of hex, base64 or
    alphanumerics that are not words. UUIDs are left alone: as a key's value they are far
    more often an id (`idempotency_key`) than a credential."""
    if not _KEY_BODY.fullmatch(value) or _UUID.fullmatch(value):
        return False
    if not (digit_and_letter(value) or mixed_case(value)):
        return False
    if HEX.fullmatch(value):
        return True
    return len(value) < _FRAGMENT_MAX * len(WORDS.findall(value))


# Values that name a scheme or stand in for a secret: compared lower-cased, without `_-. `.
_NOT_SECRETS = frozenset(
    {
        "password", "passwd", "pass", "pwd", "secret", "token", "apikey", "key", "string",
        "str", "none", "null", "nil", "undefined", "true", "false", "test", "todo", "tbd",
        "fixme", "changeme", "changeit", "basic", "bearer", "digest", "oauth", "oauth2", "jwt",
        "session", "cookie", "header", "query", "ntlm", "kerberos", "required", "optional",
        "hidden", "secure", "credential", "credentials", "creds", "auth", "privatekey",
        "secretkey", "accesstoken", "authtoken", "passphrase",
    }
)  # fmt: skip
# Checked in the lower-cased value. Substring tests rather than one search: a run of names
# (`a_key=a_key=…`) has each of its values checked, and each check must stay cheap.
# $VAR, %(pw)s, <your-token>, your-api-key, [MASK], a colour (#c0ffee).
_PLACEHOLDER_START = re.compile(r"[$%<]|your|\[.*\]$|\#[0-9a-f]{3,8}$")
_PLACEHOLDER_PARTS = (
    "{", "}",  # a template: {password}, ${VAR}, {{ vault_pw }}
    "%s", "%d", "\\n", "\\t", "\\r",  # formats and text with escapes
    "xxxx", "***", "...", "•", "changeme", "change_me", "change-me", "example", "placeholder",
    "dummy", "redacted", "replaceme", "replace_me", "replace-me", "insert_", "insert-",
)  # fmt: skip
_ENVIRONMENT_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # its name, not its value
_SEPARATORS = str.maketrans("", "", "_-. ")
_WHITESPACE = re.compile(r"\s")
_NUMBER = re.compile(r"[+-]?(?:0[xob][\da-f_]+|\d[\d_]*(?:\.\d*)?(?:e[+-]?\d+)?)", re.IGNORECASE)
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return (
        lowered.translate(_SEPARATORS) in _NOT_SECRETS
        or len(set(value)) == 1
        or _PLACEHOLDER_START.match(lowered) is not None
        or any(part in lowered for part in _PLACEHOLDER_PARTS)
        or lowered.endswith(("_here", "-here"))
        or _ENVIRONMENT_NAME.fullmatch(value) is not None
    )


def credential(value: str) -> bool:
    return looks_generated(value) and not is_placeholder(value)


def is_literal_secret(value: str, *, quoted: bool, op: str, spaced: bool, name: str) -> bool:
    """Whether an assigned value is a literal that could be a secret.

    Left alone: values under 4 characters; placeholders and templates (`changeme`, `xxxx`,
    `***`, `<token>`, `${VAR}`, `{{ pw }}`, `%(pw)s`, `[MASK]`); the name itself
    (`"password": "Password"`) and scheme words (`auth = "basic"`); environment variable
    names (`"OPENAI_API_KEY"`); paths; URLs (their password is pass 1's business); quoted
    text with spaces or escapes (prose: `"Enter your token"`). A bare value must also not
    be code: no calls, subscripts or attribute paths (`os.environ["X"]`,
    `settings.api_key`), numbers, keywords (`None`, `true`), YAML tags or anchors; and a
    bare plain identifier counts only if it has a digit and is written like config
    (`PASSWORD=hunter2`, `password: hunter2`), not like code (`password = pw2`).
    """
    if len(value) < 4 or (quoted and _WHITESPACE.search(value)):
        return False
    if is_placeholder(value) or "://" in value:
        return False
    if name.lower().translate(_SEPARATORS).endswith(value.lower().translate(_SEPARATORS)):
        return False  # `"password": "Password"`, `ACCESS_TOKEN_HEADER = "X-Access-Token"`
    if value.startswith(("/", "./", "../", "~/")) or value.endswith(":"):
        return False
    if quoted:
        return True
    if value[0] in "*&!@~.|>#-" or any(c in value for c in "([{"):
        return False
    if _NUMBER.fullmatch(value) or _DOTTED.fullmatch(value):
        return False
    if IDENTIFIER.fullmatch(value):
        return any(c.isdigit() for c in value) and not spaced and op in ("=", ":")
    return True
