"""tickwatch's shared code, deployed to every function as the CommonLayer.

Folders by role:
- `domain/`: pure, no AWS: the tick contract (`ticks`, `tick.schema.json`), `market` (quotes and
  bars), `intervals`, `indicators`, `rules/` (what fires), numbers and exact JSON;
- `store/`: the stored model and DynamoDB access (`items`, `dynamodb`, `rule_store`, `market_reader`,
  `repair`);
- `pipeline/`: the steps a stream drives (`processor`, `alerts`);
- `sources/`: where ticks come from (`quotes`, `producer`, `credits`, `provider_keys`, `kinesis_put`,
  `ingest`);
- `apps/`: the APIs, one app each for Lambda, the local stack and tests (`query_api/`, `live/`,
  `ingest_api`);
- `history/`: the Parquet history;
- and at the top the plumbing every role uses: `aws` (clients), `config` (settings), `tracing`.
"""
