package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
)

// BenchmarkFetchLocal: a consumer reading a 64 MiB partition from the
// local log with 1 MiB Fetches over one connection, reading the responses
// without decoding them. It reports the process's CPU time (the broker's,
// mostly) per MiB fetched next to the wall time: compare runs with
// `-count` and benchstat; the CPU figure moves less on a busy machine.
func BenchmarkFetchLocal(b *testing.B) {
	const (
		topic = "bench"
		total = 64 << 20
		value = 100 << 10
		fetch = 1 << 20
	)
	n := brokertest.Start(b)
	cl := n.Client(kgo.ProducerBatchMaxBytes(4<<20), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kmsg.NewPtrCreateTopicsRequest()
	adm.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}
	if _, err := adm.RequestWith(context.Background(), cl); err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte("v"), value)
	for range total / value {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: payload}).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	cl.Close()
	conn, err := net.Dial("tcp", n.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = 11, -1, fetch, 1, 500
	req.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{
		Partition: 0, PartitionMaxBytes: fetch, CurrentLeaderEpoch: -1, LogStartOffset: -1,
	}}}}
	body := make([]byte, 2*fetch)
	var fetched int64
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	b.ResetTimer()
	offset := int64(0)
	for range b.N {
		req.Topics[0].Partitions[0].FetchOffset = offset
		if _, err := conn.Write(requestFrame(req, 1)); err != nil {
			b.Fatal(err)
		}
		var size [4]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			b.Fatal(err)
		}
		n := int(binary.BigEndian.Uint32(size[:]))
		if n > len(body) {
			body = make([]byte, n)
		}
		if _, err := io.ReadFull(conn, body[:n]); err != nil {
			b.Fatal(err)
		}
		fetched += int64(n)
		// Records of value bytes: about ten per Fetch; wrap at the end.
		offset += int64(n / (value + 100))
		if offset >= total/value-10 {
			offset = 0
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	mib := float64(fetched) / (1 << 20)
	b.ReportMetric(float64(cpu.Microseconds())/1000/mib, "cpu-ms/MiB")
	b.ReportMetric(mib/time.Since(start).Seconds(), "MiB/s")
	b.SetBytes(fetched / int64(b.N))
}
