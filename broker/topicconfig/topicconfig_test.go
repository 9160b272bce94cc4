package topicconfig

import (
	"errors"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		configs map[string]string
		ok      bool
	}{
		{"empty", nil, true},
		{"retention", map[string]string{RetentionMs: "-1", RetentionBytes: "1048576"}, true},
		{"log append time", map[string]string{MessageTimestampType: "LogAppendTime"}, true},
		{"unknown name", map[string]string{"retention.msec": "1"}, false},
		{"not a number", map[string]string{RetentionMs: "forever"}, false},
		{"below minimum", map[string]string{RetentionMs: "-2"}, false},
		{"segment too small", map[string]string{SegmentBytes: "13"}, false},
		{"int overflow", map[string]string{MaxMessageBytes: "4294967296"}, false},
		{"compact", map[string]string{CleanupPolicy: "compact"}, true},
		{"compact,delete", map[string]string{CleanupPolicy: "delete,compact"}, true},
		{"unknown policy", map[string]string{CleanupPolicy: "compact,shred"}, false},
		{"compaction settings", map[string]string{DeleteRetentionMs: "0", MinCompactionLagMs: "100", MinCleanableDirtyRatio: "0.01", MaxCompactionLagMs: "60000"}, true},
		{"dirty ratio above 1", map[string]string{MinCleanableDirtyRatio: "1.5"}, false},
		{"dirty ratio not a number", map[string]string{MinCleanableDirtyRatio: "NaN"}, false},
		{"negative delete retention", map[string]string{DeleteRetentionMs: "-1"}, false},
		{"compression zstd", map[string]string{CompressionType: "zstd"}, true},
		{"compression uncompressed", map[string]string{CompressionType: "uncompressed"}, true},
		{"compression gzip", map[string]string{CompressionType: "gzip"}, true},
		{"compression snappy", map[string]string{CompressionType: "snappy"}, true},
		{"compression lz4", map[string]string{CompressionType: "lz4"}, true},
		{"compression producer", map[string]string{CompressionType: "producer"}, true},
		{"compression none is the producer's name", map[string]string{CompressionType: "none"}, false},
		{"compression level unknown", map[string]string{"compression.zstd.level": "3"}, false},
		{"bad timestamp type", map[string]string{MessageTimestampType: "AppendTime"}, false},
		{"deprecated format version", map[string]string{MessageFormatVersion: "2.8", MessageDownconversionEnable: "false"}, true},
		{"deprecated format version with IV", map[string]string{MessageFormatVersion: "3.0-IV1"}, true},
		{"old format version", map[string]string{MessageFormatVersion: "0.10.2"}, true},
		{"not a version", map[string]string{MessageFormatVersion: "latest"}, false},
		{"downconversion not a boolean", map[string]string{MessageDownconversionEnable: "yes"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.configs)
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%v) = %v, want ok=%v", tc.configs, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestResolveSources(t *testing.T) {
	defaults := Defaults{RetentionMs: "1000"}
	topic := map[string]string{SegmentBytes: "2048"}
	if v, src := Resolve(defaults, topic, SegmentBytes); v != "2048" || src != SourceTopic {
		t.Errorf("topic value: %s %d", v, src)
	}
	if v, src := Resolve(defaults, topic, RetentionMs); v != "1000" || src != SourceStaticBroker {
		t.Errorf("broker default: %s %d", v, src)
	}
	if v, src := Resolve(defaults, topic, RetentionBytes); v != "-1" || src != SourceDefault {
		t.Errorf("built-in default: %s %d", v, src)
	}
	typed := Typed(defaults, map[string]string{MessageTimestampType: "LogAppendTime", SegmentBytes: "2048"})
	if typed.RetentionMs != 1000 || typed.SegmentBytes != 2048 || !typed.LogAppendTime || typed.MaxMessageBytes != 1048588 || typed.MinInsyncReplicas != 1 {
		t.Errorf("typed: %+v", typed)
	}
	if typed.Compression != "producer" {
		t.Errorf("typed compression default: %q", typed.Compression)
	}
	if typed = Typed(Defaults{CompressionType: "gzip"}, map[string]string{CompressionType: "zstd"}); typed.Compression != "zstd" {
		t.Errorf("typed compression: %q", typed.Compression)
	}
	if typed = Typed(Defaults{CompressionType: "gzip"}, nil); typed.Compression != "gzip" {
		t.Errorf("typed compression from the broker default: %q", typed.Compression)
	}
	typed = Typed(defaults, map[string]string{MessageTimestampType: "LogAppendTime", SegmentBytes: "2048"})
	if !typed.Delete || typed.Compact || typed.MinCleanableDirtyRatio != 0.5 || typed.DeleteRetentionMs != 86400000 {
		t.Errorf("typed cleanup defaults: %+v", typed)
	}
	typed = Typed(defaults, map[string]string{CleanupPolicy: "compact", MinCleanableDirtyRatio: "0.1"})
	if typed.Delete || !typed.Compact || typed.MinCleanableDirtyRatio != 0.1 {
		t.Errorf("typed compact: %+v", typed)
	}
	typed = Typed(defaults, map[string]string{CleanupPolicy: "compact, delete"})
	if !typed.Delete || !typed.Compact {
		t.Errorf("typed compact,delete: %+v", typed)
	}
}

func TestEveryDefinitionDefaultIsValid(t *testing.T) {
	for _, d := range All() {
		if err := ValidateOne(d.Name, d.Default); err != nil {
			t.Errorf("%s default %q: %v", d.Name, d.Default, err)
		}
		topicOnly := d.Name == LeaderReplicationThrottledReplicas || d.Name == FollowerReplicationThrottledReplicas
		if (d.BrokerName == "") != topicOnly || d.Doc == "" {
			t.Errorf("%s lacks a broker name or doc", d.Name)
		}
	}
}

func TestCheckCombinedTiering(t *testing.T) {
	tests := []struct {
		name    string
		configs map[string]string
		ok      bool
	}{
		{"not tiered", map[string]string{"cleanup.policy": "compact"}, true},
		{"tiered delete", map[string]string{"remote.storage.enable": "true", "local.retention.bytes": "1000"}, true},
		{"tiered compacted", map[string]string{"remote.storage.enable": "true", "cleanup.policy": "compact"}, false},
		{"local above total bytes", map[string]string{"remote.storage.enable": "true", "retention.bytes": "100", "local.retention.bytes": "1000"}, false},
		{"local above total ms", map[string]string{"remote.storage.enable": "true", "retention.ms": "100", "local.retention.ms": "1000"}, false},
		{"local unlimited, total limited", map[string]string{"remote.storage.enable": "true", "retention.ms": "100", "local.retention.ms": "-1"}, false},
		{"local -2 follows total", map[string]string{"remote.storage.enable": "true", "retention.ms": "100"}, true},
		{"tiered unclean", map[string]string{"remote.storage.enable": "true", "unclean.leader.election.enable": "true"}, false},
		{"tiered clean", map[string]string{"remote.storage.enable": "true", "unclean.leader.election.enable": "false"}, true},
		{"unclean not tiered", map[string]string{"unclean.leader.election.enable": "true"}, true},
	}
	for _, test := range tests {
		err := CheckCombined(nil, test.configs)
		if (err == nil) != test.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: %v, want ok=%v", test.name, err, test.ok)
		}
	}
	v := Typed(nil, map[string]string{"retention.ms": "5000", "retention.bytes": "7000", "remote.storage.enable": "true"})
	if !v.RemoteStorage || v.LocalRetentionMs != 5000 || v.LocalRetentionBytes != 7000 {
		t.Fatalf("local retention -2 resolves to the total: %+v", v)
	}
}

// TestDeprecated: the deprecated configs Kafka 3.9 still accepts are named
// with a reason, and change no resolved value.
func TestDeprecated(t *testing.T) {
	configs := map[string]string{MessageFormatVersion: "2.8", MessageDownconversionEnable: "false", RetentionMs: "1000"}
	got := DeprecatedIn(configs)
	if len(got) != 2 || got[MessageFormatVersion] == "" || got[MessageDownconversionEnable] == "" {
		t.Fatalf("DeprecatedIn = %v, want both deprecated configs with a reason", got)
	}
	if DeprecatedIn(map[string]string{RetentionMs: "1"}) != nil {
		t.Fatal("a current config reported as deprecated")
	}
	with, without := Typed(nil, configs), Typed(nil, map[string]string{RetentionMs: "1000"})
	if with != without {
		t.Fatalf("deprecated configs changed resolved values: %+v vs %+v", with, without)
	}
}

// TestTypedIgnoresValuesItDoesNotAccept: the metadata log only checks the
// shape of configs, so a value that reached it without the broker's checks
// (a raw proposal) must not take effect: a segment of 1 byte, an index
// interval of 0, a cleanup policy "shred" all count as the defaults.
func TestTypedIgnoresValuesItDoesNotAccept(t *testing.T) {
	defaults := Typed(nil, nil)
	got := Typed(nil, map[string]string{
		SegmentBytes:       "1",
		IndexIntervalBytes: "-5",
		CleanupPolicy:      "shred",
		RetentionMs:        "-7",
	})
	if got.SegmentBytes != defaults.SegmentBytes || got.IndexIntervalBytes != defaults.IndexIntervalBytes ||
		got.Delete != defaults.Delete || got.Compact != defaults.Compact || got.RetentionMs != defaults.RetentionMs {
		t.Fatalf("invalid values took effect: %+v, want the defaults %+v", got, defaults)
	}
	if valid := Typed(nil, map[string]string{SegmentBytes: "2000000"}); valid.SegmentBytes != 2000000 {
		t.Fatalf("a valid segment.bytes did not take effect: %d", valid.SegmentBytes)
	}
}

// TestThrottledReplicas: Kafka's rules for
// leader/follower.replication.throttled.replicas — '*' or partition:broker
// pairs, empty entries allowed — and which replicas a list names.
func TestThrottledReplicas(t *testing.T) {
	for _, v := range []string{"", "*", " * ", "0:1", "0:1,1:2", "0:1, 1:2", "0:1,,1:2"} {
		if err := ValidateOne(LeaderReplicationThrottledReplicas, v); err != nil {
			t.Errorf("%q refused: %v", v, err)
		}
	}
	for _, v := range []string{"0", "0:", ":1", "a:1", "0:1,*", "*,*", "-1:2", "0:1:2"} {
		if err := ValidateOne(FollowerReplicationThrottledReplicas, v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
	tests := []struct {
		list              string
		partition, broker int32
		want              bool
	}{
		{"", 0, 1, false},
		{"*", 3, 7, true},
		{"0:1,1:2", 0, 1, true},
		{"0:1,1:2", 1, 2, true},
		{"0:1,1:2", 1, 1, false},
		{"0:1,1:2", 2, 1, false},
		{"0:1, 1:2", 1, 2, true},
		{"0:x", 0, 1, false}, // invalid: names nothing
	}
	for _, tt := range tests {
		if got := ThrottledReplica(tt.list, tt.partition, tt.broker); got != tt.want {
			t.Errorf("ThrottledReplica(%q, %d, %d) = %v, want %v", tt.list, tt.partition, tt.broker, got, tt.want)
		}
	}
}
