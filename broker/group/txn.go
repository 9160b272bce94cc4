package group

// CompleteTransaction makes the transactional offset commits producerID
// wrote to partition's shard visible (commit) or drops them (abort), once
// the transaction's marker is committed in that __consumer_offsets
// partition. A placeholder until transactional offset commits land.
func (m *Manager) CompleteTransaction(partition int32, producerID int64, producerEpoch int16, commit bool) {
}
