#!/usr/bin/env python3
"""A deliberately badly written auto-responder, for mail-loop tests:

    naive_responder.py ENV USER SECONDS

ENV is a stack's DIR/env (or DIR itself), USER a local part or
USER@example.test.  It logs in over IMAP as USER@example.test and, for
SECONDS, answers every message that arrives in INBOX after it started: one
reply over SMTP (SMTP_PORT, no AUTH) to the message's Reply-To, else its
From, with envelope sender USER@example.test, a fresh subject ("Thank you
for your message"), a fresh Message-ID, and none of In-Reply-To,
References, Auto-Submitted, Precedence, X-Auto-Response-Suppress or any
other header that marks automatic mail.  It ignores every RFC 3834 rule:
it answers auto-replies, bulk mail, mailing lists and <> senders alike.
Each answered message is flagged \\Answered (and stays in INBOX), so it is
answered once.

Output on stdout, one line each, flushed at once:

    ready user=U uidnext=N                       logged in; mail from now on is answered
    reply uid=N to=ADDR message-id=<...> orig-subject='...'  (one reply sent)
    error uid=N to=ADDR ...                      SMTP refused the reply (not counted)
    replies=N                                    last line, on exit (also on SIGTERM/SIGINT)

Exit status 0 after SECONDS (or SIGTERM/SIGINT); 1 if login or the IMAP
session fails (after printing replies=N).  Only the Python standard library.
"""
import email
import email.policy
import email.utils
import imaplib
import os
import signal
import smtplib
import sys
import time
from email.message import EmailMessage

POLL = 0.1          # seconds between mailbox checks
SUBJECT = "Thank you for your message"


def out(line):
    print(line, flush=True)


def read_env(path):
    if os.path.isdir(path):
        path = os.path.join(path, "env")
    env = {}
    with open(path) as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition("=")
            if sep:
                env[k.strip()] = v.strip()
    return env


STOP = []


def on_signal(signum, frame):
    STOP.append(signum)   # checked between messages: a reply is never half counted


def reply_address(msg):
    for hdr in ("Reply-To", "From"):
        vals = msg.get_all(hdr) or []
        addrs = [a for _, a in email.utils.getaddresses([str(v) for v in vals]) if "@" in a]
        if addrs:
            return addrs[0]
    return None


def compose(me, to):
    # Nothing of the original (subject, IDs, quoted text) is carried over.
    r = EmailMessage()
    r["From"] = me
    r["To"] = to
    r["Subject"] = SUBJECT
    r["Date"] = email.utils.formatdate(usegmt=True)
    r["Message-ID"] = email.utils.make_msgid(domain="example.test")
    r.set_content("Hello,\n\nthank you for your message.\n"
                  "We will get back to you as soon as possible.\n\n-- \n" + me + "\n")
    return r


def main(argv):
    if len(argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    env = read_env(argv[1])
    user = argv[2] if "@" in argv[2] else argv[2] + "@" + env.get("MAIL_DOMAIN", "example.test")
    secs = float(argv[3])
    host = env.get("HOST", "127.0.0.1")
    imap_port, smtp_port = int(env["IMAP_PORT"]), int(env["SMTP_PORT"])
    deadline = time.monotonic() + secs
    replies = 0
    status = 0
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    m = None
    try:
        m = imaplib.IMAP4(host, imap_port, timeout=10)
        m.login(user, env["PASSWORD"])
        typ, data = m.select("INBOX")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"SELECT INBOX: {data}")
        # Mail already in INBOX is left alone: only UIDs >= UIDNEXT of SELECT.
        _, data = m.response("UIDNEXT")
        if not data or data[0] is None:
            _, data = m.status("INBOX", "(UIDNEXT)")
            data = [data[0].decode().split("UIDNEXT")[1].strip(" )")]
        first = int(data[0])
        out(f"ready user={user} uidnext={first}")
        while not STOP:
            m.noop()   # lets Dovecot report new mail
            typ, data = m.uid("SEARCH", None, f"UID {first}:*", "UNANSWERED")
            uids = [int(u) for u in data[0].split() if int(u) >= first] if typ == "OK" else []
            for uid in uids:
                if STOP:
                    break
                typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[HEADER])")
                raw = next((p[1] for p in data if isinstance(p, tuple)), b"")
                msg = email.message_from_bytes(raw, policy=email.policy.compat32)
                to = reply_address(msg)
                subj = str(msg.get("Subject", "")).replace("\n", " ").replace("\r", "")
                if to is None:
                    out(f"error uid={uid} to=? no Reply-To/From address")
                else:
                    r = compose(user, to)
                    try:
                        with smtplib.SMTP(host, smtp_port, timeout=10) as s:
                            s.send_message(r, from_addr=user, to_addrs=[to])
                        replies += 1
                        out(f"reply uid={uid} to={to} message-id={r['Message-ID']} "
                            f"orig-subject={subj!r}")
                    except (smtplib.SMTPException, OSError) as e:
                        out(f"error uid={uid} to={to} {type(e).__name__}: {e}")
                # answered (or unanswerable) once, never again
                m.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Answered)")
            if time.monotonic() >= deadline:
                break
            time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
    except (imaplib.IMAP4.error, OSError) as e:
        print(f"naive_responder: {user}: {type(e).__name__}: {e}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if m is not None:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
        out(f"replies={replies}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
