"""API keys of the market-data providers: from an environment variable or AWS Secrets Manager.

A key is never printed or logged: errors name where the key was looked for, never its value.
"""

from __future__ import annotations

import json
import os
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

ENVIRONMENT_VARIABLES = {"finnhub": "FINNHUB_API_KEY", "twelvedata": "TWELVEDATA_API_KEY"}


class ApiKeyError(ValueError):
    """No usable key was found; the message says where to put one."""


def api_key(provider: str, *, secret_id: str | None, session: Any) -> str:
    """The provider's key: from `secret_id` in Secrets Manager when given, else the environment."""
    variable = ENVIRONMENT_VARIABLES[provider]
    if secret_id:
        return _from_secret(provider, secret_id, session)
    key = os.environ.get(variable, "").strip()
    if not key:
        raise ApiKeyError(
            f"{provider} needs an API key: set {variable} or pass --api-key-secret with a Secrets Manager secret"
        )
    return key


def _from_secret(provider: str, secret_id: str, session: Any) -> str:
    try:
        secret = session.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise ApiKeyError(f"secret {secret_id!r} does not exist in this account and region") from None
        if code in ("AccessDeniedException", "UnrecognizedClientException"):
            raise ApiKeyError(f"not allowed to read secret {secret_id!r} ({code})") from None
        raise ApiKeyError(f"could not read secret {secret_id!r}: {code}") from None
    except BotoCoreError as error:
        raise ApiKeyError(f"could not read secret {secret_id!r}: {type(error).__name__}") from None
    text = secret.get("SecretString")
    if not text:
        raise ApiKeyError(f"secret {secret_id!r} has no text value; store the key as a string")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    if isinstance(document, dict):
        for name in (provider, "api_key", ENVIRONMENT_VARIABLES[provider]):
            value = document.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
        raise ApiKeyError(f"secret {secret_id!r} is JSON without an {provider!r} or 'api_key' field")
    if isinstance(document, str) and document.strip():
        return document.strip()
    raise ApiKeyError(f"secret {secret_id!r} does not hold a key")
