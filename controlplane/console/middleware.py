"""The console's door, for every request under /console: who is signed in, and the headers every page carries.

It runs where the API's bearer authentication runs (which skips /console), before the rate limit, so a signed-in
person spends their own budgets and a visitor the address's. A session whose user was disabled or erased since,
or whose password changed or who signed out everywhere since (their session generation moved on), is ended here.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.console.sessions import ConsoleSession, SessionStore, cookie_shape
from tenants import service
from tenants.errors import InvalidCredentials

PREFIX = "/console"
SESSION_STATE = "console_session"
# Everything from the console's own origin, nothing inline: no script or style the page did not load from us.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_POLICY = (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())
_HEADERS = [
    _POLICY,
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_NO_STORE = (b"cache-control", b"no-store")


def session_cookie(scope: Scope) -> str:
    settings = scope["app"].state.settings
    wanted = cookie_shape(settings.env, settings.public_url).name  # over https only the `__Host-` one counts
    for name, value in scope["headers"]:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key == wanted:
                    return found
    return ""


def console_session(scope: Scope) -> ConsoleSession | None:
    session: ConsoleSession | None = scope.get("state", {}).get(SESSION_STATE)
    return session


class ConsoleMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path: str = scope["path"]
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await next_app(scope, receive, send)
            return
        static = path.startswith(PREFIX + "/static/")
        if static:  # the stylesheet needs no session (nor Redis)
            await next_app(scope, receive, self._with_headers(send, static=True))
            return
        sessions: SessionStore = scope["app"].state.console_sessions
        session = await sessions.find(session_cookie(scope))
        scope["user"] = None
        if session is not None and session.user_id is not None:
            try:
                principal = await service.principal_for_user(session.user_id)
            except InvalidCredentials:  # disabled or erased since it signed in (an outage is not: it is a 503)
                principal = None
            if principal is None or session.generation < principal.session_generation:
                # ... or its password changed, or they signed out everywhere, since this session started.
                await sessions.end(session.id)
                session = None
            else:
                scope["user"] = principal
        scope.setdefault("state", {})[SESSION_STATE] = session
        await next_app(scope, receive, self._with_headers(send, static=False))

    @staticmethod
    def _with_headers(send: Send, *, static: bool) -> Send:
        extra = _HEADERS if static else [*_HEADERS, _NO_STORE]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # A page that set its own policy (the card form lets Stripe.js in) keeps it: two would both apply.
                own_policy = any(name.lower() == b"content-security-policy" for name, _ in headers)
                message["headers"] = [*headers, *(h for h in extra if not (own_policy and h is _POLICY))]
            await send(message)

        return send_with_headers
