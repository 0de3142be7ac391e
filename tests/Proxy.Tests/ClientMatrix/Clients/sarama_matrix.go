// Client-matrix driver for Sarama 1.22 (Go). Sarama 1.22 never sends ApiVersions: it picks every request version
// from Config.Version, so that must name a Kafka version whose request versions the proxy and both clusters accept.
// V2_0_0_0 gives Produce v3 (record batches, magic 2), Fetch v4, Metadata v5, ListOffsets v1, JoinGroup v1,
// OffsetCommit v1, OffsetFetch v1, FindCoordinator v0, all inside what the proxy offers. The default, V0_8_2_0,
// still produces through the proxy (Produce v0, magic-0 message sets) but rules out consumer groups:
// NewConsumerGroup refuses anything below V0_10_2_0.
//
// Usage: sarama_matrix produce|consume <bootstrap> <topic> <group> <count> <prefix>
// Record i has key "<prefix>-k<i % 7>" and value "<prefix>-<i>". Prints one JSON line per record produced (with the
// partition and offset the broker acknowledged) or consumed. MATRIX_DEBUG=1 logs Sarama on stderr;
// SARAMA_KAFKA_VERSION (e.g. 0.10.2.0) overrides Config.Version.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

type line struct {
	Op        string `json:"op"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

var out sync.Mutex

func emit(op, key, value string, partition int32, offset int64) {
	text, _ := json.Marshal(line{op, key, value, partition, offset})
	out.Lock()
	defer out.Unlock()
	fmt.Println(string(text))
}

func config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "matrix-sarama"
	cfg.Version = sarama.V2_0_0_0
	if text := os.Getenv("SARAMA_KAFKA_VERSION"); text != "" {
		version, err := sarama.ParseKafkaVersion(text)
		if err != nil {
			fmt.Fprintln(os.Stderr, "SARAMA_KAFKA_VERSION:", err)
			os.Exit(2)
		}
		cfg.Version = version
	}
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	return cfg
}

func produce(bootstrap, topic string, count int, prefix string) error {
	cfg := config()
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 5
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	producer, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
	if err != nil {
		return fmt.Errorf("new producer: %w", err)
	}
	defer producer.Close()
	for i := 0; i < count; i++ {
		key := fmt.Sprintf("%s-k%d", prefix, i%7)
		value := fmt.Sprintf("%s-%d", prefix, i)
		partition, offset, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value)})
		if err != nil {
			return fmt.Errorf("send %s: %w", value, err)
		}
		emit("produced", key, value, partition, offset)
	}
	return nil
}

type handler struct {
	mu       sync.Mutex
	received int
	want     int
	done     context.CancelFunc
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		emit("consumed", string(msg.Key), string(msg.Value), msg.Partition, msg.Offset)
		session.MarkMessage(msg, "")
		h.mu.Lock()
		h.received++
		if h.received >= h.want {
			h.done()
		}
		h.mu.Unlock()
	}
	return nil
}

func consume(bootstrap, topic, group string, count int) error {
	cfg := config()
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = time.Second
	consumerGroup, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
	if err != nil {
		return fmt.Errorf("new consumer group: %w", err)
	}
	go func() {
		for err := range consumerGroup.Errors() {
			fmt.Fprintln(os.Stderr, "consumer group error:", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	h := &handler{want: count, done: cancel}
	for ctx.Err() == nil {
		if err := consumerGroup.Consume(ctx, []string{topic}, h); err != nil {
			fmt.Fprintln(os.Stderr, "consume:", err)
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Close commits the marked offsets.
	if err := consumerGroup.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.received < count {
		return fmt.Errorf("consumed only %d of %d", h.received, count)
	}
	return nil
}

func main() {
	if len(os.Args) < 7 {
		fmt.Fprintln(os.Stderr, "usage: sarama_matrix produce|consume <bootstrap> <topic> <group> <count> <prefix>")
		os.Exit(2)
	}
	mode, bootstrap, topic, group, prefix := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[6]
	count, err := strconv.Atoi(os.Args[5])
	if err != nil {
		fmt.Fprintln(os.Stderr, "count:", err)
		os.Exit(2)
	}
	if os.Getenv("MATRIX_DEBUG") == "1" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}
	switch mode {
	case "produce":
		err = produce(bootstrap, topic, count, prefix)
	case "consume":
		err = consume(bootstrap, topic, group, count)
	default:
		err = fmt.Errorf("unknown mode %s", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
