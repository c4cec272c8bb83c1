package activities

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the activities did; the worker exposes them.
type Metrics struct {
	SagaOutcomes      *prometheus.CounterVec
	MessagesPersisted prometheus.Counter
	MessagesPublished prometheus.Counter
	BatchRows         prometheus.Histogram
	SeqCollisions     prometheus.Counter
	DeadLetters       prometheus.Counter
	Tombstones        prometheus.Counter
	Reconciled        prometheus.Counter
	UploadsSwept      *prometheus.CounterVec
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
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatflow_dead_letters_total", Help: "Messages Postgres refused, kept in chat.dead_letters with a tombstone at their seq.",
		}),
		Tombstones: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatflow_gap_tombstones_total", Help: "Seqs lost from the log (Redis data loss) written as gap tombstones.",
		}),
		Reconciled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatflow_messages_reconciled_total", Help: "Messages the reconciler persisted from the log (their batch was lost or late).",
		}),
		UploadsSwept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatflow_uploads_swept_total", Help: "Uploads never attached (file) or set (avatar) whose objects and row a sweep removed.",
		}, []string{"kind"}),
	}
}

// Collectors lists the metrics for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.SagaOutcomes, m.MessagesPersisted, m.MessagesPublished, m.BatchRows, m.SeqCollisions, m.DeadLetters, m.Tombstones, m.Reconciled, m.UploadsSwept}
}
