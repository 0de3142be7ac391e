"""Transactional workload driver for confluent-kafka-python 1.7 (librdkafka 2.0.x).

Usage: /usr/bin/python3 confluent_kafka_python_transactions.py <bootstrap> <topic> <transactional id> <stop file>
Runs transactions of 10 records (keys k0..k15, values "t<n>-r<i>"), every fifth aborted, ~20 ms apart, until the
stop file exists. One stdout line per transaction: "C <n> <v1,v2,...>" committed, "A <n> <values>" aborted,
"E <n> <error>" a failure that reached the application (a raised error, a failed delivery of a committed record, or
a fatal error callback), and "T - <error>" for a non-fatal error callback (a transport error the client recovers
from by itself), kept apart. SWITCHBACK_DEBUG=1 adds librdkafka debug on stderr.
"""
import os
import sys
import time

from confluent_kafka import KafkaException, Producer

RECORDS_PER_TRANSACTION = 10
KEYS = 16


def line(text):
    print(text.replace("\n", " "), flush=True)


def on_error(err):
    line("%s - error callback: %s fatal=%s" % ("E" if err.fatal() else "T", err, err.fatal()))


def main(bootstrap, topic, transactional_id, stop_file):
    config = {
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "transaction.timeout.ms": 10000,
        "error_cb": on_error,
    }
    if os.environ.get("SWITCHBACK_DEBUG") == "1":
        config["debug"] = "broker,protocol,msg,eos"
    producer = Producer(config)
    producer.init_transactions(30)
    number = 0
    while not os.path.exists(stop_file):
        abort = number % 5 == 4
        values = ["t%d-r%d" % (number, i) for i in range(RECORDS_PER_TRANSACTION)]
        failed = []

        def delivered(err, msg, failed=failed):
            if err is not None:
                failed.append("delivery of %s: %s" % (msg.value().decode(), err))

        producer.poll(0)  # serves the error callback between transactions
        try:
            producer.begin_transaction()
            for i, value in enumerate(values):
                producer.produce(topic, key="k%d" % ((number * RECORDS_PER_TRANSACTION + i) % KEYS), value=value,
                                 on_delivery=delivered)
            if abort:
                producer.abort_transaction(30)
                line("A %d %s" % (number, ",".join(values)))
            else:
                producer.commit_transaction(30)
                producer.poll(0)
                for failure in failed:
                    line("E %d %s" % (number, failure))
                line("C %d %s" % (number, ",".join(values)))
        except KafkaException as e:
            error = e.args[0]
            line("E %d %s (fatal=%s, retriable=%s, requires abort=%s)" % (
                number, error, error.fatal(), error.retriable(), error.txn_requires_abort()))
            if error.txn_requires_abort():
                producer.abort_transaction(30)
            elif error.fatal():
                return 1
        number += 1
        time.sleep(0.02)
    producer.flush(30)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
