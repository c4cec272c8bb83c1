package events

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// RunDevBroker runs a single-node Kafka-protocol broker (franz-go kfake) on
// addr, persisting topics under dataDir, until ctx ends. It is for local
// development and tests only; production points KAFKA_BROKERS at a real cluster.
func RunDevBroker(ctx context.Context, addr, dataDir string, partitions int32) error {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("broker address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("broker port: %w", err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(partitions)),
		kfake.SeedTopics(partitions, TopicNames()...),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	<-ctx.Done()
	c.Close()
	return nil
}
