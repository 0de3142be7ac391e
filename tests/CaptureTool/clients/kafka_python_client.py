"""Drives kafka-python against a bootstrap list: a producer, then a consumer group that reads everything back.

Usage: python3 kafka_python_client.py <bootstrap> <topic> <group> <count>
"""
import sys

from kafka import KafkaConsumer, KafkaProducer


def main():
    bootstrap, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    # One plain and one gzip-compressed producer, so the capture holds both kinds of record batch.
    for compression in (None, "gzip"):
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, client_id="capture-kafka-python", acks="all", compression_type=compression)
        for i in range(count):
            producer.send(topic, key=("k%d" % i).encode(), value=("kafka-python %s value %d" % (compression, i)).encode())
        producer.flush(timeout=15)
        producer.close(timeout=5)
    count *= 2
    print("produced %d" % count)

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        client_id="capture-kafka-python",
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        consumer_timeout_ms=20000,
    )
    received = 0
    for _ in consumer:
        received += 1
        if received >= count:
            break
    consumer.commit()
    consumer.close()
    print("consumed %d/%d" % (received, count))
    return 0 if received >= count else 1


if __name__ == "__main__":
    sys.exit(main())
