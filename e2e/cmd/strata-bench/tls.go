package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// tlsRounds is how many times runTLS measures each listener; it reports
// the medians.
const tlsRounds = 5

// runTLS starts one broker with a PLAINTEXT and an SSL listener and
// measures produce (acks=1, as the main run) and consume through each,
// alternating, tlsRounds times, in the same process, so the difference is
// TLS's alone: same broker, same disk, same client. Throughput on a shared
// machine moves with other processes' load, so each run also measures the
// CPU time it cost, the broker's (/proc/PID/stat) and the client's (this
// process, getrusage), per GB moved; CPU per byte is what TLS adds and
// what load from others changes least. Each round's SSL figures are
// divided by the PLAINTEXT ones measured just before, and the median of
// those paired ratios is reported with their range.
func runTLS(bin, dir string, records, recordSize, partitions int) error {
	if bin == "" {
		return errors.New("set --bin or $STRATA_BIN")
	}
	certFile, keyFile, pool, err := selfSignedIdentity(dir)
	if err != nil {
		return err
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	plainAddr, tlsAddr := ports[0], ports[3]
	_, broker, stop, err := startBrokerProcess(bin, filepath.Join(dir, "data"), ports[:3],
		"--listeners", "CLIENT="+plainAddr+",SSL="+tlsAddr, "--listener-security-protocol-map", "SSL:SSL",
		"--ssl-cert-file", certFile, "--ssl-key-file", keyFile)
	if err != nil {
		return err
	}
	defer stop()
	listeners := []struct {
		name, addr string
		opts       []kgo.Opt
	}{
		{"PLAINTEXT", plainAddr, nil},
		{"SSL", tlsAddr, []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})}},
	}
	fmt.Printf("strata-bench --tls: %d records of %d B (incompressible, uncompressed batches), %d partitions, acks=1, one broker with a PLAINTEXT and an SSL listener, %d paired runs\n\n",
		records, recordSize, partitions, tlsRounds)
	// Warm-up (not reported), as the main run.
	warm := fmt.Sprintf("bench-tls-warmup-%d", time.Now().UnixNano())
	if err := createTopic(plainAddr, warm, partitions); err != nil {
		return err
	}
	if _, err := produce(plainAddr, warm, kgo.LeaderAck(), records/4, recordSize, nil); err != nil {
		return err
	}
	// measured[run][listener][round]
	var measured [2][2][]cpuResult
	for range tlsRounds {
		for i, l := range listeners {
			topic := fmt.Sprintf("bench-tls-%s-%d", l.name, time.Now().UnixNano())
			if err := createTopic(plainAddr, topic, partitions); err != nil {
				return err
			}
			res, err := withCPU(broker, records*recordSize, func() (result, error) {
				return produce(l.addr, topic, kgo.LeaderAck(), records, recordSize, nil, l.opts...)
			})
			if err != nil {
				return fmt.Errorf("produce over %s: %w", l.name, err)
			}
			measured[0][i] = append(measured[0][i], res)
			if res, err = withCPU(broker, records*recordSize, func() (result, error) { return consume(l.addr, topic, records, nil, l.opts...) }); err != nil {
				return fmt.Errorf("consume over %s: %w", l.name, err)
			}
			measured[1][i] = append(measured[1][i], res)
		}
	}
	median := func(xs []float64) float64 {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	fmt.Printf("%-20s %8s %14s %14s %12s %14s %12s\n", "run", "MB/s", "broker CPU s/GB", "client CPU s/GB", "MB/s ratio", "CPU/GB ratio", "CPU range")
	for run, name := range []string{"produce", "consume"} {
		for i, l := range listeners {
			var mbs, brokerCPU, clientCPU, speed, cost []float64
			for round, r := range measured[run][i] {
				base := measured[run][0][round]
				mbs, brokerCPU, clientCPU = append(mbs, r.mbs), append(brokerCPU, r.brokerCPU), append(clientCPU, r.clientCPU)
				speed = append(speed, r.mbs/base.mbs)
				cost = append(cost, (r.brokerCPU+r.clientCPU)/(base.brokerCPU+base.clientCPU))
			}
			spread := "-"
			if i > 0 {
				spread = fmt.Sprintf("%.2f-%.2f", slices.Min(cost), slices.Max(cost))
			}
			fmt.Printf("%-20s %8.1f %14.2f %14.2f %12.2f %14.2f %12s\n", name+" "+l.name, median(mbs), median(brokerCPU), median(clientCPU),
				median(speed), median(cost), spread)
		}
	}
	return nil
}

// cpuResult is a run's throughput and the CPU seconds the broker and the
// client spent per GB (10^9 bytes) moved.
type cpuResult struct {
	mbs, brokerCPU, clientCPU float64
}

// withCPU runs bench, which moves size bytes, and measures the CPU time it
// cost the broker process and this one.
func withCPU(broker *os.Process, size int, bench func() (result, error)) (cpuResult, error) {
	brokerBefore, err := processCPU(broker.Pid)
	if err != nil {
		return cpuResult{}, err
	}
	selfBefore := selfCPU()
	res, err := bench()
	if err != nil {
		return cpuResult{}, err
	}
	brokerAfter, err := processCPU(broker.Pid)
	if err != nil {
		return cpuResult{}, err
	}
	gb := float64(size) / 1e9
	return cpuResult{mbs: res.mbs, brokerCPU: (brokerAfter - brokerBefore).Seconds() / gb, clientCPU: (selfCPU() - selfBefore).Seconds() / gb}, nil
}

// processCPU is the user and system CPU time of process pid so far, from
// /proc/PID/stat (utime and stime, fields 14 and 15, in clock ticks of
// 1/100 s: Linux's USER_HZ).
func processCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing one.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var usage syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// selfSignedIdentity writes a self-signed ECDSA P-256 certificate for
// 127.0.0.1 and its key to dir and returns their paths and a pool that
// trusts it.
func selfSignedIdentity(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "strata-bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "bench.crt"), filepath.Join(dir, "bench.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", nil, err
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool, nil
}
