package chat

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the message core's counters and histograms.
type Metrics struct {
	messagesAccepted  prometheus.Counter
	messagesCommitted prometheus.Counter
	batchSize         prometheus.Histogram
	batchStart        prometheus.Histogram
	ackLatency        prometheus.Histogram
	backlogRefused    prometheus.Counter
	batchesLeft       prometheus.Counter
	readHoles         prometheus.Counter
	// membersRebuildRaced counts member-set rebuilds refused because the
	// membership changed meanwhile; presenceSwept counts users of dead
	// nodes whose presence a sweep ended.
	membersRebuildRaced prometheus.Counter
	presenceSwept       prometheus.Counter
	// pipelineScripts is the send scripts per pipeliner round trip; past
	// pipelineChunk they went out split over connections.
	pipelineScripts prometheus.Histogram
}

func newMetrics() *Metrics {
	return &Metrics{
		messagesAccepted:    prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_messages_accepted_total", Help: "Messages sequenced and fanned out."}),
		messagesCommitted:   prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_messages_committed_total", Help: "Messages handed to a started batch workflow."}),
		batchSize:           prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatflow_batch_messages", Help: "Messages per persistence batch workflow.", Buckets: prometheus.ExponentialBuckets(1, 2, 13)}),
		batchStart:          prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatflow_batch_start_seconds", Help: "Time to start a batch workflow.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		ackLatency:          prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatflow_ack_seconds", Help: "Send to durable ack latency.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		backlogRefused:      prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_backlog_refused_total", Help: "Sends refused because the room's log had too many messages waiting for Postgres."}),
		batchesLeft:         prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_batches_left_to_reconciler_total", Help: "Batches not started (Temporal unreachable); the reconciler persists them from the log."}),
		readHoles:           prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_read_holes_total", Help: "Reads that found seqs in neither the log nor Postgres (lost, not yet tombstoned)."}),
		membersRebuildRaced: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_members_rebuild_raced_total", Help: "Member-set cache rebuilds refused because the membership changed meanwhile (read again)."}),
		presenceSwept:       prometheus.NewCounter(prometheus.CounterOpts{Name: "chatflow_presence_swept_total", Help: "Users of dead nodes whose presence was ended by a sweep."}),
		pipelineScripts:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatflow_send_pipeline_scripts", Help: "Send scripts per Redis round trip of the send pipeliner; more than 16 go out split over connections.", Buckets: prometheus.ExponentialBuckets(1, 2, 9)}),
	}
}

// Collectors lists the metrics for a registry.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.messagesAccepted, m.messagesCommitted, m.batchSize, m.batchStart, m.ackLatency, m.backlogRefused, m.batchesLeft, m.readHoles,
		m.membersRebuildRaced, m.presenceSwept, m.pipelineScripts}
}

// ObserveAck records the latency from a send to its durable ack.
func (m *Metrics) ObserveAck(d time.Duration) { m.ackLatency.Observe(d.Seconds()) }
