package tiermanager

import "testing"

// Local disk holds no more than local retention and the upload backlog: a
// segment past local retention leaves the disk as soon as its upload is
// committed, not at the next retention pass (the fixture runs none).
func TestUploadedSegmentsPastLocalRetentionLeaveAtOnce(t *testing.T) {
	f := newFixture(t, 40)
	const localRetention = 9000 // about two segments of the fixture's
	f.setConfigs(tiered("local.retention.bytes", "9000"))
	sealed := f.sealed()
	if len(sealed) < 6 {
		t.Fatalf("%d sealed segments, want at least 6", len(sealed))
	}
	largest := int64(0)
	for _, info := range sealed {
		largest = max(largest, info.Size)
	}
	f.pass()
	if entries := f.entries(); len(entries) != len(sealed) {
		t.Fatalf("%d segments uploaded, want %d", len(entries), len(sealed))
	}
	local := int64(0)
	for _, info := range f.part.Segments() {
		local += info.Size
	}
	// Retention deletes whole segments: at most one more than the bytes
	// local retention keeps.
	if local > localRetention+largest {
		t.Fatalf("%d bytes on local disk after every sealed segment was uploaded, want at most local.retention.bytes %d + one segment (%d)", local, localRetention, largest)
	}
	if start := f.part.LogStartOffset(); start <= sealed[0].BaseOffset {
		t.Fatalf("local log start %d: nothing left the disk", start)
	}
}
