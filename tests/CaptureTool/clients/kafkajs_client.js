// Drives kafkajs against a bootstrap list: a producer, then a consumer group that reads everything back.
// Usage: node kafkajs_client.js <bootstrap> <topic> <group> <count>   (NODE_PATH must reach kafkajs)
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic, group, countText] = process.argv.slice(2);
  const perSend = Number(countText);
  const kafka = new Kafka({ clientId: 'capture-kafkajs', brokers: bootstrap.split(','), logLevel: logLevel.WARN });

  const producer = kafka.producer();
  await producer.connect();
  // One plain and one gzip-compressed send, so the capture holds both kinds of record batch.
  for (const compression of [CompressionTypes.None, CompressionTypes.GZIP]) {
    const messages = [];
    for (let i = 0; i < perSend; i++) {
      messages.push({ key: `k${i}`, value: `kafkajs ${compression} value ${i}`, headers: i === 0 ? { h: 'v' } : undefined });
    }
    await producer.send({ topic, acks: -1, compression, messages });
  }
  const count = 2 * perSend;
  await producer.disconnect();
  console.log(`produced ${count}`);

  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, sessionTimeout: 10000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let received = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed only ${received}/${count}`)), 30000);
    consumer.run({
      eachMessage: async () => {
        received++;
        if (received >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  console.log(`consumed ${received}/${count}`);
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
