// Produces records through a bootstrap address with kafkajs, then reads them back with a consumer group.
// Usage: node kafkajs_client.js <bootstrap> <topic> <group> <count>   (NODE_PATH must reach kafkajs)
// Values are "kafkajs-<i>"; prints "consumed <n>" and exits 0 when every record came back.
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic, group, countText] = process.argv.slice(2);
  const count = Number(countText);
  const kafka = new Kafka({ clientId: 'itest-kafkajs', brokers: bootstrap.split(','), logLevel: logLevel.WARN });

  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) {
    messages.push({ key: `k${i}`, value: `kafkajs-${i}` });
  }
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  console.log(`produced ${count}`);

  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, sessionTimeout: 6000, heartbeatInterval: 1000 });
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
  console.log(`consumed ${received}`);
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
