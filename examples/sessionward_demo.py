"""What the two example apps share: the org factory, a toy user directory, and the HTML.

Not part of the library. The directory is an in-memory dict of passwords and a fake "outbox"
standing in for the email that carries verification codes; a real app has a user store, a
password hash (argon2/scrypt) and a mailer or an authenticator app.
"""

from __future__ import annotations

import html
import secrets
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qsl

import sessionward as sw

DEMO_PASSWORDS = {"ada": "correct horse", "bob": "battery staple", "root": "admin admin"}
"""The demo users and their passwords (printed at start-up; never do this for real)."""
ADMINS = frozenset({"root"})


def default_settings() -> sw.OrgSettings:
    """The demo policy: 30 min idle, 8 h maximum, `setup` needs HIGH_ASSURANCE, logins from
    127.0.0.1 skip the verification challenge."""
    return sw.OrgSettings(
        inactivity_timeout=timedelta(minutes=30),
        max_session_length=timedelta(hours=8),
        high_assurance_operations=["setup"],
        trusted_ranges=["127.0.0.1/32"],
    )


def make_org(
    settings: sw.OrgSettings | None = None,
    *,
    clock: sw.ManualClock | None = None,
    staff: sw.Profile | None = None,
) -> sw.Org:
    """The demo org: profiles ``staff`` (ada, bob) and ``admins`` (root). Tests pass their own
    settings, a `ManualClock` and a ``staff`` profile with overrides."""
    org = sw.Org(settings or default_settings(), clock=clock)
    org.add_profile(staff or sw.Profile("staff"))
    org.add_profile(sw.Profile("admins"))
    for user in ("ada", "bob"):
        org.add_user(user, "staff")
    org.add_user("root", "admins")
    return org


@dataclass
class Pending:
    """A login waiting for the emailed code: a challenge to complete, or an MFA login."""

    user: str
    code: str
    next_path: str
    challenge: str | None = None

    def __repr__(self) -> str:
        return f"Pending(user={self.user!r})"


@dataclass
class Directory:
    """Passwords, the fake outbox of emailed codes, and pending verifications."""

    passwords: dict[str, str] = field(default_factory=lambda: dict(DEMO_PASSWORDS))
    admins: frozenset[str] = ADMINS
    outbox: list[tuple[str, str]] = field(default_factory=list)
    pending: dict[str, Pending] = field(default_factory=dict)
    step_up_codes: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    echo: bool = False
    """Print each code (the command-line demo's stand-in for reading your email)."""

    def check_password(self, user: str, password: str) -> bool:
        expected = self.passwords.get(user)
        return expected is not None and secrets.compare_digest(
            expected.encode(), password.encode()
        )

    def send_code(self, user: str) -> str:
        """"Emails" a 6-digit code to `user` (appends it to the outbox) and returns it."""
        code = f"{secrets.randbelow(10**6):06d}"
        with self.lock:
            self.outbox.append((user, code))
        if self.echo:
            print(f"[outbox] to {user}: your code is {code}", flush=True)
        return code

    def last_code(self, user: str) -> str:
        """The newest code sent to `user` (what the user reads in their mail)."""
        with self.lock:
            return next(code for to, code in reversed(self.outbox) if to == user)

    def start_pending(self, pending: Pending) -> str:
        pid = secrets.token_urlsafe(18)
        with self.lock:
            self.pending[pid] = pending
        return pid

    def take_pending(self, pid: str, code: str) -> Pending | None:
        with self.lock:
            pending = self.pending.get(pid)
            if pending is None or not secrets.compare_digest(pending.code, code):
                return None
            del self.pending[pid]
            return pending


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the first value of each field)."""
    form: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, value)
    return form


# ----------------------------------------------------------------------------- HTML


def page(title: str, body: str, *, beacon: bool = False) -> str:
    script = sw_web_beacon() if beacon else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}{script}</body></html>"
    )


def sw_web_beacon() -> str:
    from sessionward.web import BEACON_JS

    return BEACON_JS


def login_form(next_path: str, message: str = "") -> str:
    note = f"<p class='error'>{html.escape(message)}</p>" if message else ""
    return page(
        "Log in",
        f"""{note}<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label>User <input name="user"></label>
<label>Password <input name="password" type="password"></label>
<button>Log in</button></form>
<p><a href="/password/forgot">Forgot your password?</a></p>""",
    )


def verify_form(pid: str, why: str, message: str = "") -> str:
    note = f"<p class='error'>{html.escape(message)}</p>" if message else ""
    return page(
        "Check your email",
        f"""<p>{html.escape(why)} We emailed you a 6-digit code.</p>{note}
<form method="post" action="/login/verify">
<input type="hidden" name="pid" value="{html.escape(pid)}">
<label>Code <input name="code" autocomplete="one-time-code"></label>
<button>Verify</button></form>""",
    )


def step_up_form(next_path: str, message: str = "") -> str:
    note = f"<p class='error'>{html.escape(message)}</p>" if message else ""
    return page(
        "Verify it's you",
        f"""<p>This page needs a high-assurance session. We emailed you a 6-digit code.</p>{note}
<form method="post" action="/step-up">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label>Code <input name="code" autocomplete="one-time-code"></label>
<button>Verify</button></form>""",
        beacon=True,
    )


def home_page(session: sw.Session, admin: bool) -> str:
    admin_link = '<li><a href="/admin/sessions">Sessions (admin)</a></li>' if admin else ""
    return page(
        f"Hello, {session.user}",
        f"""<p>Level {html.escape(session.level.name)}; valid until
{html.escape(session.valid_until.isoformat())}.</p>
<ul><li><a href="/setup">Setup (high assurance)</a></li>
<li><a href="/password/reset">Change password</a></li>{admin_link}</ul>
<form method="post" action="/logout"><button>Log out</button></form>""",
        beacon=session.browser_bound,
    )


def setup_page(session: sw.Session) -> str:
    return page("Setup", f"<p>High-assurance area; level {html.escape(session.level.name)}.</p>")


def reset_form(message: str = "") -> str:
    note = f"<p>{html.escape(message)}</p>" if message else ""
    return page(
        "Change password",
        f"""{note}<form method="post" action="/password/reset">
<label>New password <input name="new_password" type="password"></label>
<button>Change and log out everywhere</button></form>""",
    )


def admin_page(page_rows: sw.SessionPage, user: str, ip: str, message: str = "") -> str:
    rows = []
    for row in page_rows:
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    row.handle,
                    row.user,
                    row.profile,
                    row.session_type.name,
                    row.login_method.code,
                    row.level.name,
                    row.source_ip,
                    row.created.isoformat(),
                    row.last_activity.isoformat(),
                    row.valid_until.isoformat(),
                )
            )
            + f"""<td><form method="post" action="/admin/sessions/end">
<input type="hidden" name="handle" value="{html.escape(row.handle)}">
<button>End Session</button></form></td></tr>"""
        )
    note = f"<p>{html.escape(message)}</p>" if message else ""
    return page(
        "Active sessions",
        f"""{note}<form method="get" action="/admin/sessions">
<label>User <input name="user" value="{html.escape(user)}"></label>
<label>IP or CIDR <input name="ip" value="{html.escape(ip)}"></label>
<button>Filter</button></form>
<p>{page_rows.total} session(s)</p>
<table><tr><th>Handle</th><th>User</th><th>Profile</th><th>Type</th><th>Method</th>
<th>Level</th><th>Source IP</th><th>Created</th><th>Last activity</th><th>Valid until</th>
<th></th></tr>{"".join(rows)}</table>""",
    )


def list_sessions(org: sw.Org, user: str, ip: str) -> sw.SessionPage:
    """`org.sessions` with the admin page's filters (empty means no filter)."""
    return org.sessions(user=user or None, ip=ip or None, limit=200)


# ----------------------------------------------------------------------------- login flow


@dataclass
class LoginResult:
    """What a login step produced: a session to set the cookie for and redirect, or a page."""

    issued: sw.Issued | None = None
    status: int = 200
    html: str = ""
    next_path: str = "/"

    def __repr__(self) -> str:
        return f"LoginResult(issued={self.issued is not None}, status={self.status})"


def after_login(
    directory: Directory, user: str, outcome: sw.LoginOutcome, next_path: str
) -> LoginResult:
    """Turns a login outcome into the next step of the flow."""
    match outcome:
        case sw.Issued():
            return LoginResult(issued=outcome, next_path=next_path)
        case sw.ChallengeRequired(challenge=challenge):
            code = directory.send_code(user)
            pid = directory.start_pending(Pending(user, code, next_path, challenge))
            return LoginResult(html=verify_form(pid, "You are logging in from a new network."))
        case sw.StepUpRequired():
            code = directory.send_code(user)
            pid = directory.start_pending(Pending(user, code, next_path))
            return LoginResult(html=verify_form(pid, "Your profile requires a second factor."))
        case sw.Denied(reason=reason):
            return LoginResult(
                status=403, html=login_form(next_path, f"Login denied ({reason.code}).")
            )
    raise AssertionError(f"unexpected login outcome {outcome!r}")


def password_login(
    org: sw.Org, directory: Directory, form: dict[str, str], ip: str
) -> LoginResult:
    """POST /login: check the password, then `org.login`."""
    from sessionward.web import safe_next

    next_path = safe_next(form.get("next"))
    user = form.get("user", "")
    if not directory.check_password(user, form.get("password", "")):
        return LoginResult(status=401, html=login_form(next_path, "Wrong user or password."))
    return after_login(directory, user, org.login(user, ip), next_path)


def verify_login(
    org: sw.Org, directory: Directory, form: dict[str, str], ip: str
) -> LoginResult:
    """POST /login/verify: the emailed code completes the challenge or the MFA login."""
    pending = directory.take_pending(form.get("pid", ""), form.get("code", ""))
    if pending is None:
        return LoginResult(status=401, html=login_form("/", "Wrong or expired code: log in again."))
    if pending.challenge is not None:
        outcome = org.complete_challenge(pending.challenge)
    else:
        outcome = org.login(pending.user, ip, sw.LoginMethod.MFA)
    return after_login(directory, pending.user, outcome, pending.next_path)
