"""Service Quotas and STS reads of the pre-flight, driven by botocore's Stubber (never sends a request)."""

from __future__ import annotations

from types import SimpleNamespace

import botocore.session
import pytest
from botocore.credentials import CredentialResolver
from botocore.stub import Stubber

from chatload.harness import service_quotas
from chatload.harness.cli import preflight as pf

REGION = "eu-west-2"
ARN = "arn:aws:connect:eu-west-2:123456789012:instance/0d5e2b6c-1111-4222-8333-944455556666"
# Stubbed clients still need an endpoint; a closed loopback port makes any leak fail instead of reaching AWS.
NOWHERE = "http://127.0.0.1:9"


def client(service: str):
    session = botocore.session.get_session()
    return session.create_client(
        service, region_name=REGION, endpoint_url=NOWHERE, aws_access_key_id="AKIDTEST", aws_secret_access_key="x"
    )


def quota(code: str, value: float) -> dict:
    return {"Quota": {"ServiceCode": "connect", "QuotaCode": code, "Value": value}}


RATE_ARGS = {"ServiceCode": "connect", "QuotaCode": "L-AA48CD49"}
CHATS_ARGS = {"ServiceCode": "connect", "QuotaCode": "L-D4BA6F6E", "ContextId": ARN}
CHATS_DEFAULT_ARGS = {"ServiceCode": "connect", "QuotaCode": "L-D4BA6F6E"}


def test_applied_quotas_are_read():
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_response("get_service_quota", quota("L-AA48CD49", 20.0), RATE_ARGS)
        stub.add_response("get_service_quota", quota("L-D4BA6F6E", 2500.0), CHATS_ARGS)
        reading = service_quotas.read_quotas(sq, REGION, ARN)
        stub.assert_no_pending_responses()
    assert reading.source == "service-quotas"
    assert reading.start_chat_rate == 20.0
    assert reading.start_chat_burst is None  # Service Quotas has no burst figure
    assert reading.concurrent_chats == 2500
    assert reading.notes == ()
    assert pf.meta_quotas(reading) == {
        "source": "service-quotas",
        "StartChatContact": {"rate": 20.0, "burst": None},
        "concurrent_chats": 2500,
        "sources": {"StartChatContact": "service-quotas", "concurrent_chats": "service-quotas"},
        "notes": [],
    }


def test_access_denied_names_the_missing_permission_and_falls_back_to_defaults():
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_client_error("get_service_quota", "AccessDeniedException", "not authorized", 400, RATE_ARGS)
        stub.add_client_error("get_service_quota", "AccessDeniedException", "not authorized", 400, CHATS_ARGS)
        reading = service_quotas.read_quotas(sq, REGION, ARN)
        stub.assert_no_pending_responses()
    assert reading.source == "defaults"
    assert (reading.start_chat_rate, reading.start_chat_burst, reading.concurrent_chats) == (5.0, 8.0, 500)
    assert len(reading.notes) == 2
    assert all("servicequotas:GetServiceQuota" in note and "missing" in note for note in reading.notes)
    assert "L-AA48CD49" in reading.notes[0] and "L-D4BA6F6E" in reading.notes[1]
    meta = pf.meta_quotas(reading)
    assert meta["source"] == "defaults" and meta["StartChatContact"] == {"rate": 5.0, "burst": 8.0}


def test_no_such_resource_reads_the_aws_default():
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_response("get_service_quota", quota("L-AA48CD49", 5.0), RATE_ARGS)
        stub.add_client_error("get_service_quota", "NoSuchResourceException", "no applied value", 400, CHATS_ARGS)
        stub.add_response("get_aws_default_service_quota", quota("L-D4BA6F6E", 100.0), CHATS_DEFAULT_ARGS)
        reading = service_quotas.read_quotas(sq, REGION, ARN)
        stub.assert_no_pending_responses()
    assert reading.source == "service-quotas"
    assert reading.start_chat_burst == 8.0  # the default rate keeps its documented burst
    assert reading.concurrent_chats == 100
    assert len(reading.notes) == 1 and "AWS default read" in reading.notes[0]


def test_no_such_resource_then_access_denied_names_the_default_permission():
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_client_error("get_service_quota", "NoSuchResourceException", "none", 400, RATE_ARGS)
        stub.add_client_error("get_aws_default_service_quota", "AccessDeniedException", "no", 400, RATE_ARGS)
        stub.add_response("get_service_quota", quota("L-D4BA6F6E", 700.0), CHATS_ARGS)
        reading = service_quotas.read_quotas(sq, REGION, ARN)
    assert reading.sources == {"StartChatContact": "defaults", "concurrent_chats": "service-quotas"}
    assert reading.source == "service-quotas"
    assert reading.start_chat_rate == 5.0 and reading.concurrent_chats == 700
    assert "servicequotas:GetAWSDefaultServiceQuota" in reading.notes[0]


def test_other_service_errors_fall_back_with_the_code():
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_client_error("get_service_quota", "TooManyRequestsException", "slow down", 429, RATE_ARGS)
        stub.add_client_error("get_service_quota", "ServiceException", "oops", 500, CHATS_ARGS)
        reading = service_quotas.read_quotas(sq, REGION, ARN)
    assert reading.source == "defaults"
    assert "TooManyRequestsException" in reading.notes[0] and "ServiceException" in reading.notes[1]


def test_account_id_from_sts():
    sts = client("sts")
    with Stubber(sts) as stub:
        stub.add_response(
            "get_caller_identity",
            {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/x", "UserId": "AIDAX"},
            {},
        )
        assert service_quotas.account_id(sts) == "123456789012"


def test_expired_credentials_are_one_line():
    sts = client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", "ExpiredToken", "expired", 403)
        with pytest.raises(pf.PreflightError, match=r"sts:GetCallerIdentity: ExpiredToken"):
            service_quotas.account_id(sts)


def test_missing_credentials_are_one_line():
    # A session with no credential providers at all: botocore refuses to sign before sending anything.
    session = botocore.session.get_session()
    session.register_component("credential_provider", CredentialResolver(providers=[]))
    sts = session.create_client("sts", region_name=REGION, endpoint_url=NOWHERE)
    with pytest.raises(pf.PreflightError) as info:
        service_quotas.account_id(sts)
    assert str(info.value).startswith("no AWS credentials: set AWS_PROFILE")
    assert "\n" not in str(info.value)


def test_instance_arn_by_partition():
    assert (
        service_quotas.instance_arn("eu-west-2", "123456789012", "abc")
        == "arn:aws:connect:eu-west-2:123456789012:instance/abc"
    )
    assert service_quotas.instance_arn("cn-north-1", "1", "abc").startswith("arn:aws-cn:connect:cn-north-1:1:")
    assert service_quotas.instance_arn("us-gov-west-1", "1", "abc").startswith("arn:aws-us-gov:")
    assert service_quotas.instance_arn("eu-west-2", "1", ARN) == ARN


def test_read_quotas_for_instance_uses_sts_then_service_quotas():
    sts, sq = client("sts"), client("service-quotas")
    made = []

    def make(service, config=None):
        made.append((service, config.region_name))
        return {"sts": sts, "service-quotas": sq}[service]

    with Stubber(sts) as s1, Stubber(sq) as s2:
        s1.add_response("get_caller_identity", {"Account": "123456789012"}, {})
        s2.add_response("get_service_quota", quota("L-AA48CD49", 8.0), RATE_ARGS)
        s2.add_response("get_service_quota", quota("L-D4BA6F6E", 900.0), CHATS_ARGS)
        reading = service_quotas.read_quotas_for_instance(
            SimpleNamespace(client=make), REGION, "0d5e2b6c-1111-4222-8333-944455556666"
        )
    assert made == [("sts", REGION), ("service-quotas", REGION)]
    assert (reading.start_chat_rate, reading.concurrent_chats) == (8.0, 900)


# ---------------------------------------------------------------- warnings


def plan(**kw) -> pf.RunPlan:
    base = dict(
        scenario="s", target="aws", region=REGION, instance="i", contact_flow="f", stages=1, duration_s=60.0,
        expected_arrivals=120.0, planned_chats=120, peak_rate=2.0, mean_chat_life_s=10.0,
        steady_concurrency=20.0, peak_concurrency=20.0, messages=0,
        calls={"StartChatContact": 120}, peak_call_rates={"StartChatContact": 2.0},
    )  # fmt: skip
    return pf.RunPlan(**{**base, **kw})


DEFAULTS = pf.QuotaReading("defaults", 5.0, 8.0, 500, {"StartChatContact": "defaults", "concurrent_chats": "defaults"})


def test_no_warning_within_the_quotas():
    assert pf.quota_warnings(plan(), DEFAULTS) == []


def test_rate_above_the_quota_says_by_how_much():
    [warning] = pf.quota_warnings(plan(peak_rate=12.0), DEFAULTS)
    assert "12/s exceeds the StartChatContact rate quota 5/s (defaults) by 7/s (2.4x)" in warning
    assert "TooManyRequestsException" in warning and "point of the test" in warning


def test_concurrency_above_the_quota_says_by_how_much():
    [warning] = pf.quota_warnings(plan(peak_concurrency=650.0), DEFAULTS)
    assert "~650 active chats exceeds the concurrent active chats quota 500 (defaults) by 150" in warning
    assert "LimitExceededException" in warning


def test_participant_rates_above_aws_defaults_are_warned():
    rates = {"StartChatContact": 4.0, "CreateParticipantConnection": 4.0, "DisconnectParticipant": 4.0}
    [warning] = pf.quota_warnings(plan(peak_rate=4.0, peak_call_rates=rates), DEFAULTS)
    assert warning.startswith("DisconnectParticipant at ~4/s exceeds AWS's default rate 3/s")
