"""Client-matrix driver for kafka-python (pure Python; ApiVersions v0, old Metadata/Fetch versions).

Usage: /usr/bin/python3 kafka_python_matrix.py produce|consume <bootstrap> <topic> <group> <count> <prefix>
Record i has key "<prefix>-k<i % 7>" and value "<prefix>-<i>". Prints one JSON line per record produced
(with the partition and offset the broker acknowledged) or consumed. MATRIX_DEBUG=1 logs the client at DEBUG.
"""
import json
import logging
import os
import sys
import time

from kafka import KafkaConsumer, KafkaProducer


def emit(op, key, value, partition, offset):
    print(json.dumps({"op": op, "key": key, "value": value, "partition": partition, "offset": offset}), flush=True)


def produce(bootstrap, topic, count, prefix):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5, request_timeout_ms=20000)
    sent = []
    for i in range(count):
        key, value = "%s-k%d" % (prefix, i % 7), "%s-%d" % (prefix, i)
        sent.append((key, value, producer.send(topic, key=key.encode(), value=value.encode())))
    producer.flush(timeout=20)
    for key, value, future in sent:
        metadata = future.get(timeout=20)
        emit("produced", key, value, metadata.partition, metadata.offset)
    producer.close(timeout=5)
    return 0


def consume(bootstrap, topic, group, count):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    received = 0
    deadline = time.time() + 40
    while received < count and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                emit("consumed", record.key.decode(), record.value.decode(), record.partition, record.offset)
                received += 1
    consumer.commit()
    consumer.close()
    if received < count:
        print("consumed only %d of %d" % (received, count), file=sys.stderr)
        return 1
    return 0


def main():
    mode, bootstrap, topic, group, count, prefix = sys.argv[1:7]
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if os.environ.get("MATRIX_DEBUG") == "1" else logging.WARNING)
    if mode == "produce":
        return produce(bootstrap, topic, int(count), prefix)
    if mode == "consume":
        return consume(bootstrap, topic, group, int(count))
    print("unknown mode " + mode, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
