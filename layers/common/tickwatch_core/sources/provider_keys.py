"""API keys of the market-data providers, kept in AWS Secrets Manager.

Used by `tickwatch fetch --api-key-secret` and by the scheduled producer function. A secret holds
the key as plain text, as a JSON string, or as a JSON object with a field named after the provider
(`{"twelvedata": "..."}`), `api_key`, or the provider's environment variable (`TWELVEDATA_API_KEY`),
so one secret can serve both providers.

A key is never printed or logged: errors name the secret that was read, never its value.
"""

from __future__ import annotations

import json
from typing import Any

ENVIRONMENT_VARIABLES = {"finnhub": "FINNHUB_API_KEY", "twelvedata": "TWELVEDATA_API_KEY"}


class ApiKeyError(ValueError):
    """No usable key was found; the message says where it was looked for, never a key."""


def key_from_secret(provider: str, secret_id: str, secretsmanager: Any) -> str:
    """The provider's key in the secret `secret_id` (a name or an ARN), read with `secretsmanager`
    (a boto3 Secrets Manager client). ApiKeyError when the secret cannot be read or holds no key."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        secret = secretsmanager.get_secret_value(SecretId=secret_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise ApiKeyError(f"secret {secret_id!r} does not exist in this account and region") from None
        if code in ("AccessDeniedException", "UnrecognizedClientException"):
            raise ApiKeyError(f"not allowed to read secret {secret_id!r} ({code})") from None
        raise ApiKeyError(f"could not read secret {secret_id!r}: {code}") from None
    except BotoCoreError as error:
        raise ApiKeyError(f"could not read secret {secret_id!r}: {type(error).__name__}") from None
    return key_in_secret_text(provider, secret_id, secret.get("SecretString"))


def key_in_secret_text(provider: str, secret_id: str, text: str | None) -> str:
    """The key in a secret's text (see the module docstring); ApiKeyError naming `secret_id`."""
    if not text or not text.strip():
        raise ApiKeyError(f"secret {secret_id!r} has no text value; store the key as a string")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    if isinstance(document, dict):
        for name in (provider, "api_key", ENVIRONMENT_VARIABLES.get(provider, "")):
            value = document.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
        raise ApiKeyError(f"secret {secret_id!r} is JSON without an {provider!r} or 'api_key' field")
    if isinstance(document, str) and document.strip():
        return document.strip()
    raise ApiKeyError(f"secret {secret_id!r} does not hold a key")
