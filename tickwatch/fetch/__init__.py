"""`tickwatch fetch`: providers of ticks, validation against the shared schema, and the Kinesis writer."""
