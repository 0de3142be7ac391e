"""Deletes consumer groups with kafka-python's admin client, in one DeleteGroups request to one broker.

Usage: /usr/bin/python3 kafka_python_delete_groups.py <bootstrap> <coordinator node id> <group>...
Prints "<group> <error class name>" for each group the broker answered (NoError when deleted).
"""
import sys

from kafka import KafkaAdminClient


def main():
    bootstrap, coordinator, groups = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    try:
        # Told the coordinator, kafka-python sends every group in a single request to that broker.
        for group, error in admin.delete_consumer_groups(groups, group_coordinator_id=coordinator):
            print("%s %s" % (group, error.__name__))
    finally:
        admin.close()


if __name__ == "__main__":
    main()
