package tiermanager

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/broker/topicconfig"
	"github.com/strata-log/strata/internal/clockwatch"
	"github.com/strata-log/strata/internal/clockwatch/clockwatchtest"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
	"github.com/strata-log/strata/tiering"
)

func TestExpiredSegments(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	// Three remote segments of 100 bytes, newest records 900, 500 and 100
	// ms old; an entry without timestamps, as older builds uploaded a
	// segment whose batches had none (now its modification time:
	// TestRemoteRetentionWithoutTimestamps).
	finished := []metadata.SegmentManifest{
		{BaseOffset: 0, LastOffset: 9, SizeBytes: 100, MaxTimestamp: 1_000_000 - 900},
		{BaseOffset: 10, LastOffset: 19, SizeBytes: 100, MaxTimestamp: 1_000_000 - 500},
		{BaseOffset: 20, LastOffset: 29, SizeBytes: 100, MaxTimestamp: 1_000_000 - 100},
	}
	noTimestamps := []metadata.SegmentManifest{{BaseOffset: 0, LastOffset: 9, SizeBytes: 100, MaxTimestamp: -1}, finished[1], finished[2]}
	// Local: the uploaded segments still on disk count once (they are in
	// the remote bytes), the 50 bytes past the remote end count: 350 bytes
	// in all. A segment expires by size only if the rest still reaches
	// the limit.
	local := []segment.SegmentInfo{
		{BaseOffset: 20, EndOffset: 30, Size: 100},
		{BaseOffset: 30, EndOffset: 35, Size: 50, Active: true},
	}
	retention := func(ms, bytes int64) topicconfig.Values {
		v := topicconfig.Typed(nil, tieredConfigs)
		v.RetentionMs, v.RetentionBytes = ms, bytes
		return v
	}
	for _, c := range []struct {
		name     string
		finished []metadata.SegmentManifest
		config   topicconfig.Values
		want     int
	}{
		{"no limits", finished, retention(-1, -1), 0},
		{"by age", finished, retention(600, -1), 1},
		{"by age, every segment", finished, retention(50, -1), 3},
		{"by age, at the limit", finished, retention(500, -1), 1},
		{"an older build's entry without timestamps never expires by age", noTimestamps, retention(50, -1), 0},
		{"an older build's entry without timestamps expires by size", noTimestamps, retention(50, 250), 1},
		{"by size: 350 bytes against 300, one less would undershoot", finished, retention(-1, 300), 0},
		{"by size: 350 bytes against 250", finished, retention(-1, 250), 1},
		{"by size: 350 bytes against 150", finished, retention(-1, 150), 2},
		{"by size: 350 bytes against 0", finished, retention(-1, 0), 3},
		{"by size: 350 bytes against 350", finished, retention(-1, 350), 0},
		{"by age, then by size", finished, retention(600, 100), 2},
		{"by size after age", finished, retention(600, 250), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := expiredSegments(c.finished, local, c.config, now); got != c.want {
				t.Fatalf("expiredSegments = %d, want %d", got, c.want)
			}
		})
	}
}

// TestRemoteRetention: total retention deletes the oldest remote segments,
// entries and objects, and the manifest snapshot follows; a topic that
// only compacts keeps them.
func TestRemoteRetention(t *testing.T) {
	f := newFixture(t, 20)
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	sealed := f.sealed()
	f.checkCoversSealed(sealed, 0)

	f.setConfigs(tiered("retention.bytes", "0", "cleanup.policy", "compact"))
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	f.checkCoversSealed(sealed, 0)

	// Keep all but the two oldest segments' bytes.
	total := f.part.Size()
	limit := total - sealed[0].Size - sealed[1].Size
	f.setConfigs(tiered("retention.bytes", fmt.Sprint(limit)))
	f.pass()
	f.checkCoversSealed(sealed[2:], 0)
	snapshot, err := f.tier.GetManifestSnapshot(f.ctx, f.part.Name())
	if err != nil || len(snapshot.Segments) != len(sealed)-2 || snapshot.Segments[0].BaseOffset != sealed[2].BaseOffset {
		t.Fatalf("manifest snapshot after retention: %v %+v", err, snapshot)
	}
}

// TestRemoteStorageOffDeletesEverything: remote.storage.enable=false with
// remote.log.delete.on.disable deletes every remote segment.
func TestRemoteStorageOffDeletesEverything(t *testing.T) {
	f := newFixture(t, 10)
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	f.setConfigs(tiered("remote.storage.enable", "false", "remote.log.delete.on.disable", "true"))
	f.pass()
	if entries := f.entries(); len(entries) != 0 {
		t.Fatalf("entries %+v", entries)
	}
	// The (empty) manifest snapshot stays.
	if objects := f.objects(); len(objects) != 1 {
		t.Fatalf("objects %v", objects)
	}
}

// TestDeletedTopicCleanup: the lowest live broker deletes a deleted
// topic's objects, entries and manifest snapshot, knowing its name from
// before or finding it in the bucket.
func TestDeletedTopicCleanup(t *testing.T) {
	for _, restart := range []bool{false, true} {
		f := newFixture(t, 10)
		f.pass()
		if len(f.entries()) == 0 {
			t.Fatal("nothing uploaded")
		}
		// A deposed uploader's late copy, which no entry names.
		sealed := f.sealed()[0]
		if _, err := f.tier.Upload(f.ctx, tiering.SegmentFiles{Partition: f.part.Name(), BaseOffset: sealed.BaseOffset,
			LogPath: sealed.LogPath, OffsetIndexPath: sealed.OffsetIndexPath, TimeIndexPath: sealed.TimeIndexPath}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.DeleteTopic(f.ctx, f.topic.Name); err != nil {
			t.Fatal(err)
		}
		if restart {
			f.manager = f.newManager() // the name only in the bucket
		}
		broker, _ := f.store.State().Broker(metadatatest.NodeID)
		if err := f.store.SetBrokerFenced(f.ctx, broker.ID, broker.Epoch, true); err != nil {
			t.Fatal(err)
		}
		f.pass() // no live broker: no cleanup
		if len(f.entries()) == 0 {
			t.Fatalf("restart %t: cleaned up while no broker is live", restart)
		}
		metadatatest.RegisterBroker(t, f.store, metadatatest.NodeID)
		f.pass()
		if entries := f.entries(); len(entries) != 0 {
			t.Fatalf("restart %t: entries left %+v", restart, entries)
		}
		if objects := f.objects(); len(objects) != 0 {
			t.Fatalf("restart %t: objects left %v", restart, objects)
		}
	}
}

func TestLowestLiveBroker(t *testing.T) {
	store := metadatatest.Start(t)
	if lowestLiveBroker(store.State(), 1) {
		t.Fatal("lowest live broker without any broker")
	}
	metadatatest.RegisterBroker(t, store, 3)
	metadatatest.RegisterBroker(t, store, 2)
	for id, want := range map[int32]bool{1: false, 2: true, 3: false} {
		if got := lowestLiveBroker(store.State(), id); got != want {
			t.Errorf("lowestLiveBroker(%d) = %t, want %t", id, got, want)
		}
	}
}

// TestRemoteRetentionPausedByClockJump: after the wall clock jumps a year
// ahead, a pass at that time deletes no remote segment by age until an
// operator confirms the clock (or it returns); retention.bytes still
// applies.
func TestRemoteRetentionPausedByClockJump(t *testing.T) {
	for _, resume := range clockwatchtest.Resumes {
		t.Run(resume, func(t *testing.T) {
			f := newFixture(t, 20)
			wall := clockwatchtest.New(time.Now())
			watch, err := clockwatch.New(clockwatch.Config{Clock: wall, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			f.manager.cfg.RetentionPause = watch
			if err := f.work(); err != nil {
				t.Fatal(err)
			}
			sealed := f.sealed()
			f.checkCoversSealed(sealed, 0)
			f.setConfigs(tiered("retention.ms", fmt.Sprint((24 * time.Hour).Milliseconds())))

			wall.Jump(365 * 24 * time.Hour)
			now, _ := wall.Now()
			if expired, err := f.manager.expireRemote(f.ctx, f.part, 0, now); err != nil || expired != 0 {
				t.Fatalf("a year-ahead clock expired %d remote segments (%v)", expired, err)
			}
			f.checkCoversSealed(sealed, 0)

			// retention.bytes does not read the clock: it still applies.
			limit := f.part.Size() - sealed[0].Size
			f.setConfigs(tiered("retention.ms", fmt.Sprint((24 * time.Hour).Milliseconds()), "retention.bytes", fmt.Sprint(limit)))
			if expired, err := f.manager.expireRemote(f.ctx, f.part, 0, now); err != nil || expired != 1 {
				t.Fatalf("retention.bytes while paused: %d expired (%v), want 1", expired, err)
			}
			f.setConfigs(tiered("retention.ms", fmt.Sprint((24 * time.Hour).Milliseconds())))

			clockwatchtest.Resume(t, watch, wall, resume, 365*24*time.Hour, 48*time.Hour) // 48 h: now really past retention
			now, _ = wall.Now()
			if expired, err := f.manager.expireRemote(f.ctx, f.part, 0, now); err != nil || expired != len(sealed)-1 {
				t.Fatalf("after the clock is trusted again: %d expired (%v), want %d", expired, err, len(sealed)-1)
			}
		})
	}
}

// TestRemoteRetentionTrimsLeaderEpochs: once total retention has deleted
// every record of leader epoch 0, OffsetForLeaderEpoch for epoch 0 answers
// the log start, as Kafka's truncateFromStart makes it, not the end of
// the deleted epoch below it (where a consumer validating its position
// would be sent to an offset that no longer exists).
func TestRemoteRetentionTrimsLeaderEpochs(t *testing.T) {
	f := newFixture(t, 4) // epoch 0: offsets 0..19
	f.bumpLeaderEpoch()
	appendBatches(t, f.part, 6, 42) // epoch 1: offsets 20..49
	if err := f.work(); err != nil {
		t.Fatal(err)
	}
	sealed := f.sealed()
	if len(sealed) < 4 || sealed[2].BaseOffset != 20 || sealed[3].BaseOffset != 30 {
		t.Fatalf("sealed segments %+v, want 0, 10, 20, 30, ...", sealed)
	}
	// Keep all but the three oldest segments: offsets 0..29 go, epoch 1
	// starts at 20.
	f.setConfigs(tiered("retention.bytes", fmt.Sprint(f.part.Size()-sealed[0].Size-sealed[1].Size-sealed[2].Size)))
	f.pass()
	logStart := f.part.LogStartOffsetIn(f.store.State())
	if logStart != 30 {
		t.Fatalf("log start %d after retention, want 30", logStart)
	}
	if epoch, end := f.part.EpochEndOffset(0); epoch != 0 || end != logStart {
		t.Fatalf("OffsetForLeaderEpoch(0) = epoch %d, end offset %d; want epoch 0 ending at the log start %d", epoch, end, logStart)
	}
	if epoch, end := f.part.EpochEndOffset(1); epoch != 1 || end != f.part.LogEndOffset() {
		t.Fatalf("OffsetForLeaderEpoch(1) = epoch %d, end offset %d; want epoch 1 ending at the log end %d", epoch, end, f.part.LogEndOffset())
	}
}

// TestRemoteRetentionWithoutTimestamps: a segment whose batches carry no
// timestamp (-1, legal with CreateTime) is uploaded with its local copy's
// last modification as its largest timestamp, as Kafka copies
// LogSegment.largestTimestamp into the remote segment's metadata, so
// retention.ms expires the remote copy by it, and the segments after it
// too, rather than never.
func TestRemoteRetentionWithoutTimestamps(t *testing.T) {
	f := newFixture(t, 0)
	before := time.Now().UnixMilli()
	for range 6 {
		base := f.part.LogEndOffset()
		records := make([]recordbatch.Record, 5)
		for i := range records {
			records[i] = recordbatch.Record{Timestamp: -1, Value: bytes.Repeat([]byte{byte(base)}, 400)}
		}
		batch, err := recordbatch.Build(recordbatch.BuildOptions{}, records)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.part.Append(batch, 9, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	after := time.Now().UnixMilli()
	f.pass()
	sealed := f.sealed()
	f.checkCoversSealed(sealed, 0)
	for i, e := range f.entries() {
		if sealed[i].MaxTimestamp != -1 || e.MaxTimestamp < before || e.MaxTimestamp > after {
			t.Fatalf("entry %d: max timestamp %d of a segment without timestamps (%d), want its modification time in [%d, %d]",
				i, e.MaxTimestamp, sealed[i].MaxTimestamp, before, after)
		}
	}

	f.setConfigs(tiered("retention.ms", "60000"))
	if expired, err := f.manager.expireRemote(f.ctx, f.part, f.part.LeaderEpoch(), time.UnixMilli(after)); err != nil || expired != 0 {
		t.Fatalf("expired %d, %v within retention.ms", expired, err)
	}
	if expired, err := f.manager.expireRemote(f.ctx, f.part, f.part.LeaderEpoch(), time.UnixMilli(after).Add(time.Hour)); err != nil || expired != len(sealed) {
		t.Fatalf("expired %d of %d segments, %v, an hour past retention.ms", expired, len(sealed), err)
	}
	if entries := f.entries(); len(entries) != 0 {
		t.Fatalf("entries after retention: %+v", entries)
	}
}
