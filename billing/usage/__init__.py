"""Usage metering: events, their validation (pure) and the open windows they bill into."""
