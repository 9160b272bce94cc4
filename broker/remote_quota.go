package broker

import "time"

// RemoteFetchQuota is Kafka's remote fetch quota (KIP-956,
// remote.log.manager.fetch.max.bytes.per.second), broker-wide:
// tiering.Tier.FetchQuota, a quota.Limiter. Before each remote read of a
// consumer's Fetch the broker asks ThrottleTime; above 0 the read is
// skipped and the partition answered without data and without an error,
// as Kafka does. The Fetch is then an ordinary long poll: it is answered
// when other partitions bring MinBytes or after MaxWaitMillis (Kafka's
// delayed fetch, fetch.max.wait.ms), and the consumer asks again for the
// same offset. The bytes each remote read returns are Recorded after it.
// Only consumers' Fetches count: followers never read remote data, and
// ListOffsets by timestamp reads past the quota, as in Kafka.
type RemoteFetchQuota interface {
	ThrottleTime() time.Duration
	Record(n int64)
}

// remoteFetchThrottled reports whether the remote fetch quota is
// exceeded now.
func (s *Server) remoteFetchThrottled() bool {
	return s.cfg.RemoteFetchQuota != nil && s.cfg.RemoteFetchQuota.ThrottleTime() > 0
}

// recordRemoteFetch counts n bytes read from the object store against
// the remote fetch quota.
func (s *Server) recordRemoteFetch(n int) {
	if s.cfg.RemoteFetchQuota != nil {
		s.cfg.RemoteFetchQuota.Record(int64(n))
	}
}
