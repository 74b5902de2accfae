#!/usr/bin/env python3
"""End-to-end self-test of tests/mailstack/mailstack.sh (run as root):

    python3 tests/mailstack/selftest.py [-v]

Starts its own stack in a temporary directory, checks IMAP/IMAPS/STARTTLS
(with the test CA and the wrong CA), LMTP delivery via Postfix, submission
with AUTH PLAIN and XOAUTH2, IMAP XOAUTH2/OAUTHBEARER, IDLE, Sieve vacation
(RFC 3834: a reply to human mail, none to Auto-Submitted mail), the naive
auto-responder, restarting Dovecot and Postfix on the same ports, two
further stacks started in parallel, then stops everything.  Exits non-zero
on the first failure.
"""
import email
import email.policy
import email.utils
import imaplib
import os
import pwd
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email.message import EmailMessage

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mailstack.sh")
RESPONDER = os.path.join(HERE, "naive_responder.py")
VERBOSE = "-v" in sys.argv
REQUIRED_KEYS = [
    "IMAP_PORT", "IMAPS_PORT", "LMTP_PORT", "SMTP_PORT", "SUBMISSION_PORT",
    "INTROSPECT_PORT", "CA_FILE", "WRONG_CA_FILE", "MAIL_ROOT", "DOVECOT_CONF",
    "POSTFIX_DIR", "PASSWORD", "OAUTH_TOKEN",
]
T0 = time.monotonic()
results = []


def say(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)
    if VERBOSE:
        say(f"  ok: {what}")


def run(*args, timeout=120):
    """Run mailstack.sh with captured output: also proves that no daemon
    keeps our pipes open (subprocess.run would hang until timeout)."""
    t = time.monotonic()
    p = subprocess.run([SCRIPT, *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    dt = time.monotonic() - t
    if VERBOSE and p.stderr.strip():
        say(f"  mailstack.sh {args[0]} ({dt:.2f}s):\n" + p.stderr.rstrip())
    if p.returncode != 0:
        raise Fail(f"mailstack.sh {' '.join(args)} exited {p.returncode}\n"
                   f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return dt, p


def read_env(d):
    env = {}
    with open(os.path.join(d, "env")) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                env[k] = v
    return env


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def ctx(cafile):
    c = ssl.create_default_context(cafile=cafile)
    c.check_hostname = True
    c.verify_mode = ssl.CERT_REQUIRED
    return c


def imap_login(env, user, tls="none", cafile=None, host="127.0.0.1"):
    port = int(env["IMAPS_PORT"] if tls == "implicit" else env["IMAP_PORT"])
    if tls == "implicit":
        m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx(cafile or env["CA_FILE"]), timeout=10)
    else:
        m = imaplib.IMAP4(host, port, timeout=10)
        if tls == "starttls":
            m.starttls(ssl_context=ctx(cafile or env["CA_FILE"]))
    m.login(user, env["PASSWORD"])
    return m


def message(frm, to, subject, body="hello\r\n"):
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4()}@selftest.example.test>"
    msg.set_content(body)
    return msg


def wait_for_subject(env, user, subject, timeout=30.0):
    """Poll user's INBOX until a message with `subject` shows up."""
    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        try:
            m = imap_login(env, user)
            try:
                m.select("INBOX")
                typ, data = m.uid("SEARCH", None, "HEADER", "Subject", subject)
                if typ == "OK" and data[0].split():
                    if VERBOSE:
                        say(f"  {subject!r} in {user}'s INBOX after {timeout - (deadline - time.monotonic()):.2f}s")
                    return len(data[0].split())
            finally:
                m.logout()
        except (OSError, imaplib.IMAP4.error) as e:
            last_err = e
        time.sleep(0.2)
    raise Fail(f"{subject!r} never reached {user}'s INBOX (last error: {last_err})")


def inbox_headers(env, user):
    """The parsed headers of every message in user's INBOX, oldest first."""
    m = imap_login(env, user)
    try:
        typ, data = m.select("INBOX")
        if typ != "OK" or int(data[0]) == 0:
            return []
        typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER])")
        out = []
        for part in data:
            if isinstance(part, tuple):
                h = email.message_from_bytes(part[1], policy=email.policy.compat32)
                h["X-Selftest-Flags"] = part[0].decode()   # "1 (FLAGS (...) BODY[HEADER] {n}"
                out.append(h)
        return out
    finally:
        m.logout()


def wait_headers(env, user, subject, n=1, timeout=15.0):
    """Poll user's INBOX until at least n messages with exactly `subject`
    are there; return them."""
    deadline = time.monotonic() + timeout
    while True:
        hs = [h for h in inbox_headers(env, user) if h["Subject"] == subject]
        if len(hs) >= n:
            return hs
        if time.monotonic() > deadline:
            raise Fail(f"{user}: {len(hs)} of {n} messages {subject!r} after {timeout}s")
        time.sleep(0.02)


def wait_log(path, needle, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        with open(path, errors="replace") as f:
            if needle in f.read():
                return
        if time.monotonic() > deadline:
            raise Fail(f"{path} never said {needle!r}")
        time.sleep(0.05)


def xoauth2(user, token):
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user, token):
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01"


def imap_sasl(env, mech, payload):
    """AUTHENTICATE mech; return (ok, text).  On failure Dovecot sends a JSON
    error challenge that the client must answer with an empty line."""
    m = imaplib.IMAP4("127.0.0.1", int(env["IMAP_PORT"]), timeout=10)
    calls = []

    def cb(challenge):
        calls.append(challenge)
        return payload.encode() if len(calls) == 1 else b""

    try:
        typ, data = m.authenticate(mech, cb)
        ok = typ == "OK"
        if ok:
            typ, _ = m.select("INBOX")
            ok = typ == "OK"
        m.logout()
        return ok, data, calls
    except imaplib.IMAP4.error as e:
        return False, str(e), calls


def smtp_sasl(env, mech, payload):
    s = smtplib.SMTP("127.0.0.1", int(env["SUBMISSION_PORT"]), timeout=10)
    s.ehlo("selftest.example.test")
    calls = []

    def obj(challenge=None):
        calls.append(challenge)
        return payload if len(calls) == 1 else ""

    try:
        code, resp = s.auth(mech, obj)
        return s, code, resp
    except smtplib.SMTPAuthenticationError as e:
        s.quit()
        return None, e.smtp_code, e.smtp_error


class RawImap:
    """Minimal IMAP client for IDLE (imaplib in 3.11 has no idle())."""

    def __init__(self, port, user, password):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")
        self.n = 0
        check(self.line().startswith(b"* OK"), "IDLE client greeting")
        self.cmd(f'LOGIN "{user}" "{password}"')
        self.cmd("SELECT INBOX")

    def line(self):
        ln = self.f.readline()
        if not ln:
            raise EOFError("connection closed")
        if VERBOSE:
            say(f"  S: {ln!r}")
        return ln

    def cmd(self, text):
        self.n += 1
        tag = f"a{self.n}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                check(ln.startswith(tag + b" OK"), f"IMAP {text.split()[0]} OK: {ln!r}")
                return

    def idle(self):
        self.n += 1
        self.idle_tag = f"a{self.n}".encode()
        self.sock.sendall(self.idle_tag + b" IDLE\r\n")
        while True:
            ln = self.line()
            if ln.startswith(b"+"):
                return

    def wait_exists(self, timeout):
        self.sock.settimeout(timeout)
        while True:
            ln = self.line()
            if ln.startswith(b"* ") and ln.rstrip().endswith(b"EXISTS"):
                return int(ln.split()[1])

    def done(self):
        self.sock.settimeout(10)
        self.sock.sendall(b"DONE\r\n")
        while True:
            ln = self.line()
            if ln.startswith(self.idle_tag + b" "):
                check(ln.startswith(self.idle_tag + b" OK"), "IDLE DONE -> OK")
                return

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def step(name):
    def deco(fn):
        def wrapper(*a, **kw):
            t = time.monotonic()
            fn(*a, **kw)
            results.append((name, time.monotonic() - t))
            say(f"PASS {name} ({time.monotonic() - t:.2f}s)")
        return wrapper
    return deco


# ------------------------------------------------------------------ steps --

@step("env file has every documented key")
def t_env(env, d):
    for k in REQUIRED_KEYS:
        check(k in env and env[k], f"env has {k}")
    check(env["PASSWORD"] == "secret" and env["OAUTH_TOKEN"] == "good-token", "PASSWORD/OAUTH_TOKEN values")
    ports = [int(env[k]) for k in REQUIRED_KEYS if k.endswith("_PORT")]
    check(len(set(ports)) == len(ports), "ports are distinct")
    for k in ("CA_FILE", "WRONG_CA_FILE", "DOVECOT_CONF"):
        check(os.path.isfile(env[k]), f"{k} exists")
    check(os.path.isdir(env["POSTFIX_DIR"]) and os.path.isdir(env["MAIL_ROOT"]), "POSTFIX_DIR/MAIL_ROOT exist")
    check(all(v.startswith(d) for k, v in env.items()
              if k in ("CA_FILE", "WRONG_CA_FILE", "MAIL_ROOT", "DOVECOT_CONF", "POSTFIX_DIR")),
          "paths are under DIR")


@step("IMAP plaintext login + APPEND + capabilities")
def t_imap_plain(env):
    m = imap_login(env, "alice@example.test")
    typ, data = m.capability()   # post-login list (imaplib keeps the pre-login one)
    caps = set(data[0].decode().upper().split())
    for c in ("IDLE", "MOVE", "UIDPLUS", "CONDSTORE"):
        check(c in caps, f"capability {c}")
    msg = message("someone@elsewhere.test", "alice@example.test", "append-1")
    typ, data = m.append("INBOX", None, None, msg.as_bytes())
    check(typ == "OK" and b"APPENDUID" in data[0], f"APPEND OK with APPENDUID: {data}")
    typ, data = m.select("INBOX")
    check(typ == "OK" and int(data[0]) == 1, f"INBOX has 1 message: {data}")
    m.logout()
    # a user outside example.test is refused
    try:
        imap_login(env, "mallory@other.test")
        raise Fail("login for other domain should fail")
    except imaplib.IMAP4.error:
        pass
    try:
        m = imaplib.IMAP4("127.0.0.1", int(env["IMAP_PORT"]), timeout=10)
        m.login("alice@example.test", "wrong")
        raise Fail("wrong password should fail")
    except imaplib.IMAP4.error:
        pass
    check(os.path.isdir(os.path.join(env["MAIL_ROOT"], "example.test", "alice", "Maildir")),
          "alice's Maildir under MAIL_ROOT/example.test/alice")


@step("IMAPS and STARTTLS verified against CA_FILE; WRONG_CA_FILE refused")
def t_tls(env):
    pre = imaplib.IMAP4("127.0.0.1", int(env["IMAP_PORT"]), timeout=10)
    check("STARTTLS" in pre.capabilities, "STARTTLS advertised")
    pre.logout()
    for host in ("127.0.0.1", "localhost"):
        for mode in ("implicit", "starttls"):
            m = imap_login(env, "alice@example.test", tls=mode, host=host)
            check(m.select("INBOX")[0] == "OK", f"{mode} via {host}")
            m.logout()
            try:
                imap_login(env, "alice@example.test", tls=mode, cafile=env["WRONG_CA_FILE"], host=host)
                raise Fail(f"{mode} with WRONG_CA_FILE must fail")
            except ssl.SSLCertVerificationError:
                pass
    # hostname mismatch is refused too
    c = ctx(env["CA_FILE"])
    with socket.create_connection(("127.0.0.1", int(env["IMAPS_PORT"])), timeout=10) as s:
        try:
            c.wrap_socket(s, server_hostname="imap.example.org")
            raise Fail("wrong hostname must fail")
        except ssl.SSLCertVerificationError:
            pass


@step("SMTP (SMTP_PORT, STARTTLS; SMTPS_PORT, implicit TLS) -> Postfix -> LMTP -> Dovecot, read over IMAP")
def t_smtp(env):
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        s.ehlo("selftest.example.test")
        check(s.has_extn("starttls"), "SMTP offers STARTTLS")
        s.send_message(message("requester@elsewhere.test", "bob@example.test", "smtp-plain"))
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        s.starttls(context=ctx(env["CA_FILE"]))
        s.ehlo("selftest.example.test")
        s.send_message(message("requester@elsewhere.test", "bob@example.test", "smtp-starttls"))
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        try:
            s.starttls(context=ctx(env["WRONG_CA_FILE"]))
            raise Fail("SMTP STARTTLS with wrong CA must fail")
        except ssl.SSLCertVerificationError:
            pass
    with smtplib.SMTP_SSL("127.0.0.1", int(env["SMTPS_PORT"]), timeout=10,
                          context=ctx(env["CA_FILE"])) as s:
        s.ehlo("selftest.example.test")
        s.send_message(message("requester@elsewhere.test", "bob@example.test", "smtp-implicit-tls"))
    try:
        smtplib.SMTP_SSL("127.0.0.1", int(env["SMTPS_PORT"]), timeout=10,
                         context=ctx(env["WRONG_CA_FILE"]))
        raise Fail("SMTP implicit TLS with wrong CA must fail")
    except ssl.SSLCertVerificationError:
        pass
    wait_for_subject(env, "bob@example.test", "smtp-plain")
    wait_for_subject(env, "bob@example.test", "smtp-starttls")
    wait_for_subject(env, "bob@example.test", "smtp-implicit-tls")
    # mail to other domains never leaves: refused at RCPT
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        try:
            s.send_message(message("bob@example.test", "someone@gmail.com", "relay"))
            raise Fail("relay to other domain must be refused")
        except smtplib.SMTPRecipientsRefused as e:
            code = list(e.recipients.values())[0][0]
            check(code == 554, f"relay refused with 554 (got {code})")
        for rcpt, want in (("tempfail@example.test", 451), ("permfail@example.test", 550)):
            try:
                s.send_message(message("bob@example.test", rcpt, "special"))
                raise Fail(f"{rcpt} must be refused")
            except smtplib.SMTPRecipientsRefused as e:
                code = list(e.recipients.values())[0][0]
                check(code == want, f"{rcpt} -> {want} (got {code})")


@step("submission requires AUTH; AUTH PLAIN (plain and after STARTTLS) sends")
def t_submission(env):
    port = int(env["SUBMISSION_PORT"])
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("selftest.example.test")
        mechs = s.esmtp_features.get("auth", "").upper().split()
        check("PLAIN" in mechs, f"submission offers AUTH PLAIN ({mechs})")
        check("XOAUTH2" in mechs, f"submission offers AUTH XOAUTH2 ({mechs})")
        try:
            s.send_message(message("carol@example.test", "bob@example.test", "unauth"))
            raise Fail("unauthenticated submission must be refused")
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused):
            pass
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("selftest.example.test")
        try:
            s.login("carol@example.test", "wrong")
            raise Fail("wrong password on submission must fail")
        except smtplib.SMTPAuthenticationError as e:
            check(e.smtp_code == 535, f"wrong password -> 535 (got {e.smtp_code})")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("selftest.example.test")
        s.login("carol@example.test", env["PASSWORD"])   # smtplib picks the mechanism
        s.send_message(message("carol@example.test", "bob@example.test", "submission-login"))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.starttls(context=ctx(env["CA_FILE"]))
        s.ehlo("selftest.example.test")
        code, _ = s.auth("PLAIN", lambda challenge=None: f"\0carol@example.test\0{env['PASSWORD']}")
        check(code == 235, "AUTH PLAIN after STARTTLS -> 235")
        s.send_message(message("carol@example.test", "bob@example.test", "submission-plain-tls"))
        # authenticated, but still no relaying out of the machine
        try:
            s.send_message(message("carol@example.test", "x@gmail.com", "submission-relay"))
            raise Fail("submission relay outside example.test must be refused")
        except smtplib.SMTPRecipientsRefused:
            pass
    wait_for_subject(env, "bob@example.test", "submission-login")
    wait_for_subject(env, "bob@example.test", "submission-plain-tls")


@step("XOAUTH2/OAUTHBEARER: IMAP and submission, good and bad tokens")
def t_oauth(env):
    good, bad = env["OAUTH_TOKEN"], "bad-token"
    ok, data, _ = imap_sasl(env, "XOAUTH2", xoauth2("dave@example.test", good))
    check(ok, f"IMAP XOAUTH2 good token: {data}")
    ok, data, calls = imap_sasl(env, "XOAUTH2", xoauth2("dave@example.test", bad))
    check(not ok, f"IMAP XOAUTH2 bad token refused: {data}")
    check(len(calls) == 2 and b'"status"' in calls[1], f"XOAUTH2 failure sends JSON error challenge: {calls}")
    check("UNAVAILABLE" not in str(data), f"bad token is an auth failure, not a tempfail: {data}")
    ok, data, _ = imap_sasl(env, "XOAUTH2", xoauth2("dave@other.test", good))
    check(not ok, "IMAP XOAUTH2 good token for a non-example.test user refused")
    ok, data, _ = imap_sasl(env, "XOAUTH2", xoauth2("dave@example.test", env["PASSWORD"]))
    check(not ok, "the PLAIN password is not accepted as a token")
    ok, data, _ = imap_sasl(env, "OAUTHBEARER", oauthbearer("dave@example.test", good))
    check(ok, f"IMAP OAUTHBEARER good token: {data}")
    ok, data, _ = imap_sasl(env, "OAUTHBEARER", oauthbearer("dave@example.test", bad))
    check(not ok, "IMAP OAUTHBEARER bad token refused")
    # PLAIN must not accept the token as a password
    try:
        m = imaplib.IMAP4("127.0.0.1", int(env["IMAP_PORT"]), timeout=10)
        m.login("dave@example.test", good)
        raise Fail("token must not work as a PLAIN password")
    except imaplib.IMAP4.error:
        pass

    s, code, resp = smtp_sasl(env, "XOAUTH2", xoauth2("erin@example.test", good))
    check(s is not None and code == 235, f"SMTP XOAUTH2 good token -> 235 ({code} {resp})")
    s.send_message(message("erin@example.test", "bob@example.test", "submission-xoauth2"))
    s.quit()
    s, code, resp = smtp_sasl(env, "XOAUTH2", xoauth2("erin@example.test", bad))
    check(s is None and code == 535, f"SMTP XOAUTH2 bad token -> 535 ({code} {resp})")
    s, code, resp = smtp_sasl(env, "OAUTHBEARER", oauthbearer("erin@example.test", good))
    check(s is not None and code == 235, f"SMTP OAUTHBEARER good token -> 235 ({code} {resp})")
    s.quit()
    wait_for_subject(env, "bob@example.test", "submission-xoauth2")

    # rotating tokens: the endpoint re-reads OAUTH_TOKENS_FILE per request
    tf = env.get("OAUTH_TOKENS_FILE")
    if tf:
        with open(tf, "w") as f:
            f.write("rotated-token\n")
        try:
            ok, _, _ = imap_sasl(env, "XOAUTH2", xoauth2("dave@example.test", good))
            check(not ok, "revoked good-token refused")
            ok, _, _ = imap_sasl(env, "XOAUTH2", xoauth2("dave@example.test", "rotated-token"))
            check(ok, "rotated token accepted")
        finally:
            with open(tf, "w") as f:
                f.write("good-token\n")


@step("IDLE: an APPEND wakes a client sitting in IDLE")
def t_idle(env):
    c = RawImap(int(env["IMAP_PORT"]), "frank@example.test", env["PASSWORD"])
    try:
        c.idle()
        t = time.monotonic()
        m = imap_login(env, "frank@example.test")
        m.append("INBOX", None, None, message("x@elsewhere.test", "frank@example.test", "idle-1").as_bytes())
        m.logout()
        n = c.wait_exists(10)
        check(n == 1, f"EXISTS 1 during IDLE (got {n}) after {time.monotonic() - t:.3f}s")
        if VERBOSE:
            say(f"  IDLE wake-up latency {time.monotonic() - t:.3f}s")
        c.done()
    finally:
        c.close()


@step("Sieve vacation: a reply to each human message, none to Auto-Submitted mail")
def t_vacation(env, d):
    check(shutil.which("sievec") is not None, "dovecot-sieve installed (sievec)")
    dt, _ = run("vacation", d, "victor")
    run("vacation", d, "Victor@example.test", "Out of office")   # idempotent; same user
    home = os.path.join(env["MAIL_ROOT"], "example.test", "victor")
    link, svbin = os.path.join(home, ".dovecot.sieve"), os.path.join(home, ".dovecot.svbin")
    check(os.readlink(link) == "sieve/vacation.sieve", "active script link ~/.dovecot.sieve")
    vmail = pwd.getpwnam("vmail").pw_uid
    for p in (home, link, svbin, os.path.join(home, "sieve", "vacation.sieve")):
        check(os.lstat(p).st_uid == vmail, f"{os.path.relpath(p, home)} owned by vmail")
    compiled = os.stat(svbin).st_mtime_ns
    log = env["DOVECOT_LOG"]

    human = message("Wendy Human <wendy@example.test>", "victor@example.test", "vacation-human-1")
    auto = message("xavier@example.test", "victor@example.test", "vacation-auto")
    auto["Auto-Submitted"] = "auto-replied"
    t = time.monotonic()
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        s.send_message(human)
        s.send_message(auto)
    r = wait_headers(env, "wendy@example.test", "Out of office")[0]
    latency = time.monotonic() - t
    check(email.utils.parseaddr(r["From"])[1] == "victor@example.test", f"reply From: victor ({r['From']})")
    check(email.utils.parseaddr(r["To"])[1] == "wendy@example.test", f"reply To: wendy ({r['To']})")
    check(r["Return-Path"] == "<victor@example.test>", f"reply envelope sender victor ({r['Return-Path']})")
    check((r["Auto-Submitted"] or "").startswith("auto-replied"), f"reply Auto-Submitted: {r['Auto-Submitted']}")
    check(r["In-Reply-To"] == human["Message-ID"], "reply In-Reply-To the human message")
    wait_log(log, "sent vacation response to <wendy@example.test>")
    wait_log(log, "discarding vacation response to auto-submitted message from <xavier@example.test>")
    # :seconds 0: a second message from the same sender is answered too
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        s.send_message(message("wendy@example.test", "victor@example.test", "vacation-human-2"))
    wait_headers(env, "wendy@example.test", "Out of office", n=2)
    subjects = sorted(h["Subject"] for h in inbox_headers(env, "victor@example.test"))
    check(subjects == ["vacation-auto", "vacation-human-1", "vacation-human-2"],
          f"all three delivered to victor's INBOX: {subjects}")
    time.sleep(1.0)   # replies take well under 0.5 s: a late or extra one would be here now
    n = len([h for h in inbox_headers(env, "wendy@example.test") if h["Subject"] == "Out of office"])
    check(n == 2, f"exactly one reply per human message (wendy has {n})")
    check(inbox_headers(env, "xavier@example.test") == [], "no reply to the Auto-Submitted message")
    check(os.stat(svbin).st_mtime_ns == compiled, "precompiled binary used (not recompiled at delivery)")
    if VERBOSE:
        say(f"  mailstack.sh vacation took {dt:.2f}s; vacation reply arrived {latency:.3f}s after sending")


@step("naive responder: answers each message once, Auto-Submitted or not, with no automatic headers")
def t_naive_responder(env, d):
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, RESPONDER, os.path.join(d, "env"), "nora", "2"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        ready = p.stdout.readline()
        check(ready.startswith("ready user=nora@example.test "), f"responder ready: {ready!r}")
        if VERBOSE:
            say(f"  responder ready after {time.monotonic() - t0:.2f}s")
        ack = message("ticketd <support@example.test>", "nora@example.test", "[#7] We received your request")
        ack["Reply-To"] = "rita@example.test"
        ack["Auto-Submitted"] = "auto-replied"
        ack["Precedence"] = "bulk"
        t = time.monotonic()
        with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
            s.send_message(ack)
        r = wait_headers(env, "rita@example.test", "Thank you for your message")[0]
        latency = time.monotonic() - t
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    lines = out.splitlines()
    check(p.returncode == 0, f"responder exit 0 (got {p.returncode}; stderr {err!r})")
    check(lines[-1] == "replies=1", f"responder reports replies=1: {lines}")
    check(len([ln for ln in lines if ln.startswith("reply ")]) == 1, "one reply line")
    check(email.utils.parseaddr(r["To"])[1] == "rita@example.test", "reply goes to Reply-To")
    check(r["Return-Path"] == "<nora@example.test>", f"envelope sender nora ({r['Return-Path']})")
    check(r["Message-ID"] and r["Message-ID"] != ack["Message-ID"], "fresh Message-ID")
    for h in ("In-Reply-To", "References", "Auto-Submitted", "Precedence", "X-Auto-Response-Suppress"):
        check(r[h] is None, f"reply has no {h}")
    n = len([h for h in inbox_headers(env, "rita@example.test") if h["Subject"] == "Thank you for your message"])
    check(n == 1, f"exactly one reply (rita has {n})")
    got = inbox_headers(env, "nora@example.test")
    check(len(got) == 1 and "\\Answered" in got[0]["X-Selftest-Flags"],
          f"the message stays in nora's INBOX, flagged \\Answered: {[g['X-Selftest-Flags'] for g in got]}")
    if VERBOSE:
        say(f"  naive reply arrived {latency:.3f}s after sending")


@step("stop-dovecot/start-dovecot: same ports, IDLE client dropped, queued mail delivered")
def t_restart_dovecot(env, d):
    c = RawImap(int(env["IMAP_PORT"]), "grace@example.test", env["PASSWORD"])
    c.idle()
    run("stop-dovecot", d)
    check(not port_open(int(env["IMAP_PORT"])), "IMAP port closed while Dovecot is down")
    try:
        c.sock.settimeout(10)
        while True:
            ln = c.line()   # '* BYE Server shutting down.' then EOF
            if VERBOSE:
                say(f"  during shutdown: {ln!r}")
    except (EOFError, ConnectionError):
        pass
    finally:
        c.close()
    run("stop-dovecot", d)   # idempotent
    # mail accepted by Postfix while Dovecot is down waits in the queue
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        s.send_message(message("x@elsewhere.test", "grace@example.test", "while-dovecot-down"))
    dt, _ = run("start-dovecot", d)
    check(port_open(int(env["IMAP_PORT"])) and port_open(int(env["IMAPS_PORT"])), "same IMAP/IMAPS ports after restart")
    run("start-dovecot", d)  # idempotent
    wait_for_subject(env, "grace@example.test", "while-dovecot-down", timeout=30)
    m = imap_login(env, "alice@example.test", tls="implicit")
    typ, data = m.select("INBOX")
    check(int(data[0]) == 1, "alice's appended message survived the restart")
    m.logout()
    if VERBOSE:
        say(f"  start-dovecot took {dt:.2f}s")


@step("stop-postfix/start-postfix: same ports, queued mail not lost")
def t_restart_postfix(env, d):
    # Put a message in Postfix's queue (Dovecot down -> deferred), then stop
    # Postfix, start Dovecot, start Postfix: the message must arrive.
    run("stop-dovecot", d)
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        s.send_message(message("x@elsewhere.test", "heidi@example.test", "queued-across-postfix-restart"))
    time.sleep(0.5)
    run("stop-postfix", d)
    check(not port_open(int(env["SMTP_PORT"])), "SMTP port closed while Postfix is down")
    check(not port_open(int(env["SUBMISSION_PORT"])), "submission port closed while Postfix is down")
    run("stop-postfix", d)   # idempotent
    run("start-dovecot", d)
    dt, _ = run("start-postfix", d)
    run("start-postfix", d)  # idempotent
    check(port_open(int(env["SMTP_PORT"])) and port_open(int(env["SUBMISSION_PORT"])), "same SMTP ports after restart")
    wait_for_subject(env, "heidi@example.test", "queued-across-postfix-restart", timeout=30)
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as s:
        s.send_message(message("x@elsewhere.test", "heidi@example.test", "after-postfix-restart"))
    wait_for_subject(env, "heidi@example.test", "after-postfix-restart")
    if VERBOSE:
        say(f"  start-postfix took {dt:.2f}s")


@step("two more stacks started in parallel: isolated from each other and from the first")
def t_parallel(env_a, tmp):
    dirs = [tempfile.mkdtemp(prefix="ms-par-", dir=tmp) for _ in range(2)]
    errors, times = [], {}

    def start(dd):
        try:
            times[dd], _ = run("start", dd)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = [threading.Thread(target=start, args=(dd,)) for dd in dirs]
    for t in th:
        t.start()
    for t in th:
        t.join()
    try:
        if errors:
            raise Fail(f"parallel start failed: {errors[0]}")
        envs = [read_env(dd) for dd in dirs]
        allports = [int(e[k]) for e in [env_a, *envs] for k in e if k.endswith("_PORT")]
        check(len(set(allports)) == len(allports), "no port shared between stacks")
        for i, e in enumerate(envs):
            with smtplib.SMTP("127.0.0.1", int(e["SMTP_PORT"]), timeout=10) as s:
                s.send_message(message("x@elsewhere.test", "ivan@example.test", f"stack-{i}"))
        for i, e in enumerate(envs):
            wait_for_subject(e, "ivan@example.test", f"stack-{i}")
            m = imap_login(e, "ivan@example.test")
            m.select("INBOX")
            typ, data = m.uid("SEARCH", None, "ALL")
            check(len(data[0].split()) == 1, f"stack {i}: ivan has exactly his own stack's mail")
            m.logout()
        m = imap_login(env_a, "ivan@example.test")
        m.select("INBOX")
        typ, data = m.uid("SEARCH", None, "ALL")
        check(len(data[0].split()) == 0, "first stack untouched by the others")
        m.logout()
        if VERBOSE:
            say("  parallel start times: " + ", ".join(f"{v:.2f}s" for v in times.values()))
    finally:
        for dd in dirs:
            try:
                run("stop", dd)
            except Fail as e:
                errors.append(e)
    if errors:
        raise Fail(f"stopping parallel stacks failed: {errors[0]}")
    for e in envs:
        check(not port_open(int(e["IMAP_PORT"])) and not port_open(int(e["SMTP_PORT"])), "parallel stack stopped")
    # the first stack is still fine
    m = imap_login(env_a, "alice@example.test")
    check(m.select("INBOX")[0] == "OK", "first stack still serves IMAP")
    m.logout()


def leftover_processes(d):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cl = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if d in cl and state != "Z":
            out.append(f"{pid}: {cl}")
    return out


@step("stop: everything gone, idempotent")
def t_stop(env, d):
    dt, _ = run("stop", d)
    for k in ("IMAP_PORT", "IMAPS_PORT", "LMTP_PORT", "SMTP_PORT", "SUBMISSION_PORT", "INTROSPECT_PORT"):
        check(not port_open(int(env[k])), f"{k} closed after stop")
    time.sleep(0.2)
    left = leftover_processes(d)
    check(not left, f"no processes left for DIR: {left}")
    for k in ("RUN_DIR", "DOVECOT_BASE_DIR", "POSTFIX_QUEUE_DIR"):
        if env.get(k):
            check(not os.path.exists(env[k]), f"{k} removed")
    out = subprocess.run(["postconf", "-c", "/etc/postfix", "-h", "alternate_config_directories"],
                         capture_output=True, text=True).stdout
    check(env["POSTFIX_DIR"] not in out, "POSTFIX_DIR unregistered from /etc/postfix/main.cf")
    run("stop", d)


def main():
    if os.geteuid() != 0:
        print("selftest must run as root (Dovecot and Postfix need it)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="mailstack-selftest-")
    os.chmod(tmp, 0o755)  # Dovecot/Postfix children (vmail, postfix) must traverse it
    d = os.path.join(tmp, "stack")
    os.mkdir(d)
    started = False
    try:
        dt, _ = run("install", timeout=900)
        say(f"install (idempotent, quiet) took {dt:.2f}s")
        dt, p = run("start", d)
        started = True
        say(f"start took {dt:.2f}s")
        start_time = dt
        env = read_env(d)
        if VERBOSE:
            say("env: " + " ".join(f"{k}={v}" for k, v in env.items()))
        t_env(env, d)
        t_imap_plain(env)
        t_tls(env)
        t_smtp(env)
        t_submission(env)
        t_oauth(env)
        t_idle(env)
        t_vacation(env, d)
        t_naive_responder(env, d)
        t_restart_dovecot(env, d)
        t_restart_postfix(env, d)
        t_parallel(env, tmp)
        t_stop(env, d)
        started = False
        say(f"ALL PASSED ({len(results)} steps; start took {start_time:.2f}s)")
        return 0
    except (Fail, AssertionError, OSError, imaplib.IMAP4.error, smtplib.SMTPException,
            subprocess.TimeoutExpired) as e:
        say(f"FAIL: {type(e).__name__}: {e}")
        for log in ("dovecot/dovecot.log", "postfix/maillog", "introspect.log"):
            p = os.path.join(d, log)
            if os.path.exists(p):
                print(f"---- {p} (tail)", file=sys.stderr)
                with open(p, errors="replace") as f:
                    print("".join(f.readlines()[-20:]), file=sys.stderr)
        return 1
    finally:
        if started:
            subprocess.run([SCRIPT, "stop", d], capture_output=True, timeout=120)
        if os.environ.get("MAILSTACK_KEEP"):
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
