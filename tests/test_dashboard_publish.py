"""`tickwatch dashboard publish` against moto: the site's files with their content types, a
config.json naming the stack's APIs and never the key, stale files removed, CloudFront refreshed."""

from __future__ import annotations

import json

import pytest

from tests.support import list_objects
from tickwatch.cli import main
from tickwatch.cli.dashboard import site_files
from tickwatch.local.dashboard import SITE

STACK = "tickwatch-site"
QUERY_API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/v1"
LIVE_API_URL = "wss://def456.execute-api.us-east-1.amazonaws.com/live"


def tickwatch(aws, *argv: str) -> int:
    return main([*argv], session_factory=lambda: aws)


@pytest.fixture
def site(aws, stack):
    """The stack's dashboard bucket (from the template), a distribution, and Outputs naming them."""
    bucket = stack.physical["DashboardBucket"].ref
    distribution = aws.client("cloudfront").create_distribution(
        DistributionConfig={
            "CallerReference": "tickwatch-test",
            "Comment": "dashboard",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{"Id": "site", "DomainName": f"{bucket}.s3.amazonaws.com"}]},
            "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "redirect-to-https"},
        }
    )["Distribution"]
    outputs = {
        "DashboardBucketName": bucket,
        "DashboardDistributionId": distribution["Id"],
        "DashboardUrl": f"https://{distribution['DomainName']}/",
        "QueryApiUrl": QUERY_API_URL,
        "LiveApiUrl": LIVE_API_URL,
    }
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    aws.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    return outputs


def test_publish_uploads_the_site_and_a_config_without_the_key(aws, stack, site, capsys):
    s3 = aws.client("s3")
    bucket = site["DashboardBucketName"]
    s3.put_object(Bucket=bucket, Key="js/old-module.js", Body=b"stale")
    assert tickwatch(aws, "dashboard", "publish", "--stack", STACK) == 0

    objects = list_objects(aws, bucket)
    assert set(objects) == {path.as_posix() for path in site_files()} | {"config.json"}
    assert objects["index.html"] == (SITE / "index.html").read_bytes()
    assert json.loads(objects["config.json"]) == {"queryApiUrl": QUERY_API_URL, "liveApiUrl": LIVE_API_URL}
    key = stack.physical["QueryApiApiKey"].attributes["Value"]
    assert not [name for name, data in objects.items() if key.encode() in data]

    def content_type(name: str) -> str:
        return s3.head_object(Bucket=bucket, Key=name)["ContentType"]

    assert content_type("index.html").startswith("text/html")
    assert content_type("js/main.js").startswith("text/javascript")
    assert content_type("app.css").startswith("text/css")
    assert s3.head_object(Bucket=bucket, Key="index.html")["CacheControl"] == "no-cache"

    invalidations = aws.client("cloudfront").list_invalidations(DistributionId=site["DashboardDistributionId"])
    assert invalidations["InvalidationList"]["Quantity"] == 1
    output = capsys.readouterr().out
    assert "1 old ones removed" in output
    assert f"open {site['DashboardUrl']}#key=" in output


def test_publish_to_a_stack_without_the_dashboard_says_to_redeploy(aws, capsys):
    template = {"Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}}, "Outputs": {}}
    aws.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    assert tickwatch(aws, "dashboard", "publish", "--stack", STACK) == 1
    assert "has no output DashboardBucketName: redeploy it" in capsys.readouterr().err
