// Client-matrix driver for @confluentinc/kafka-javascript 1.10.1 (bundles librdkafka 2.15.1), through its KafkaJS-style API.
// Usage: node kafka_javascript_matrix.js produce|consume <bootstrap> <topic> <group> <count> <prefix>
// (NODE_PATH must reach @confluentinc/kafka-javascript.)
// Record i has key "<prefix>-k<i % 7>" and value "<prefix>-<i>". Prints one JSON line per record produced (with the
// partition and offset the broker acknowledged) or consumed. MATRIX_DEBUG=1 adds librdkafka debug on stderr.
const { Kafka, logLevel } = require('@confluentinc/kafka-javascript').KafkaJS;

function emit(op, key, value, partition, offset) {
  process.stdout.write(`${JSON.stringify({ op, key, value, partition: Number(partition), offset: Number(offset) })}\n`);
}

function librdkafkaDebug() {
  return process.env.MATRIX_DEBUG === '1' ? { debug: 'broker,protocol,topic,msg,cgrp' } : {};
}

async function produce(kafka, topic, count, prefix) {
  const producer = kafka.producer({ ...librdkafkaDebug(), kafkaJS: { acks: -1, idempotent: true } });
  await producer.connect();
  // One record per send, so every record's partition and offset come back.
  for (let i = 0; i < count; i++) {
    const key = `${prefix}-k${i % 7}`;
    const value = `${prefix}-${i}`;
    const [meta] = await producer.send({ topic, messages: [{ key, value }] });
    emit('produced', key, value, meta.partition, meta.baseOffset ?? meta.offset);
  }
  await producer.disconnect();
}

async function consume(kafka, topic, group, count) {
  const consumer = kafka.consumer({
    ...librdkafkaDebug(),
    'fetch.wait.max.ms': 100,
    kafkaJS: { groupId: group, fromBeginning: true, sessionTimeout: 6000, heartbeatInterval: 1000 },
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic] });
  let received = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed only ${received} of ${count}`)), 40000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        emit('consumed', message.key.toString(), message.value.toString(), partition, message.offset);
        received++;
        if (received >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
}

async function main() {
  const [mode, bootstrap, topic, group, countText, prefix] = process.argv.slice(2);
  const kafka = new Kafka({
    kafkaJS: {
      clientId: 'matrix-kafka-javascript',
      brokers: bootstrap.split(','),
      logLevel: process.env.MATRIX_DEBUG === '1' ? logLevel.DEBUG : logLevel.WARN,
    },
  });
  if (mode === 'produce') {
    await produce(kafka, topic, Number(countText), prefix);
  } else if (mode === 'consume') {
    await consume(kafka, topic, group, Number(countText));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
