package broker

import (
	"errors"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/metadata"
)

// What the tier manager (broker/tiermanager, wired by cmd/internal/node)
// needs from the broker: the partition replicas it hosts, and for a
// recovery from the bucket, replica placement and an immediate reconcile.
// The broker itself never imports the tier manager or tiering.

// HostedPartitions lists the partition replicas this broker hosts.
func (s *Server) HostedPartitions() []*partition.Partition { return s.partitions.all() }

// PlaceReplicas assigns the replicas of a new topic's partitions as
// CreateTopics does with default.replication.factor, capped at the live
// brokers (a recovery from the bucket into a smaller cluster).
func (s *Server) PlaceReplicas(partitions int32) ([][]int32, error) {
	rf := min(int(s.cfg.DefaultReplicationFactor), len(liveBrokers(s.cfg.Metadata.State())))
	assignments, code, msg := s.placeReplicas(partitions, int16(max(rf, 1)), nil)
	if code != 0 {
		return nil, errors.New(msg)
	}
	return assignments, nil
}

// Reconcile brings the open partitions in line with the metadata state
// now, rather than when the broker next notices the change.
func (s *Server) Reconcile() error { return s.partitions.reconcile() }

// LocalLogStart returns the first offset of a partition's local log on
// this broker (false when it hosts no replica of it): offsets below it are
// read from the object store, so only segments below it are worth reading
// ahead.
func (s *Server) LocalLogStart(p metadata.TopicPartition) (int64, bool) {
	part := s.partitions.get(metadata.Topic{Name: p.Topic, ID: p.TopicID}, p.Partition)
	if part == nil {
		return 0, false
	}
	return part.LogStartOffset(), true
}
