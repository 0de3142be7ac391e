"""Produces records through a bootstrap address with kafka-python, then reads them back with a consumer group.

Usage: /usr/bin/python3 kafka_python_client.py <bootstrap> <topic> <group> <count>
Values are "kafka-python-<i>"; prints "consumed <n>" and exits 0 when every record came back.
"""
import sys

from kafka import KafkaConsumer, KafkaProducer


def main():
    bootstrap, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5)
    futures = [producer.send(topic, key=("k%d" % i).encode(), value=("kafka-python-%d" % i).encode()) for i in range(count)]
    producer.flush(timeout=20)
    for future in futures:
        future.get(timeout=20)
    producer.close(timeout=5)
    print("produced %d" % count)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        consumer_timeout_ms=20000,
    )
    received = 0
    for _ in consumer:
        received += 1
        if received >= count:
            break
    consumer.commit()
    consumer.close()
    print("consumed %d" % received)
    return 0 if received >= count else 1


if __name__ == "__main__":
    sys.exit(main())
