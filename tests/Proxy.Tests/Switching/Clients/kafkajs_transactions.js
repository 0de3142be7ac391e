// Transactional workload driver for kafkajs 2.2.4 (pure JavaScript).
// Usage: node kafkajs_transactions.js <bootstrap> <topic> <transactional id> <stop file>  (NODE_PATH must reach kafkajs)
// Runs transactions of 10 records (keys k0..k15, values "t<n>-r<i>"), every fifth aborted, ~20 ms apart, until the
// stop file exists. One stdout line per transaction: "C <n> <v1,v2,...>" committed, "A <n> <values>" aborted,
// "E <n> <error>" a failure that reached the application. kafkajs retries retriable errors itself and logs them at
// ERROR level: those go to stdout as "T <message>" (kept apart, as a client's own error callback would be).
// Everything else kafkajs logs goes to stderr only with SWITCHBACK_DEBUG=1.
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const RecordsPerTransaction = 10;
const Keys = 16;

function line(text) {
  process.stdout.write(`${text.replace(/[\r\n]+/g, ' ')}\n`);
}

const debug = process.env.SWITCHBACK_DEBUG === '1';
const logCreator = () => ({ namespace, level, label, log }) => {
  if (level === logLevel.ERROR) {
    line(`T [${namespace}] ${log.message}${log.error ? ` (${log.error})` : ''}`);
  }
  if (debug) {
    process.stderr.write(`${label} [${namespace}] ${JSON.stringify(log)}\n`);
  }
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function describe(err) {
  const cause = err.originalError ?? err.cause;
  return `${err.name}: ${err.message}${err.type ? ` [${err.type}]` : ''}${cause ? ` caused by ${cause.name}: ${cause.message}` : ''}`;
}

async function main() {
  const [bootstrap, topic, transactionalId, stopFile] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: 'switchback-kafkajs-transactions',
    brokers: bootstrap.split(','),
    logLevel: debug ? logLevel.DEBUG : logLevel.ERROR,
    logCreator,
  });
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, transactionTimeout: 10000 });
  await producer.connect();
  for (let number = 0; !fs.existsSync(stopFile); number++) {
    const abort = number % 5 === 4;
    const values = Array.from({ length: RecordsPerTransaction }, (_, i) => `t${number}-r${i}`);
    const messages = values.map((value, i) => ({ key: `k${(number * RecordsPerTransaction + i) % Keys}`, value }));
    let tx;
    try {
      tx = await producer.transaction();
      await tx.send({ topic, acks: -1, timeout: 20000, messages });
      if (abort) {
        await tx.abort();
        line(`A ${number} ${values.join(',')}`);
      } else {
        await tx.commit();
        line(`C ${number} ${values.join(',')}`);
      }
    } catch (err) {
      line(`E ${number} ${describe(err)}`);
      if (tx && tx.isActive()) {
        try {
          await tx.abort();
        } catch (abortErr) {
          line(`E ${number} abort after failure: ${describe(abortErr)}`);
        }
      }
    }
    await sleep(20);
  }
  await producer.disconnect();
}

main().then(() => process.exit(0), (err) => { line(`E - ${describe(err)}`); process.exit(1); });
