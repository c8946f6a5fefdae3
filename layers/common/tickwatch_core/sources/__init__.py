"""Where ticks come from: providers' quotes, the scheduled producer, ingest, and the Kinesis put."""
