"""The production transport: Apache Kafka through aiokafka."""
