"""API keys of the market-data providers: from an environment variable or AWS Secrets Manager.

Reading a secret is the layer's (`tickwatch_core.sources.provider_keys`), shared with the scheduled
producer function. A key is never printed or logged: errors name where the key was looked for,
never its value.
"""

from __future__ import annotations

import os
from typing import Any

from tickwatch_core.sources.provider_keys import ENVIRONMENT_VARIABLES, ApiKeyError, key_from_secret

__all__ = ["ENVIRONMENT_VARIABLES", "ApiKeyError", "api_key"]


def api_key(provider: str, *, secret_id: str | None, session: Any) -> str:
    """The provider's key: from `secret_id` in Secrets Manager when given, else the environment."""
    variable = ENVIRONMENT_VARIABLES[provider]
    if secret_id:
        return key_from_secret(provider, secret_id, session.client("secretsmanager"))
    key = os.environ.get(variable, "").strip()
    if not key:
        raise ApiKeyError(
            f"{provider} needs an API key: set {variable} or pass --api-key-secret with a Secrets Manager secret"
        )
    return key
