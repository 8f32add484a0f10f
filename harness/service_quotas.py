"""Applied quotas of a real account and instance, read from Service Quotas with boto3.

Run by the Locust coordinator when a real-instance run is prepared, and as a child process of the
`chatload` command (`python -m chatload.harness.service_quotas`), which must not import boto3 itself:
that reads one JSON object on standard input, {"region", "instance_id"}, and prints one JSON object,
{"quotas": <meta.json quotas entry>}; without usable credentials it exits 2 with one line on stderr.

It talks to AWS only through a client or session passed in, so tests drive it with botocore's Stubber.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from chatload.contracts import (
    CONCURRENT_CHATS_QUOTA_CODE,
    DEFAULT_CONCURRENT_CHATS,
    DEFAULT_START_CHAT_BURST,
    DEFAULT_START_CHAT_RATE,
    EXIT_INVALID,
    EXIT_OK,
    START_CHAT,
    START_CHAT_QUOTA_CODE,
)
from chatload.harness.cli.preflight import NO_CREDENTIALS, PreflightError, QuotaReading, default_quotas, meta_quotas


def instance_arn(region: str, account_id: str, instance_id: str) -> str:
    """The instance's ARN (the ContextId of the concurrent-chats quota); an ARN given is kept as is."""
    if instance_id.startswith("arn:"):
        return instance_id
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    return f"arn:{partition}:connect:{region}:{account_id}:instance/{instance_id}"


def account_id(sts_client: Any) -> str:
    """The caller's account id from STS GetCallerIdentity; PreflightError (one line) when it fails."""
    try:
        return str(sts_client.get_caller_identity()["Account"])
    except NoCredentialsError:
        raise PreflightError(NO_CREDENTIALS) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise PreflightError(f"AWS rejected the credentials (sts:GetCallerIdentity: {code}); renew them") from None
    except BotoCoreError as exc:
        raise PreflightError(f"cannot reach AWS STS: {exc}") from None


def _quota_value(client: Any, code: str, what: str, context: str | None) -> tuple[float | None, str, str]:
    """(value, source, note) for one quota: applied value, else AWS's default via the API, else None."""
    kwargs = {"ServiceCode": "connect", "QuotaCode": code}
    applied = {**kwargs, "ContextId": context} if context else kwargs
    calls = [
        ("get_service_quota", "servicequotas:GetServiceQuota", applied),
        ("get_aws_default_service_quota", "servicequotas:GetAWSDefaultServiceQuota", kwargs),
    ]
    reason = ""
    for method, permission, args in calls:
        try:
            value = float(getattr(client, method)(**args)["Quota"]["Value"])
            note = "" if method == "get_service_quota" else f"{what} ({code}): no applied value, AWS default read"
            return value, "service-quotas", note
        except ClientError as exc:
            error = exc.response.get("Error", {}).get("Code", "")
            if error == "NoSuchResourceException":
                reason = f"{what} ({code}) not found in Service Quotas"
                continue
            if error in ("AccessDeniedException", "AccessDenied"):
                reason = f"cannot read {what} ({code}): permission {permission} missing"
            else:
                reason = f"cannot read {what} ({code}): Service Quotas answered {error or exc}"
            break
        except NoCredentialsError:
            reason = f"cannot read {what} ({code}): {NO_CREDENTIALS}"
            break
        except BotoCoreError as exc:
            reason = f"cannot read {what} ({code}): {exc}"
            break
    return None, "defaults", reason


def read_quotas(service_quotas_client: Any, region: str, instance_arn: str) -> QuotaReading:
    """Applied StartChatContact rate (L-AA48CD49) and concurrent active chats (L-D4BA6F6E, per instance).

    Never raises for AWS errors: a figure that cannot be read falls back to AWS's documented default,
    and `notes` says why (a missing permission is named). `region` is only used in the notes.
    """
    rate, rate_source, rate_note = _quota_value(
        service_quotas_client, START_CHAT_QUOTA_CODE, "StartChatContact rate", None
    )
    chats, chats_source, chats_note = _quota_value(
        service_quotas_client, CONCURRENT_CHATS_QUOTA_CODE, "concurrent active chats", instance_arn
    )
    notes = []
    if rate is None:
        notes.append(f"{rate_note}; using AWS's default {DEFAULT_START_CHAT_RATE:g}/s for {region}")
    elif rate_note:
        notes.append(rate_note)
    if chats is None:
        notes.append(f"{chats_note}; using AWS's default {DEFAULT_CONCURRENT_CHATS}")
    elif chats_note:
        notes.append(chats_note)
    rate = DEFAULT_START_CHAT_RATE if rate is None else rate
    return QuotaReading(
        source="service-quotas" if "service-quotas" in (rate_source, chats_source) else "defaults",
        start_chat_rate=rate,
        start_chat_burst=DEFAULT_START_CHAT_BURST if rate == DEFAULT_START_CHAT_RATE else None,
        concurrent_chats=DEFAULT_CONCURRENT_CHATS if chats is None else int(chats),
        sources={START_CHAT: rate_source, "concurrent_chats": chats_source},
        notes=tuple(notes),
    )


def read_quotas_for_instance(session: Any, region: str, instance_id: str) -> QuotaReading:
    """STS for the account id, then read_quotas; `session` is a boto3.Session. PreflightError if no creds."""
    config = Config(
        region_name=region, connect_timeout=5, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3}
    )
    account = account_id(session.client("sts", config=config))
    arn = instance_arn(region, account, instance_id)
    return read_quotas(session.client("service-quotas", config=config), region, arn)


def aws_quotas(region: str, instance_id: str) -> dict[str, Any]:
    """meta.json "quotas" of a real instance; AWS's defaults (with the reason in "notes") when they
    cannot be read."""
    import boto3

    try:
        return meta_quotas(read_quotas_for_instance(boto3.Session(), region, instance_id))
    except PreflightError as exc:
        return {**default_quotas(), "notes": [str(exc)]}


def main() -> int:
    request = json.load(sys.stdin)
    import boto3

    try:
        reading = read_quotas_for_instance(boto3.Session(), request["region"], request["instance_id"])
    except PreflightError as exc:
        print(f"chatload: {exc}", file=sys.stderr)
        return EXIT_INVALID
    json.dump({"quotas": meta_quotas(reading)}, sys.stdout)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
