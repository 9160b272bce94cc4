package segment

import (
	"slices"

	"github.com/strata-log/strata/broker/recordbatch"
)

// txnCleaner tells the log cleaner what transactions mean for each batch,
// as Kafka's CleanedTransactionMetadata does. It is fed every batch of a
// walk in offset order (one walk builds the offset map, another cleans)
// and knows the aborted transactions from the aborted-transaction indexes
// (an entry (P, first, last) makes every transactional batch of producer P
// at offsets first..last aborted; last is the ABORT marker's offset).
type txnCleaner struct {
	pending   []AbortedTxn           // not reached yet, by first offset
	aborted   map[int64]*abortedScan // producer -> aborted transaction being walked
	committed map[int64]bool         // producers with a (not aborted) transaction being walked
}

// abortedScan is an aborted transaction the walk is inside of.
type abortedScan struct {
	observed bool // a data batch of it was walked
}

func newTxnCleaner(entries []AbortedTxn) *txnCleaner {
	return &txnCleaner{pending: sortAbortedTxns(slices.Clone(entries)), aborted: map[int64]*abortedScan{}, committed: map[int64]bool{}}
}

// reach starts the aborted transactions beginning at or before offset.
func (c *txnCleaner) reach(offset int64) {
	for len(c.pending) > 0 && c.pending[0].FirstOffset <= offset {
		if _, ok := c.aborted[c.pending[0].ProducerID]; !ok {
			c.aborted[c.pending[0].ProducerID] = &abortedScan{}
		}
		c.pending = c.pending[1:]
	}
}

// dataBatch reports whether a data batch belongs to an aborted
// transaction (and is removed whole).
func (c *txnCleaner) dataBatch(h recordbatch.Header) (aborted bool) {
	c.reach(h.LastOffset())
	if !h.IsTransactional() {
		return false
	}
	if scan, ok := c.aborted[h.ProducerID]; ok {
		scan.observed = true
		return true
	}
	c.committed[h.ProducerID] = true
	return false
}

// controlBatch reports whether a control batch may be removed as far as
// its transaction is concerned (the caller adds delete.retention.ms): an
// ABORT marker once no batch of its transaction remains (none was walked),
// a COMMIT marker likewise, an empty control batch always (a cleaned one),
// a control record of another type never.
func (c *txnCleaner) controlBatch(h recordbatch.Header, batch []byte) (removable bool) {
	c.reach(h.LastOffset())
	if h.NumRecords == 0 {
		return true
	}
	marker, ok, err := recordbatch.ParseMarker(batch)
	if err != nil || !ok {
		return false
	}
	if marker.Type == recordbatch.ControlAbort {
		scan, ok := c.aborted[h.ProducerID]
		delete(c.aborted, h.ProducerID)
		return !ok || !scan.observed
	}
	walked := c.committed[h.ProducerID]
	delete(c.committed, h.ProducerID)
	return !walked
}
