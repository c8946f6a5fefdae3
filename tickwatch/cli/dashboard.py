"""`tickwatch dashboard publish`: the dashboard's files to the stack's DashboardBucket, with a
config.json naming the stack's APIs (never the key), then a CloudFront invalidation."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from tickwatch.local.dashboard import CONFIG_FILE, SITE, content_type, site_config
from tickwatch.resources import AwsContext, CliError, explain

# The page and its config change with every publish; the rest may be cached a few minutes.
_NO_CACHE = "no-cache"
_SHORT_CACHE = "public, max-age=300"


def site_files(site: Path = SITE) -> list[Path]:
    """The files of the site to upload, relative to it (dot files and a stray config.json left out)."""
    return sorted(
        path.relative_to(site)
        for path in site.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(site).parts)
        and path.relative_to(site).as_posix() != CONFIG_FILE
    )


def command_dashboard_publish(args: argparse.Namespace, context: AwsContext) -> int:
    if context.local is not None:
        from tickwatch.local.run import dashboard_link

        if "DashboardUrl" not in context.local.outputs:
            raise CliError("the running local stack serves no dashboard: restart it (tickwatch local down, then up)")
        print(f"the local stack serves the dashboard from dashboard/ as it is: {dashboard_link(context.local.outputs)}")
        return 0
    bucket = context.resource("dashboard_bucket")
    config = site_config(context.resource("query_api_url"), context.resource("live_api_url"))
    s3 = context.client("s3")
    files = site_files()
    try:
        for relative in files:
            path = SITE / relative
            s3.put_object(
                Bucket=bucket,
                Key=relative.as_posix(),
                Body=path.read_bytes(),
                ContentType=content_type(path),
                CacheControl=_NO_CACHE if path.suffix == ".html" else _SHORT_CACHE,
            )
        s3.put_object(
            Bucket=bucket,
            Key=CONFIG_FILE,
            Body=json.dumps(config, indent=2).encode(),
            ContentType="application/json",
            CacheControl=_NO_CACHE,
        )
        published = {relative.as_posix() for relative in files} | {CONFIG_FILE}
        stale = [
            entry["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for entry in page.get("Contents", [])
            if entry["Key"] not in published
        ]
        for start in range(0, len(stale), 1000):
            s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": key} for key in stale[start : start + 1000]], "Quiet": True}
            )
        distribution = context.resource("dashboard_distribution")
        context.client("cloudfront").create_invalidation(
            DistributionId=distribution,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/*"]},
                "CallerReference": f"publish-{time.time_ns()}",
            },
        )
    except (ClientError, BotoCoreError) as error:
        raise explain(error) from None
    print(f"published {len(files) + 1} files to s3://{bucket}/ ({len(stale)} old ones removed); "
          "CloudFront serves them within a minute or two")  # fmt: skip
    url = context.resource("dashboard_url")
    print(f"open {url}#key=<the key `tickwatch api-key` prints> (the key stays in your browser)")
    return 0
