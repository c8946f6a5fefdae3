"""The live dashboard's WebSocket side: connections and their subscriptions (`connections`), the
API key check of `$connect` (`keys`), the routes of the WebSocket API (`routes`), and the fan-out
of market-table changes to subscribed connections (`messages`, `broadcast`)."""
