"""The steps the streams drive: the processor (ticks -> raw, quotes, bars) and the alerts."""
