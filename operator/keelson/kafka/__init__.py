"""Talking to Kafka brokers (the operator's side; the services' library is under services/)."""
