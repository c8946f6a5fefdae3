"""The stored model (`items`) and its DynamoDB access."""
