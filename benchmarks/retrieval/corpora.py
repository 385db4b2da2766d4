"""Documents found on this machine, for the retrieval and ingest benchmarks: manual pages rendered to text
(man-db and groff) and the Python standard library's documentation (pydoc). Nothing is downloaded; what
exists depends on the packages installed."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import pydoc
import random
import re
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MAN_ROOT = Path("/usr/share/man")
MAN_COMMANDS = """
apt-mark ls cp mv rm mkdir rmdir ln touch cat head tail less more wc sort uniq cut paste tr sed awk grep find
xargs tar gzip gunzip bzip2 xz zip unzip split csplit join comm diff cmp patch tee dd df du stat file chmod
chown chgrp umask id whoami groups su sudo passwd useradd userdel usermod groupadd ps top kill killall pkill
pgrep nice renice nohup timeout sleep watch date cal uptime uname hostname env printenv which whereis locate
basename dirname realpath readlink mktemp seq shuf yes echo printf test expr bc factor md5sum sha256sum
sha1sum base64 od hexdump xxd strings nm objdump readelf ldd strip ar gcc make cmake git git-commit git-rebase
git-log git-bisect git-stash git-cherry-pick git-reset git-revert git-merge git-branch git-checkout git-switch
git-restore git-clone git-fetch git-pull git-push git-remote git-tag git-diff git-blame git-worktree
git-submodule git-reflog git-clean git-gc git-config git-add git-status git-show git-grep git-archive
git-bundle git-format-patch git-am git-apply git-notes git-sparse-checkout ssh ssh-keygen ssh-agent ssh-add
ssh-copy-id scp sftp sshd rsync curl wget nc socat ping traceroute dig host nslookup ip ss netstat ifconfig
route arp tcpdump iptables nft mount umount lsblk blkid fdisk parted mkfs mke2fs fsck e2fsck tune2fs resize2fs
mkswap swapon swapoff free vmstat iostat lsof fuser strace ltrace gdb valgrind perf journalctl systemctl
systemd-analyze loginctl hostnamectl timedatectl localectl systemd-run busctl crontab at batch logrotate
logger dmesg sysctl modprobe lsmod insmod rmmod shutdown reboot chroot nsenter unshare flock ionice taskset
chrt numactl ulimit screen tmux vim nano ed man apropos whatis info tput stty clear script column fold fmt nl
pr expand unexpand iconv locale localedef envsubst gettext jq python3 pip pip3 node npm perl psql pg_dump
pg_restore pg_dumpall createdb dropdb pg_ctl vacuumdb redis-cli redis-server mysql mysqldump openssl gpg
sqlite3 apt apt-get apt-cache dpkg dpkg-query dpkg-deb update-alternatives adduser deluser chpasswd chage
visudo sha512sum cksum truncate fallocate shred sync nproc lscpu lsmem lspci lsusb getent hwclock sudoedit
install rename wall write mesg last lastlog who w tty pwd cd pushd kill time rev tac sum
""".split()
"""Commands and admin tools: the page of section 1, else 8."""

MAN_OTHERS = """
fstab(5) crontab(5) passwd(5) shadow(5) group(5) hosts(5) resolv.conf(5) nsswitch.conf(5) ssh_config(5)
sshd_config(5) sudoers(5) limits.conf(5) sysctl.conf(5) logrotate.conf(5) journald.conf(5) logind.conf(5)
systemd.service(5) systemd.timer(5) systemd.unit(5) systemd.exec(5) systemd.socket(5) systemd.mount(5)
systemd.resource-control(5) systemd.kill(5) systemd.network(5) tmpfiles.d(5) sources.list(5) apt.conf(5)
apt_preferences(5) os-release(5) locale.conf(5) environment(5) login.defs(5) pam.conf(5) services(5)
protocols(5) gitignore(5) gitattributes(5) githooks(5) gitmodules(5) rsyncd.conf(5) proc(5) terminfo(5)
tzfile(5) magic(5) mke2fs.conf(5) hosts.allow(5) shells(5) motd(5) issue(5) ext4(5) timesyncd.conf(5)
machine-id(5) hostname(5) subuid(5) deb-control(5) mosquitto.conf(5) capabilities(7) cgroups(7) namespaces(7)
inotify(7) epoll(7) glob(7) hier(7) ip(7) ipv6(7) tcp(7) udp(7) unix(7) socket(7) signal(7) pipe(7) fifo(7)
credentials(7) environ(7) regex(7) ascii(7) utf-8(7) unicode(7) locale(7) time(7) boot(7) daemon(7) bootup(7)
file-hierarchy(7) gitglossary(7) gitrevisions(7) gitworkflows(7) giteveryday(7) gitcredentials(7)
gitsubmodules(7) gittutorial(7) cmake-language(7) cmake-generators(7) cmake-variables(7) bash-builtins(7)
apt-patterns(7) deb-version(7) futex(7) fanotify(7) cpuset(7) pthreads(7) symlink(7) path_resolution(7)
standards(7) man(7) CREATE_INDEX(7) CREATE_TABLE(7) ALTER_TABLE(7) VACUUM(7) ANALYZE(7) EXPLAIN(7) COPY(7)
GRANT(7) REVOKE(7) SELECT(7) INSERT(7) UPDATE(7) DELETE(7) TRUNCATE(7) CREATE_ROLE(7) CREATE_VIEW(7)
CREATE_MATERIALIZED_VIEW(7) REFRESH_MATERIALIZED_VIEW(7) CREATE_TRIGGER(7) CREATE_FUNCTION(7)
CREATE_EXTENSION(7) CREATE_SEQUENCE(7) LISTEN(7) NOTIFY(7) LOCK(7) BEGIN(7) COMMIT(7) ROLLBACK(7) SAVEPOINT(7)
SET_TRANSACTION(7) PREPARE(7) CLUSTER(7) REINDEX(7) CREATE_DATABASE(7) DROP_TABLE(7) MERGE(7) WITH(7)
CREATE_POLICY(7) CREATE_SCHEMA(7) DECLARE(7) FETCH(7) SHOW(7) SET(7) ALTER_SYSTEM(7) CHECKPOINT(7)
""".split()
"""Configuration files (5), overviews (7) and PostgreSQL's SQL commands (7)."""
MAN_PAGES = MAN_COMMANDS + MAN_OTHERS

_OVERSTRIKE = re.compile(r".\x08")
_SECTION = re.compile(r"^([A-Z][A-Z0-9 ,/()-]{1,40})$")
_RENDER_ENV = {
    **os.environ,
    "MANWIDTH": "80",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "MAN_KEEP_FORMATTING": "",
}


def man_page_paths(sections: tuple[str, ...] = ("1", "5", "7", "8")) -> dict[str, Path]:
    """`name(section)` → the page's file, for the English pages installed (cloud-SDK subcommands left out)."""
    found = {}
    for section in sections:
        folder = MAN_ROOT / f"man{section}"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            name = path.name.removesuffix(".gz")
            stem, _, suffix = name.rpartition(".")
            # A page of the section itself before one of a suffix (cmp.1 before cmp.1ssl).
            key = f"{stem}({section})"
            if stem and suffix.startswith(section) and key not in found and not stem.startswith("gcloud_"):
                found[key] = path
    return found


def render_man(path: Path, name: str, *, attempts: int = 3) -> str:
    """A manual page as Markdown: `# name`, then `## SECTION` headings over dedented paragraphs
    (no hyphenation or justification). Empty when man-db cannot render it."""
    raw = ""
    for _ in range(attempts):  # man-db fails now and then when several renders run at once
        try:
            raw = subprocess.run(
                ["man", "--nh", "--nj", "-P", "cat", "-l", str(path)],
                capture_output=True,
                text=True,
                env=_RENDER_ENV,
                timeout=300,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            raw = ""
        if raw.strip():
            break
    lines = _OVERSTRIKE.sub("", raw).splitlines()
    if len(lines) < 3:
        return ""
    out = [f"# {name}"]
    for line in lines[1:-1]:  # the first and last lines are the page's header and footer
        heading = _SECTION.match(line)
        out.append(f"\n## {heading.group(1).title()}\n" if heading else line.strip())
    return "\n".join(out).strip() + "\n"


def man_pages(
    names: list[str] | None = None, *, limit: int | None = None, workers: int = 2
) -> dict[str, str]:
    """`name(section)` → the rendered page, for `names` (those installed; a bare name is the page of section
    1, else 8) or the first `limit` pages."""
    paths = man_page_paths()
    if names is None:
        chosen = list(paths)[:limit]
    else:
        chosen = [
            next((f"{n}({s})" for s in "18" if f"{n}({s})" in paths), n) if "(" not in n else n for n in names
        ]
        chosen = [n for n in dict.fromkeys(chosen) if n in paths]
    with ThreadPoolExecutor(workers) as pool:
        texts = list(pool.map(lambda name: render_man(paths[name], name), chosen))
    return {name: text for name, text in zip(chosen, texts, strict=True) if text.strip()}


def pydoc_modules(limit: int | None = None) -> dict[str, str]:
    """Module name → pydoc's plain-text page, for the standard library's public top-level modules."""
    skip = {"antigravity", "this", "idlelib", "turtledemo", "tkinter", "turtle", "pydoc_data"}
    docs = {}
    warnings.simplefilter("ignore")
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in skip:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                docs[name] = pydoc.render_doc(importlib.import_module(name), renderer=pydoc.plaintext)
        except BaseException:  # noqa: S112 (a module that cannot be imported here is left out)
            continue
        if limit and len(docs) >= limit:
            break
    return docs


def distinct(pages: dict[str, str]) -> dict[str, str]:
    """The pages without the copies installed under another name (gunzip is gzip's page)."""
    seen, out = set(), {}
    for name, text in pages.items():
        body = text.split("\n", 1)[-1]
        if body not in seen:
            seen.add(body)
            out[name] = text
    return out


# --- question templates (the tuning split of the manual-page corpus) ----------------------------------------

_NAME_LINE = re.compile(r"## Name\n\n(.+?)\n\n", re.S)
_OPTION = re.compile(r"^(-{1,2}[A-Za-z0-9][\w-]*(?:[ =,\[][^\n]*)?)$")
NAME_TEMPLATES = ["{d}", "how to {d}", "which command will {d}", "I need a tool to {d}", "{d} on linux"]
OPTION_TEMPLATES = ["{d}", "how can I {d}", "option to {d}", "is there a flag that will {d}"]


def _name_description(text: str) -> str | None:
    found = _NAME_LINE.search(text)
    if not found:
        return None
    line = " ".join(found.group(1).split())
    for dash in (" - ", " — ", " ‐ "):
        if dash in line:
            return line.split(dash, 1)[1].rstrip(".")
    return None


def _option_descriptions(text: str) -> list[str]:
    """First sentences of the descriptions under option lines (`-a, --all` then its text)."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.strip().splitlines()
        if not lines or not _OPTION.match(lines[0].split("  ")[0]):
            continue
        rest = lines[1:] if len(lines) > 1 else []
        inline = re.split(r"\s{3,}", lines[0], maxsplit=1)
        if not rest and len(inline) == 2:
            rest = [inline[1]]
        sentence = re.split(r"(?<=[.;:])\s", " ".join(" ".join(rest).split()))[0].rstrip(".;:")
        if 5 <= len(sentence.split()) <= 20 and not sentence.startswith("-"):
            found.append(sentence)
    return found


def man_template_questions(pages: dict[str, str], n: int, seed: int) -> list[tuple[str, str]]:
    """(question, page) pairs written from each page's NAME line and option descriptions with a few sentence
    templates; an option description found in more than one page is not used."""
    rng = random.Random(seed)
    options = {name: _option_descriptions(text) for name, text in pages.items()}
    count: dict[str, int] = {}
    for found in options.values():
        for sentence in set(s.lower() for s in found):
            count[sentence] = count.get(sentence, 0) + 1
    questions = []
    for name, text in pages.items():
        description = _name_description(text)
        if description:
            questions.append(
                (rng.choice(NAME_TEMPLATES).format(d=description[0].lower() + description[1:]), name)
            )
        own = [
            s for s in options[name] if count[s.lower()] == 1 and name.split("(")[0].lower() not in s.lower()
        ]
        for sentence in rng.sample(own, min(2, len(own))):
            questions.append(
                (rng.choice(OPTION_TEMPLATES).format(d=sentence[0].lower() + sentence[1:]), name)
            )
    return rng.sample(questions, min(n, len(questions)))


# --- the standard library's docstrings ----------------------------------------------------------------------

MODULES = [
    "os",
    "os.path",
    "shutil",
    "json",
    "re",
    "string",
    "textwrap",
    "itertools",
    "functools",
    "collections",
    "heapq",
    "bisect",
    "math",
    "statistics",
    "random",
    "datetime",
    "calendar",
    "pathlib",
    "glob",
    "fnmatch",
    "tempfile",
    "csv",
    "hashlib",
    "base64",
    "binascii",
    "zlib",
    "gzip",
    "tarfile",
    "zipfile",
    "urllib.parse",
    "html",
    "email.utils",
    "uuid",
    "secrets",
    "operator",
    "copy",
    "pprint",
    "inspect",
    "ast",
    "dis",
    "threading",
    "queue",
    "subprocess",
    "socket",
    "select",
    "asyncio",
    "contextlib",
    "abc",
    "typing",
    "decimal",
    "fractions",
    "difflib",
    "unicodedata",
    "locale",
    "gettext",
    "logging",
    "warnings",
    "time",
]


def documented_functions() -> dict[str, str]:
    """Qualified name → passage (name, blank line, docstring) for each public callable with a real docstring
    in MODULES."""
    found: dict[str, str] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in sorted(vars(module).items()):
            if (
                attr.startswith("_")
                or not callable(obj)
                or getattr(obj, "__module__", name) not in (name, module.__name__)
            ):
                continue
            doc = inspect.getdoc(obj) or ""
            first = doc.split("\n\n")[0].replace("\n", " ").strip()
            if len(first.split()) < 6 or len(doc) > 3000:
                continue
            found[f"{name}.{attr}"] = f"{name}.{attr}\n\n{doc}"
    return found


def known_item_questions(docs: dict[str, str], n: int, seed: int) -> list[tuple[str, str]]:
    """(question, name) pairs: a docstring's first sentence with the function's own name removed."""
    questions = []
    for qualified, passage in docs.items():
        attr = qualified.rsplit(".", 1)[1]
        doc = passage.split("\n\n", 1)[1]
        first = doc.split("\n\n")[0].replace("\n", " ").strip()
        questions.append(
            (re.sub(rf"\b{re.escape(attr)}\b", "it", first.split(". ")[0]).rstrip(".") + "?", qualified)
        )
    return random.Random(seed).sample(questions, min(n, len(questions)))
