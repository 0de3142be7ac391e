"""Client-matrix driver for confluent-kafka-python 1.7 (librdkafka 2.0.x), idempotent producer.

Usage: /usr/bin/python3 confluent_kafka_python_matrix.py produce|consume <bootstrap> <topic> <group> <count> <prefix>
Record i has key "<prefix>-k<i % 7>" and value "<prefix>-<i>". Prints one JSON line per record produced
(with the partition and offset the broker acknowledged) or consumed. MATRIX_DEBUG=1 adds librdkafka debug on stderr.
"""
import json
import os
import sys
import time

from confluent_kafka import Consumer, Producer


def emit(op, key, value, partition, offset):
    print(json.dumps({"op": op, "key": key, "value": value, "partition": partition, "offset": offset}), flush=True)


def debug(config):
    if os.environ.get("MATRIX_DEBUG") == "1":
        config["debug"] = "broker,protocol,topic,msg,eos,cgrp"
    return config


def produce(bootstrap, topic, count, prefix):
    producer = Producer(debug({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 20000,
    }))
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append("%s: %s" % (msg.value().decode(), err))
        else:
            emit("produced", msg.key().decode(), msg.value().decode(), msg.partition(), msg.offset())

    for i in range(count):
        producer.produce(topic, key="%s-k%d" % (prefix, i % 7), value="%s-%d" % (prefix, i), on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(30)
    if failures or left:
        print("delivery failed: %s; %d not delivered" % ("; ".join(failures[:5]), left), file=sys.stderr)
        return 1
    return 0


def consume(bootstrap, topic, group, count):
    consumer = Consumer(debug({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "fetch.wait.max.ms": 100,
    }))
    consumer.subscribe([topic])
    received = 0
    deadline = time.time() + 40
    while received < count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            print("consumer error: %s" % msg.error(), file=sys.stderr)
            continue
        emit("consumed", msg.key().decode(), msg.value().decode(), msg.partition(), msg.offset())
        received += 1
    if received:
        consumer.commit(asynchronous=False)
    consumer.close()
    if received < count:
        print("consumed only %d of %d" % (received, count), file=sys.stderr)
        return 1
    return 0


def main():
    mode, bootstrap, topic, group, count, prefix = sys.argv[1:7]
    if mode == "produce":
        return produce(bootstrap, topic, int(count), prefix)
    if mode == "consume":
        return consume(bootstrap, topic, group, int(count))
    print("unknown mode " + mode, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
