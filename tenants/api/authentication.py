"""Bearer authentication for every route not marked `exclude_from_auth`.

A bearer is either a JWT (a person) or a tenant API key (a machine); both resolve to a `Principal`. A failed
authentication spends the client address's unauthenticated budget; an address that spent it is refused (429)
before its credentials are looked up (controlplane.core.ratelimit.limiter).
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult

from controlplane.core import metrics
from controlplane.core.auth import api_keys
from controlplane.core.auth.tokens import InvalidToken, ReloadingTokenSigner
from controlplane.core.errors import DomainError, Unauthenticated
from controlplane.core.ratelimit.limiter import RateLimiter
from tenants import service


class MissingCredentials(Unauthenticated):
    code = "missing_credentials"
    title = "A bearer token or API key is required"


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        limiter: RateLimiter | None = getattr(connection.app.state, "rate_limiter", None)
        address = connection.client.host if connection.client else "unknown"
        if limiter is not None:
            limiter.refuse_if_blocked(address)
        header = connection.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            metrics.AUTH_FAILURES_TOTAL.labels(kind="missing").inc()
            if limiter is not None:
                await limiter.failed_authentication(address)
            raise MissingCredentials()
        try:
            if api_keys.looks_like_api_key(credentials):
                principal = await service.principal_for_api_key(credentials)
            else:
                signer: ReloadingTokenSigner = connection.app.state.token_signer
                claims = await signer.verify_fresh(credentials)
                principal = await service.principal_for_user(claims.user_id)
                if claims.generation < principal.session_generation:
                    raise InvalidToken("the password changed, or the person signed out everywhere, since it was issued")
        except DomainError as exc:
            metrics.AUTH_FAILURES_TOTAL.labels(kind=exc.code).inc()
            if limiter is not None and isinstance(exc, Unauthenticated):  # not an outage
                await limiter.failed_authentication(address)
            raise
        return AuthenticationResult(user=principal, auth=credentials)
