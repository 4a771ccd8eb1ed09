"""Real Kafka client traffic for the end-to-end tests (kafka-python 3.0.12).

Usage: kafka_roundtrip.py BOOTSTRAP TOPIC N GROUP
Produces N messages (acks=1), then consumes them in consumer group GROUP with manual commits.
Prints one JSON line: what the client did and saw.
"""
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer

bootstrap, topic, n, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
for i in range(n):
    producer.send(topic, key=b"k%d" % i, value=b"meltemi-%d" % i).get(timeout=10)
producer.flush()
producer.close()

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         consumer_timeout_ms=15000)
got = []
deadline = time.time() + 30
while len(got) < n and time.time() < deadline:
    batch = consumer.poll(timeout_ms=1000)
    for records in batch.values():
        got.extend(r.value for r in records)
    if batch:
        consumer.commit()
consumer.close()
print(json.dumps({"produced": n, "consumed": len(got),
                  "values_ok": sorted(got) == sorted(b"meltemi-%d" % i for i in range(n))}))
