"""Pass 2: values assigned to a name that says secret.

Names: ``password``, ``DB_PASS``, ``PGPASSWORD``, ``adminpass``, ``apiKey``,
``client_secret``, ``auth_token``, ``"X-Api-Key"``, ``AZURE_OPENAI_KEY``… judged by their
last word, fused or not (`_kind_of_name`). Forms: Python, JS/TS, Go, Java, PHP, YAML, TOML,
INI, .env and JSON assignments; command-line flags (``--password S3cret``,
``-storepass S3cret``, ``"--requirepass", "S3cret"``, ``-passout pass:S3cret``); ``.netrc``
(``machine h login u password S3cret``). Only the value is replaced, and only when it is a
literal that could be a secret rather than code or a placeholder (`is_literal_secret` says
what is left alone and why).

Speed: the lower-cased text is scanned for four name stems, and the assignment expression
is tried only there. The scan for `p` also finds two token shapes (`_P_TOKEN`).
"""

from __future__ import annotations

import functools
import re

from server.redact.values import (
    HEX,
    IDENTIFIER,
    WORDS,
    Finding,
    is_literal_secret,
    looks_generated,
    looks_random,
)

# Looked for in the lower-cased text, one scan each (`pass`/`pwd`, `secret`/`cred`,
# `token`/`key`, `auth`); from each hit, inside a name, the expression below is tried.
# The scan for `p` also stops on Databricks (`dapi…`) and Shopify (`shpat_…`) tokens, which
# have no character rare enough to anchor a scan of their own in pass 1 (`shapes`).
_STEMS = tuple(
    map(
        re.compile,
        (
            # One literal first in each branch: the engine skips those that cannot match.
            rb"p(?:ass|wd|i(?<=dapi)|at_(?<=shpat_)|ss_(?<=shpss_)|ca_(?<=shpca_)|pa_(?<=shppa_))",
            rb"cre[dt]",
            rb"k(?:(?<=tok)en|ey)",
            rb"auth",
        ),
    )
)
_P_TOKEN = re.compile(
    rb"(?:(?P<databricks>dapi[0-9a-f]{32}(?:-[0-9])?)|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32})"
    rb"(?![A-Za-z0-9])"
)
_ASSIGNMENT = re.compile(
    rb"""
    [\w.-]{0,64}                                    # the rest of the name
    (?:["'`]\]?|\])?                                # "name" or ["name"] or [name]
    [ \t]{0,16}
    (?P<op>
        :=|=>|\?=|=(?![=~>])
      | :[ \t]{0,8}[a-z_][\w.\[\]|, ]{0,60}?=(?![=>])   # an annotation: `key: str = `
      | :(?![:=])
    )
    (?P<space>[ \t]{0,16})
    (?:
        (?P<prefix>[rbuf]{0,2})                     # r"..." is a regex or a path
        (?: "(?P<dq>[^"\r\n]{0,512})(?:"|\Z)
          | '(?P<sq>[^'\r\n]{0,512})(?:'|\Z)
          | `(?P<bq>[^`\r\n]{0,512})(?:`|\Z)
        )
      | (?P<bare>[^\s"'`,;&)\]}]{1,256})
    )
    """,
    re.VERBOSE,
)
# The value of a flag, `--password S3cret`, or of a `.netrc` keyword: after blanks, or after
# the end of the flag's string in a list of arguments (`"--password", "S3cret"`).
_SPACED_VALUE = re.compile(
    rb"""
    (?: (?P<list>["'][ \t]{0,4},[ \t]{0,4}) | [ \t]{1,4} )
    (?: "(?P<dq>[^"\r\n]{0,512})" | '(?P<sq>[^'\r\n]{0,512})' | (?P<bare>[^\s"'`,;&|)\]}]{1,256}) )
    """,
    re.VERBOSE,
)
_VALUE_GROUPS = ("dq", "sq", "bq", "bare")
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_.-")
_LINE_END = re.compile(rb"[ \t]*(?:#|\r|\n|\Z)")
_NAME_END = re.compile(rb"[^a-z0-9_.-]|\Z")
_NAME_MAX = 64
# What may precede `password` on a `.netrc` line: `machine host login user password S3cret`.
_NETRC_BEFORE = re.compile(
    rb"[ \t]{0,16}"
    rb"(?:(?:machine|login|account)[ \t]{1,8}[^\s]{1,128}[ \t]{1,8}|default[ \t]{1,8}){0,3}"
)
_NETRC_LINE_MAX = 256
# openssl's `-passin pass:S3cret`; `env:VAR`, `file:path`, `fd:3` and `stdin` say where.
_OPENSSL_SOURCE = re.compile(r"(?:env|file|fd):|stdin$", re.IGNORECASE)
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

# A name's last word is a stem, or ends with one when fused (`PGPASSWORD`, `adminpass`,
# `azurekey`).
_NAME_STEMS = ("password", "passwd", "passphrase", "passcode", "pwd", "pass", "secret", "token",
               "key")  # fmt: skip
_PASSWORD_STEMS = frozenset({"password", "passwd", "passphrase", "passcode", "pwd", "pass"})
# A fused `…pass` is a password only after these (`dbpass`, `adminpass`, `srcstorepass`):
# `minipass`, `bypass`, `compass` and `GIT_ASKPASS` are not.
_PASS_PREFIXES = (
    "db", "admin", "root", "user", "sudo", "smtp", "mail", "ftp", "ldap", "store", "key",
    "master", "my", "rpc", "vnc", "wifi", "redis", "sql", "pg", "mongo", "ssh", "proxy",
    "http", "bind", "sa", "app", "api", "auth", "login", "web", "site", "server", "host",
    "bot", "wp", "account", "default", "new", "old", "require", "secret", "vault", "cert",
    "pfx", "p12",
)  # fmt: skip
# `by_pass`, `renderPass`, `low_pass`: words, graphics and filters, not passwords.
_NOT_PASSWORD_PASSES = frozenset(
    {"by", "over", "under", "low", "high", "band", "all", "multi", "first", "second",
     "single", "one", "two", "render", "sub", "shadow", "depth", "boarding", "season", "day",
     "back"}
)  # fmt: skip
# The word before `key` that makes it a secret: `api_key`, `secretKey`, `PRIVATE_KEY`.
_KEY_QUALIFIERS = {"api": "api-key", "private": "private-key"} | dict.fromkeys(
    ("secret", "access", "signing", "encryption", "master", "client", "app", "consumer",
     "license", "subscription", "account", "service"),
    "secret",
)  # fmt: skip
# Keys that name, sort or find things (`cache_key`, `sortKey`, `primary_key`), or that are
# published (`public_key`, `RECAPTCHA_SITE_KEY`, Stripe's publishable key).
_NOT_SECRET_KEYS = (
    "cache", "sort", "primary", "foreign", "partition", "row", "hash", "lookup", "dict",
    "map", "group", "routing", "object", "bucket", "public", "pub", "publishable", "site",
    "verify", "idempotency", "unique", "index", "shard", "dedup", "hot", "shortcut",
    "cursor", "page", "item", "list", "column", "field", "attr", "attribute", "config",
    "setting", "settings", "translation", "i18n", "label", "state", "query", "file",
    "path", "prefix", "entity", "record", "table", "node", "parent", "child", "form",
    "react", "composite", "natural", "surrogate", "lock", "metric", "event", "message",
)  # fmt: skip
# Any other `*_KEY` is a secret only if its value looks random (`looks_random`).
_ANY_KEY = "any-key"
# Last words that are kinds of their own; `passin`, `passout`: openssl's `-passin pass:…`.
_OTHER_KINDS = {"credential": "credentials", "credentials": "credentials",
                "creds": "credentials", "auth": "auth", "passin": "password",
                "passout": "password"}  # fmt: skip
# `eos_token = "</s>"`, `next_token = "abc"`: tokenizer vocabulary and cursors.
_NOT_CREDENTIAL_TOKENS = frozenset(
    {
        "bos", "eos", "eot", "pad", "unk", "mask", "cls", "sep", "stop", "start", "end",
        "special", "fim", "im", "prefix", "suffix", "middle", "next", "page", "continuation",
        "max", "min", "num", "first", "last", "current", "cur", "prev", "word", "new",
    }
)  # fmt: skip


def _split_stem(word: str) -> tuple[str, str] | None:
    """The stem a word ends with and what precedes it: `pgpassword` → password, pg."""
    for stem in _NAME_STEMS:
        if word.endswith(stem):
            return stem, word[: -len(stem)]
    return None


@functools.lru_cache(maxsize=1024)
def _kind_of_name(name: str) -> str | None:
    """The kind of secret a name holds, judged by its last word: `db_password`,
    `PGPASSWORD` and `azureKey` yes, `password_field`, `token_type`, `tokenizer`, `bypass`
    and `cache_key` no."""
    words = [w.lower() for w in WORDS.findall(name)]
    while words and words[-1].isdigit():
        words.pop()
    if not words:
        return None
    if (other := _OTHER_KINDS.get(words[-1])) is not None:
        return other
    if (split := _split_stem(words[-1])) is None:
        return None
    stem, qualifier = split
    if stem == "pass" and qualifier:
        return "password" if qualifier.endswith(_PASS_PREFIXES) else None
    if not qualifier and len(words) > 1:
        qualifier = words[-2]
    if stem in _PASSWORD_STEMS:
        return None if qualifier in _NOT_PASSWORD_PASSES else "password"
    if stem == "token":
        return None if qualifier in _NOT_CREDENTIAL_TOKENS else "token"
    if stem == "key":
        known = next((k for q, k in _KEY_QUALIFIERS.items() if qualifier.endswith(q)), None)
        if known is None:  # a bare `key` is a dict's, a cache's, a GPG key's…
            return None if not qualifier or qualifier.endswith(_NOT_SECRET_KEYS) else _ANY_KEY
        kind = known
    else:
        kind = "secret"
    if kind == "secret" and any(word.startswith("aws") for word in words):
        return "aws-secret-key"
    return kind


def _reported(kind: str) -> str:
    return "secret" if kind == _ANY_KEY else kind


def _value_fits(kind: str, value: str, *, name: str, code: bool = False) -> bool:
    """A password may be any literal; a token or key must look generated. A bare identifier
    given to a `*_key` in code (`activation_key=kInt8DynamicTokenSym`) is a constant unless
    it is hex or the name is written like an environment variable's (`AZURE_KEY=Ab3…`)."""
    if kind == "password":
        return True
    if kind != _ANY_KEY:
        return looks_generated(value)
    if code and not name.isupper() and not HEX.fullmatch(value):
        return False
    return looks_random(value)


def _colon_value(lowered: bytes, m: re.Match[bytes], group: str) -> bool:
    """Whether the value after `name:` is one: a YAML or JS value is quoted, or bare and then
    alone on its line (`token: the token to use` is prose, `user:password@host` a URL, and
    `` `get_token()` `` after a colon is Markdown)."""
    if group == "bq":
        return False
    if group != "bare":
        return True
    return bool(m.group("space")) and _LINE_END.match(lowered, m.end()) is not None


def _name_end(lowered: bytes, pos: int) -> int:
    m = _NAME_END.search(lowered, pos)
    assert m is not None  # `\Z` always matches
    return m.start()


def _is_netrc(lowered: bytes, name_start: int, value: re.Match[bytes]) -> bool:
    """Whether `password S3cret` is a `.netrc` entry: after `machine … login …` on its line,
    or alone on its line (the entry's keywords on lines of their own). A string's opening
    quote starts a line too: a `.netrc` quoted whole (a JSON message in a log, a repr)."""
    window = max(0, name_start - _NETRC_LINE_MAX)
    line_start = max(lowered.rfind(mark, window, name_start) for mark in (b"\n", b'"', b"'")) + 1
    if line_start == 0 and name_start > _NETRC_LINE_MAX:
        return False
    before = _NETRC_BEFORE.fullmatch(lowered, line_start, name_start)
    if before is None:
        return False
    alone = not lowered[line_start:name_start].strip(b" \t")
    return not alone or _LINE_END.match(lowered, value.end()) is not None


def _spaced_finding(
    raw: bytes, lowered: bytes, span: tuple[int, int], name: str, kind: str
) -> Finding | None:
    """The secret of a flag (`--password S3cret`, `-storepass S3cret`, `"--requirepass",
    "S3cret"`, `-passout pass:S3cret`) or of a `.netrc` entry, if the name is followed by one.
    A bare value is judged as in config (`hunter2` yes, `must` no: prose about the flag)."""
    name_start, name_end = span
    flag = name.startswith("-")
    if not flag and name.lower() not in ("password", "passwd"):
        return None
    if name_start > 0 and raw[name_start - 1] not in b" \t\r\n\"'[(":
        return None
    m = _SPACED_VALUE.match(lowered, name_end)
    if m is None or (not flag and (m.group("list") or not _is_netrc(lowered, name_start, m))):
        return None
    group = next(g for g in ("dq", "sq", "bare") if m.start(g) >= 0)
    start, end = m.span(group)
    value = raw[start:end].decode("utf-8", "surrogatepass")
    if m.group("list") and (group == "bare" or not value.strip() or value.split()[0] != value):
        return None  # `"--token", token`, `"--token", help=…`, `"--token", "Use a token"`
    if value.startswith("-") or _OPENSSL_SOURCE.match(value):
        return None
    if value[:5].lower() == "pass:":
        start, value = start + 5, value[5:]
    quoted = group != "bare" and not m.group("list")
    if not _value_fits(kind, value, name=name):
        return None
    if not is_literal_secret(value, quoted=quoted, op="=", spaced=False, name=name):
        return None
    return Finding(_reported(kind), start, end)


def _p_token(raw: bytes, at: int) -> Finding | None:
    """The Databricks or Shopify token at `at`, if one starts there."""
    if (at > 0 and raw[at - 1] in _WORD_BYTES) or (m := _P_TOKEN.match(raw, at)) is None:
        return None
    return Finding("databricks-token" if m.group("databricks") else "shopify-token", at, m.end())


def assignment_findings(text: str) -> list[Finding]:
    # Bytes: lower-casing them is fast, keeps offsets, and touches only ASCII letters.
    raw = text.encode("utf-8", "surrogatepass")
    lowered = raw.lower()
    hits = sorted({m.start() for stem in _STEMS for m in stem.finditer(lowered)})
    findings = []
    done = 0  # hits before this are inside a name already judged, or a value already taken
    for hit in hits:
        if lowered[hit - 2 : hit] in (b"da", b"sh") and (token := _p_token(raw, hit - 2)):
            findings.append(token)  # maybe inside a value just taken: the kinds are merged
            continue
        if hit < done:
            continue
        name_end = _name_end(lowered, hit)
        done = name_end  # any other hit in this name reaches the same verdict
        name_start, limit = hit, max(0, hit - _NAME_MAX)
        while name_start > limit and lowered[name_start - 1] in _NAME_CHARS:
            name_start -= 1
        name = raw[name_start:name_end].decode("ascii")
        if (kind := _kind_of_name(name)) is None:
            continue
        if (m := _ASSIGNMENT.match(lowered, hit)) is None:
            flag = _spaced_finding(raw, lowered, (name_start, name_end), name, kind)
            if flag is not None:
                findings.append(flag)
                done = flag.end
            continue
        group = next(g for g in _VALUE_GROUPS if m.start(g) >= 0)
        op = m.group("op").decode("ascii")
        if b"r" in (m.group("prefix") or b""):
            continue  # r"...": a regex or a path
        if op == ":" and not _colon_value(lowered, m, group):
            continue
        before_op = lowered[m.start("op") - 1 : m.start("op")]
        spaced = op[0] != ":" and (bool(m.group("space")) or before_op in (b" ", b"\t"))
        start, end = m.span(group)
        value = raw[start:end].decode("utf-8", "surrogatepass")
        code = group == "bare" and op != ":" and IDENTIFIER.fullmatch(value) is not None
        # The cheaper test first: in a run like `a_key=a_key=…` every name's value is tried.
        if _value_fits(kind, value, name=name, code=code) and (
            is_literal_secret(value, quoted=group != "bare", op=op, spaced=spaced, name=name)
        ):
            findings.append(Finding(_reported(kind), start, end))
            done = end
    if findings and not text.isascii():
        findings = _char_offsets(raw, findings)
    return findings


def _char_offsets(raw: bytes, findings: list[Finding]) -> list[Finding]:
    """The findings with UTF-8 byte offsets turned into character offsets. They may overlap
    (a Databricks token inside a value), so their ends are converted in order, each stretch
    of text decoded once."""
    chars = {}
    byte = char = 0
    for end in sorted({offset for f in findings for offset in (f.start, f.end)}):
        char += len(raw[byte:end].decode("utf-8", "surrogatepass"))
        chars[end], byte = char, end
    return [Finding(f.kind, chars[f.start], chars[f.end]) for f in findings]
