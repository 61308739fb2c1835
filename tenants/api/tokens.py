"""POST /v1/auth/token: email and password for a short-lived JWT."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.params import JSONBody

from controlplane.core.auth.throttle import SignInThrottle
from controlplane.core.auth.tokens import ReloadingTokenSigner
from controlplane.core.problems import problem_responses
from tenants import service
from tenants.api.schemas import TokenRead, TokenRequest


@post(
    "/v1/auth/token",
    exclude_from_auth=True,
    status_code=200,
    tags=["auth"],
    responses=problem_responses(400, 401, 413, 429),
)
async def issue_token(request: Request[Any, Any, Any], data: JSONBody[TokenRequest]) -> TokenRead:
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    address = request.client.host if request.client else "unknown"
    await throttle.reserve(data.email, address)
    user = await service.authenticate_password(data.email, data.password)
    await throttle.succeeded(data.email, address)
    signer: ReloadingTokenSigner = request.app.state.token_signer
    await signer.refresh_if_stale()  # a rotated active key signs within the refresh interval
    token = signer.issue(user.id, generation=user.session_generation)
    return TokenRead(access_token=token, token_type="Bearer", expires_in=signer.ttl_seconds)  # noqa: S106
