// Client-matrix driver for kafkajs 2.2.4 (pure JavaScript).
// Usage: node kafkajs_matrix.js produce|consume <bootstrap> <topic> <group> <count> <prefix>  (NODE_PATH must reach kafkajs)
// Record i has key "<prefix>-k<i % 7>" and value "<prefix>-<i>". Prints one JSON line per record produced (with the
// partition and offset the broker acknowledged) or consumed. MATRIX_DEBUG=1 logs the client at DEBUG on stderr.
const { Kafka, logLevel } = require('kafkajs');

function emit(op, key, value, partition, offset) {
  process.stdout.write(`${JSON.stringify({ op, key, value, partition: Number(partition), offset: Number(offset) })}\n`);
}

// kafkajs logs through console.info, which is stdout; keep stdout for the JSON lines.
const logCreator = () => ({ namespace, level, label, log }) => {
  process.stderr.write(`${label} [${namespace}] ${JSON.stringify(log)}\n`);
};

async function produce(kafka, topic, count, prefix) {
  const producer = kafka.producer();
  await producer.connect();
  // One record per request, so every record's partition and offset come back.
  for (let i = 0; i < count; i++) {
    const key = `${prefix}-k${i % 7}`;
    const value = `${prefix}-${i}`;
    const [meta] = await producer.send({ topic, acks: -1, timeout: 20000, messages: [{ key, value }] });
    emit('produced', key, value, meta.partition, meta.baseOffset);
  }
  await producer.disconnect();
}

async function consume(kafka, topic, group, count) {
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, sessionTimeout: 6000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let received = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed only ${received} of ${count}`)), 40000);
    consumer.run({
      autoCommit: true,
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
    clientId: 'matrix-kafkajs',
    brokers: bootstrap.split(','),
    logLevel: process.env.MATRIX_DEBUG === '1' ? logLevel.DEBUG : logLevel.WARN,
    logCreator,
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
