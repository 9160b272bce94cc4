package broker

import "time"

// RemoteFetchQuota is Kafka's remote fetch quota (KIP-956,
// remote.log.manager.fetch.max.bytes.per.second), broker-wide:
// tiering.Tier.FetchQuota, a quota.Pacer. The tier paces the bytes remote
// reads take from the store and its disk cache against it as it takes
// them (so a throttled replay goes at the quota, not in bursts at full
// speed between throttled spells). Before each remote read of a
// consumer's Fetch the broker asks ThrottleTime; above 0 (the reads
// already paced would keep this one waiting too long) the read is skipped
// and the partition answered without data and without an error, as Kafka
// does while its quota is exceeded. The Fetch is then an ordinary long
// poll: it is answered when other partitions bring MinBytes or after
// MaxWaitMillis (Kafka's delayed fetch, fetch.max.wait.ms), and the
// consumer asks again for the same offset. Only consumers' Fetches are
// skipped: followers never read remote data, and ListOffsets by
// timestamp reads past the quota, as in Kafka.
type RemoteFetchQuota interface {
	ThrottleTime() time.Duration
}

// remoteFetchThrottled reports whether the remote fetch quota throttles
// remote reads now.
func (s *Server) remoteFetchThrottled() bool {
	return s.cfg.RemoteFetchQuota != nil && s.cfg.RemoteFetchQuota.ThrottleTime() > 0
}
