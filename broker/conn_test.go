package broker

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestFrame encodes req as a client would, without the size prefix.
func requestFrame(req kmsg.Request) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, 42)[4:]
}

func TestDecodeRequest(t *testing.T) {
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	topic := "t"
	meta.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 4
	oldFetch := kmsg.NewPtrFetchRequest()
	oldFetch.Version = 3
	versions := kmsg.NewPtrApiVersionsRequest()
	versions.Version = 99
	valid := requestFrame(meta)
	cases := []struct {
		name        string
		frame       []byte
		wantErr     bool
		unsupported bool
	}{
		{"metadata v12 (flexible)", valid, false, false},
		{"fetch v4", requestFrame(fetch), false, false},
		{"fetch v3 is below the served range", requestFrame(oldFetch), true, false},
		{"apiversions v99 is answered", requestFrame(versions), true, true},
		{"short header", valid[:9], true, false},
		{"client id overruns", func() []byte {
			f := append([]byte(nil), valid...)
			binary.BigEndian.PutUint16(f[8:], 5000)
			return f
		}(), true, false},
		{"negative client id length", func() []byte {
			f := append([]byte(nil), valid...)
			binary.BigEndian.PutUint16(f[8:], 0xfff0)
			return f
		}(), true, false},
		{"unknown key", func() []byte {
			f := append([]byte(nil), valid...)
			binary.BigEndian.PutUint16(f[0:], 9999)
			return f
		}(), true, false},
		{"truncated body", valid[:len(valid)-3], true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, _, req, err := decodeRequest(tc.frame)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.unsupported != (err == errUnsupportedAPIVersions) {
				t.Fatalf("err = %v, unsupported ApiVersions %v", err, tc.unsupported)
			}
			if err == nil {
				if h.correlationID != 42 || h.clientID != "test" || req.GetVersion() != h.version {
					t.Fatalf("header %+v", h)
				}
			}
		})
	}
}

// FuzzDecodeRequest: no frame makes request decoding panic, and a decoded
// request is one of a served API at a served version.
func FuzzDecodeRequest(f *testing.F) {
	for _, a := range servedAPIs() {
		for v := a.minVersion; v <= a.maxVersion; v++ {
			req := kmsg.RequestForKey(a.key)
			req.SetVersion(v)
			f.Add(requestFrame(req))
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, a, req, err := decodeRequest(frame)
		if err != nil {
			return
		}
		if a == nil || req == nil || req.Key() != h.key || h.version < a.minVersion || h.version > a.maxVersion {
			t.Fatalf("decoded an unserved request: key %d v%d", h.key, h.version)
		}
	})
}

func TestAPIVersionsMatchRegistry(t *testing.T) {
	keys := apiVersionsList()
	if len(keys) != len(apis) {
		t.Fatalf("%d advertised, %d registered", len(keys), len(apis))
	}
	for _, k := range keys {
		a := apis[k.ApiKey]
		if a == nil || a.minVersion != k.MinVersion || a.maxVersion != k.MaxVersion {
			t.Fatalf("advertised %+v does not match the registry", k)
		}
		if k.MaxVersion > kmsg.RequestForKey(k.ApiKey).MaxVersion() {
			t.Fatalf("%s advertised beyond what kmsg can decode", kmsg.NameForKey(k.ApiKey))
		}
	}
	// Not implemented, so not advertised: ConsumerGroupHeartbeat and
	// ConsumerGroupDescribe (KIP-848).
	for _, key := range []int16{68, 69} {
		if apis[key] != nil {
			t.Fatalf("%s is advertised but not implemented", kmsg.NameForKey(key))
		}
	}
	// The classic group APIs, from the versions old clients send.
	for key, want := range map[int16][2]int16{
		10: {0, 4}, 11: {0, 9}, 14: {0, 5}, 12: {0, 4}, 13: {0, 5}, 15: {0, 5},
		16: {0, 4}, 42: {0, 2}, 8: {0, 10}, 9: {0, 10}, 47: {0, 0},
		// Transactions V1 and V2 (KIP-890): Kafka 4.2's ranges (Produce
		// v13 names topics by id; TxnOffsetCommit v6, topics by id, is
		// Kafka 4.4's), but InitProducerId without KIP-939's v6.
		0: {0, 13}, 22: {0, 5}, 24: {0, 5}, 25: {0, 4}, 26: {0, 5}, 27: {0, 2}, 28: {0, 5}, 65: {0, 0}, 66: {0, 2},
	} {
		a := apis[key]
		if a == nil || a.minVersion != want[0] || a.maxVersion != want[1] {
			t.Fatalf("%s: registered %+v, want v%d-v%d", kmsg.NameForKey(key), a, want[0], want[1])
		}
	}
}
