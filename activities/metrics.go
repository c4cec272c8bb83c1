package activities

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the activities did; the worker exposes them.
type Metrics struct {
	SagaOutcomes      *prometheus.CounterVec
	MessagesPersisted prometheus.Counter
	MessagesPublished prometheus.Counter
	BatchRows         prometheus.Histogram
	SeqCollisions     prometheus.Counter
}

// NewMetrics builds the activity metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		SagaOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatflow_signup_sagas_total", Help: "Sign-up sagas by outcome (completed, compensated).",
		}, []string{"outcome"}),
		MessagesPersisted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatflow_messages_persisted_total", Help: "Message rows inserted into Postgres (replays not counted).",
		}),
		MessagesPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatflow_messages_published_total", Help: "Messages published to Kafka chat.messages.",
		}),
		BatchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chatflow_batch_rows", Help: "Messages per persisted batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		SeqCollisions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatflow_seq_collisions_total", Help: "Messages not stored because another message already had their (room, seq); must stay 0.",
		}),
	}
}

// Collectors lists the metrics for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.SagaOutcomes, m.MessagesPersisted, m.MessagesPublished, m.BatchRows, m.SeqCollisions}
}
