"""Pass 3: passwords given to a command by a short flag.

``curl -u admin:S3cret``, ``mysql -uroot -pS3cret``, ``sshpass -p S3cret``,
``docker login -u me -p S3cret`` (and podman, helm, cf, oc, az… ``login``),
``mongosh -p S3cret``, ``redis-cli -a S3cret``, ``sqlcmd -P S3cret``, in a shell line or
an argument list (``["mysql", "-pS3cret"]``); and curl's ``--user admin:S3cret``. A flag
holds a password only after its command: ``-p`` is `mkdir`'s parents and `mysql -p db`
prompts (so mysql's password is only ever fused, ``-pS3cret``), ``-u 1000:1000`` is
docker's user and group. Flags named like a secret (``--password S3cret``) say what they
hold, after any command: pass 2's.

Speed: the flags come from pass 1's scan for ``-``; from each, the pass looks back (at most
`_REACH` characters, never past a line break, pipe or ``;``) for its command, resuming
where the previous look stopped, so the whole pass stays linear.
"""

from __future__ import annotations

import re

from server.redact.values import Finding, is_placeholder

_COMMAND_OR_BREAK = re.compile(
    r"""
    (?<![\w.-])(?P<command>
        curl | sshpass | login | redis-cli | sqlcmd | bcp
      | mysql(?:dump|admin|import|show|check|sh)? | mariadb(?:-dump|-admin)?
      | mongo(?:sh|dump|restore|export|import)?
    )(?![\w-])
    # A new command: a pipe, `;`, `&&`, or a line end not continued by `\`, `(`, `[` or a
    # string and a comma (an argument list, one argument a line).
    | [|;&] | (?<![\\(\[])(?<![\\(\[]\r)(?<!["'],)(?<!["'],\r)\n
    """,
    re.VERBOSE,
)
_REACH = 256  # how far before a flag its command may be

# How each command's flags take a password: fused (`-pS3cret`), next (`-p S3cret`), and as
# `user:password` (curl).
_FUSED, _NEXT, _USER_PASSWORD = 1, 2, 4
_FAMILIES = {
    "curl": {"u": _FUSED | _NEXT | _USER_PASSWORD, "user": _NEXT | _USER_PASSWORD},
    "mysql": {"p": _FUSED},
    "sshpass": {"p": _FUSED | _NEXT},
    "login": {"p": _FUSED | _NEXT},
    "mongo": {"p": _FUSED | _NEXT},
    "redis-cli": {"a": _NEXT},
    "sqlcmd": {"P": _NEXT},
}
_FAMILY_OF = {"mariadb": "mysql", "bcp": "sqlcmd"}

_VALUE = (
    r"""(?:"(?P<dq>[^"\r\n]{1,256})"|'(?P<sq>[^'\r\n]{1,256})'|(?P<bare>[^\s"'`;|&)\],]{1,256}))"""
)
# Right after the flag (`-pS3cret`, `-p"S3cret"`), never across a blank or a comma: in
# `["sshpass", "-p", password]` the quote after `-p` ends a string.
_FUSED_VALUE = re.compile(
    r"""(?:"(?P<dq>[^"\s,]{1,256})"|'(?P<sq>[^'\s,]{1,256})'|(?P<bare>[^\s"'`;|&)\],]{1,256}))"""
)
# After blanks, `=` (`--user=me:S3cret`) or the end of the flag's string in a list.
_NEXT_VALUE = re.compile(rf"""(?:(?P<list>["'][ \t]{{0,4}},[ \t]{{0,4}})|[ \t]{{1,4}}|=){_VALUE}""")


def _flags(command: str) -> dict[str, int]:
    family = next((f for f in ("mysql", "mariadb", "mongo") if command.startswith(f)), command)
    return _FAMILIES[_FAMILY_OF.get(family, family)]


def _password(text: str, flag: re.Match[str], forms: int) -> Finding | None:
    """The password after `flag`, if it carries one in one of `forms`."""
    m = None
    if forms & _FUSED and not flag.group("long"):
        m = _FUSED_VALUE.match(text, flag.end())
    if m is None and forms & (_NEXT | _USER_PASSWORD):
        m = _NEXT_VALUE.match(text, flag.end())
        if m is not None and m.group("list") and m.group("bare"):
            return None  # `["sshpass", "-p", password]`: a variable
    if m is None:
        return None
    group = next(g for g in ("dq", "sq", "bare") if m.start(g) >= 0)
    start, end = m.span(group)
    value = text[start:end]
    if forms & _USER_PASSWORD:
        user, colon, value = value.partition(":")
        if not colon:
            return None
        start += len(user) + 1
    if len(value) < 4 or value.startswith("-") or is_placeholder(value):
        return None
    return Finding("password", start, end)


def command_findings(text: str, flags: list[re.Match[str]]) -> list[Finding]:
    """The passwords given to `flags` (`-p`, `-P`, `-u`, `-a`, `--user`, in order, found by
    pass 1's scan for `-`) by their command."""
    findings: list[Finding] = []
    command: str | None = None  # the command whose arguments the scan is in
    command_end = scanned = 0
    for flag in flags:
        hit = flag.start()
        if findings and hit < findings[-1].end:
            continue
        start = max(scanned, hit - _REACH)
        if start > scanned:
            command = None
        for event in _COMMAND_OR_BREAK.finditer(text, start, hit):
            command, command_end = event.group("command"), event.end()
        scanned = hit
        if command is None or hit - command_end > _REACH:
            continue
        forms = _flags(command).get(flag.group("long") or flag.group("short"))
        if forms is not None and (finding := _password(text, flag, forms)) is not None:
            findings.append(finding)
    return findings
