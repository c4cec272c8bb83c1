// Package events publishes domain events to Kafka (user.events, chat.messages)
// and ships the Kafka-protocol dev broker used for local runs and tests.
package events

import (
	"context"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Record is one Kafka record to publish.
type Record struct {
	Topic string
	Key   []byte
	Value []byte
}

// Publisher writes records to Kafka, waiting for all in-sync replicas.
type Publisher struct {
	w *kafka.Writer
}

// NewPublisher connects lazily to the comma-separated broker list.
func NewPublisher(brokers string) *Publisher {
	return &Publisher{w: &kafka.Writer{
		Addr: kafka.TCP(strings.Split(brokers, ",")...),
		// Keyed by user or room id so that one room's messages stay in one partition, in order.
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		BatchSize:              5000,
		// One produce request carries one record batch per partition, and
		// brokers refuse batches over message.max.bytes (1048588 by default,
		// kfake included) with MESSAGE_TOO_LARGE: every call that shared the
		// batch fails. kafka-go's per-message size over-counts the record
		// encoding, so this bound keeps each batch under that limit.
		BatchBytes: 1_000_000,
		// Callers already batch; a long linger would only add latency to each WriteMessages.
		BatchTimeout: 2 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
		ReadTimeout:  10 * time.Second,
	}}
}

// Publish writes the records and returns once the broker acknowledged them all.
func (p *Publisher) Publish(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafka.Message{Topic: r.Topic, Key: r.Key, Value: r.Value}
	}
	return p.w.WriteMessages(ctx, msgs...)
}

// Ping checks that a broker answers metadata requests.
func Ping(ctx context.Context, brokers string) error {
	var d kafka.Dialer
	conn, err := d.DialContext(ctx, "tcp", strings.Split(brokers, ",")[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Brokers()
	return err
}

// Close flushes and closes the writer.
func (p *Publisher) Close() error { return p.w.Close() }
