"""POST /v1/auth/token: email and password for a short-lived JWT."""

from __future__ import annotations

from typing import Any

from litestar import Request, post

from controlplane.auth.tokens import TokenSigner
from tenants import service
from tenants.api.schemas import TokenRead, TokenRequest


@post("/v1/auth/token", exclude_from_auth=True, status_code=200, tags=["auth"])
async def issue_token(request: Request[Any, Any, Any], data: TokenRequest) -> TokenRead:
    user = await service.authenticate_password(data.email, data.password)
    signer: TokenSigner = request.app.state.token_signer
    return TokenRead(access_token=signer.issue(user["id"]), token_type="Bearer", expires_in=signer.ttl_seconds)
