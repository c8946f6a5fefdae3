"""tickwatch's shared code, deployed to both functions as the CommonLayer.

Pure domain: `ticks` (the tick contract), `sequence`, `market` (quotes and bars), `rules` (crossings).
Integration: `items` (table layout), `dynamodb`, `aws` (clients), `processor`, `alerts`, `rule_store`.
"""
