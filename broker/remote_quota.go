package broker

import "time"

// RemoteFetchQuota is Kafka's remote fetch quota (KIP-956,
// remote.log.manager.fetch.max.bytes.per.second), broker-wide:
// tiering.Tier.FetchQuota, a quota.Pacer. The tier paces the bytes remote
// reads take from the store and its disk cache against it as it takes
// them (so a throttled replay goes at the quota, not in bursts at full
// speed between throttled spells). Before each remote read of a
// consumer's Fetch the broker asks ThrottleTime; above 0 (the reads
// already paced would keep this one waiting too long) the read is skipped,
// as Kafka skips it while its quota is exceeded. A long poll then waits
// within its max wait (fetch.max.wait.ms) for the quota's room and reads
// (refusedRetry, as for a reader queue that is full), or for other
// partitions to bring MinBytes; a partition not read by then is answered
// without data and without an error, and the consumer asks again for the
// same offset. Kafka answers the skipped partition empty after the whole
// delayed fetch, leaving the quota idle meanwhile. Only consumers'
// Fetches are skipped: followers never read remote data, and ListOffsets
// by timestamp reads past the quota, as in Kafka.
type RemoteFetchQuota interface {
	ThrottleTime() time.Duration
}

// remoteFetchThrottle is how long the remote fetch quota keeps holding
// remote reads back (0: it does not now).
func (s *Server) remoteFetchThrottle() time.Duration {
	if s.cfg.RemoteFetchQuota == nil {
		return 0
	}
	return s.cfg.RemoteFetchQuota.ThrottleTime()
}
