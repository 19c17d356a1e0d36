"""sessionward: an org-wide session authority (Rust core, Python binding).

Issue, validate and end session IDs (bearer tokens) under an org's session policy::

    from datetime import timedelta
    import sessionward as sw

    org = sw.Org(sw.OrgSettings(inactivity_timeout=timedelta(minutes=30),
                                trusted_ranges=["10.0.0.0/8"]))
    org.add_profile(sw.Profile("staff"))
    org.add_user("ada", "staff")

    match org.login("ada", "10.1.2.3"):
        case sw.Issued(token=token, session=session):
            ...  # set the cookie; `session` holds the public facts
        case sw.ChallengeRequired(challenge=challenge):
            ...  # verify the user out of band, then org.complete_challenge(challenge)
        case sw.StepUpRequired(required=level):
            ...  # the profile needs a stronger login method
        case sw.Denied(reason=reason):
            ...

    try:
        session = org.validate(token, "10.1.2.3")
    except sw.SessionExpired as expired:
        ...  # expired.kind is ExpiryKind.IDLE or ExpiryKind.ABSOLUTE
    except sw.SessionError as refused:
        ...  # exactly one subclass per reason; refused.code is stable

`StepUpRequired` is one class for one concept: `validate` *raises* it (the operation needs a
higher level) and `login` *returns* an instance of it (the profile requires a stronger login
method). It is a `SessionError`, and has `required` and `current` (alias `offered`).

Job code runs without a session: see `sessionward.jobs` and `sessionward.credentials`.
"""

from sessionward._logging import RedactTokens
from sessionward._native import (
    CHECK_CODES,
    MAX_PAGE_SIZE,
    MAX_REMEMBERED_DEVICES,
    TOKEN_LEN,
    TOKEN_PREFIX,
    AccessGrant,
    AlreadyExists,
    CapAction,
    ChallengeRequired,
    Denied,
    DenyReason,
    EndReason,
    EntropyError,
    Event,
    ExpiryKind,
    InvalidInput,
    IpMismatch,
    IpNotAllowed,
    Issued,
    LoginMethod,
    MalformedToken,
    ManualClock,
    Org,
    OrgSettings,
    Profile,
    ProfileInUse,
    SecurityLevel,
    Session,
    SessionEnded,
    SessionError,
    SessionExpired,
    SessionPage,
    SessionType,
    SessionwardError,
    SettingsError,
    StepUpRequired,
    StoreError,
    OAuthError,
    Grant,
    SweepStats,
    TableStats,
    UnknownProfile,
    UnknownSession,
    UnknownUser,
    __version__,
    is_well_formed,
    redact_tokens,
)
from sessionward.credentials import (
    CalloutError,
    CalloutResponse,
    CredentialAuth,
    CredentialError,
    CredentialHandle,
    CredentialNotPermitted,
    CredentialRegistry,
    CredentialsView,
    NamedCredential,
    OAuthClientCredentials,
    OrgClientCredentials,
    Secret,
    StaticHeader,
    UnknownCredential,
    resolve_callout,
)
from sessionward.jobs import (
    JobContext,
    JobKind,
    NoSessionInJob,
    NotInJob,
    TokenInJobPayload,
    arun_job,
    current_context,
    current_session,
    guard_payload,
    in_job,
    install_celery_guard,
    request_session,
    reset_request_session,
    run_job,
    set_request_session,
    submit_job,
)

#: Login outcomes, for type annotations: ``def f(o: LoginOutcome): match o: ...``.
LoginOutcome = Issued | ChallengeRequired | StepUpRequired | Denied

__all__ = [
    "CHECK_CODES",
    "MAX_PAGE_SIZE",
    "MAX_REMEMBERED_DEVICES",
    "TOKEN_LEN",
    "TOKEN_PREFIX",
    "AccessGrant",
    "AlreadyExists",
    "CalloutError",
    "CalloutResponse",
    "CapAction",
    "ChallengeRequired",
    "CredentialAuth",
    "CredentialError",
    "CredentialHandle",
    "CredentialNotPermitted",
    "CredentialRegistry",
    "CredentialsView",
    "Denied",
    "DenyReason",
    "EndReason",
    "EntropyError",
    "Event",
    "ExpiryKind",
    "InvalidInput",
    "IpMismatch",
    "IpNotAllowed",
    "Issued",
    "JobContext",
    "JobKind",
    "LoginMethod",
    "LoginOutcome",
    "MalformedToken",
    "ManualClock",
    "NamedCredential",
    "NoSessionInJob",
    "NotInJob",
    "OAuthClientCredentials",
    "OrgClientCredentials",
    "Org",
    "OrgSettings",
    "Profile",
    "ProfileInUse",
    "RedactTokens",
    "Secret",
    "SecurityLevel",
    "Session",
    "SessionEnded",
    "SessionError",
    "SessionExpired",
    "SessionPage",
    "SessionType",
    "SessionwardError",
    "SettingsError",
    "StaticHeader",
    "StepUpRequired",
    "StoreError",
    "OAuthError",
    "Grant",
    "SweepStats",
    "TableStats",
    "TokenInJobPayload",
    "UnknownCredential",
    "UnknownProfile",
    "UnknownSession",
    "UnknownUser",
    "__version__",
    "arun_job",
    "current_context",
    "current_session",
    "guard_payload",
    "in_job",
    "install_celery_guard",
    "is_well_formed",
    "redact_tokens",
    "request_session",
    "reset_request_session",
    "resolve_callout",
    "run_job",
    "set_request_session",
    "submit_job",
]
