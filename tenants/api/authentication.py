"""Bearer authentication for every route not marked `exclude_from_auth`.

A bearer is either a JWT (a person) or a tenant API key (a machine); both resolve to a `Principal`.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult

from controlplane.core import metrics
from controlplane.core.auth import api_keys
from controlplane.core.auth.tokens import ReloadingTokenSigner
from controlplane.core.errors import DomainError, Unauthenticated
from tenants import service


class MissingCredentials(Unauthenticated):
    code = "missing_credentials"
    title = "A bearer token or API key is required"


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            metrics.AUTH_FAILURES_TOTAL.labels(kind="missing").inc()
            raise MissingCredentials()
        try:
            if api_keys.looks_like_api_key(credentials):
                principal = await service.principal_for_api_key(credentials)
            else:
                signer: ReloadingTokenSigner = connection.app.state.token_signer
                claims = await signer.verify_fresh(credentials)
                principal = await service.principal_for_user(claims.user_id)
        except DomainError as exc:
            metrics.AUTH_FAILURES_TOTAL.labels(kind=exc.code).inc()
            raise
        return AuthenticationResult(user=principal, auth=credentials)
