package main

import (
	"fmt"
	"runtime"
	"time"
)

// localPass is one local-tier consume (consumeLocal): timed as a replay
// is, over the same records.
type localPass struct {
	elapsed time.Duration // until every partition passed the tiered topic's remote-range end
	records int64         // the records in that range
	metrics metricSamples // the broker's metric increases over the whole pass
	// Over the timed range: the consumer's Fetches and the CPU of the
	// broker, versitygw and the consumer (this process).
	fetches fetchSummary
	cpu     cpuUse
}

// printWarmVsLocal prints the warm replay next to the local-tier consumes
// around it (A-B-A), each over its timed range: the consumer's Fetches
// (how many, their mean size, round trips and the client's time between
// them) and the CPU per MiB of the broker and the consumer, with the
// machine's other work, so that a wall-clock ratio can be read against
// what each pass cost and what else ran.
func printWarmVsLocal(warm replayResult, before, after localPass, mib float64) {
	fmt.Printf("warm vs local (timed range; CPU ms per MiB): %-13s %7s %9s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %8s %6s\n",
		"pass", "Fetches", "MiB each", "RTT p50", "RTT p99", "RTT mean", "resp at", "read", "cycle", "1st at", "1st RTT", "broker", "consumer", "both", "others", "cores")
	row := func(name string, f fetchSummary, cpu cpuUse) {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		perMiB := func(d time.Duration) float64 { return ms(d) / mib }
		busy := 0.0
		if cpu.capacity > 0 {
			busy = float64(cpu.machine) / float64(cpu.capacity) * float64(runtime.NumCPU())
		}
		fmt.Printf("warm vs local (timed range; CPU ms per MiB): %-13s %7d %9.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %6.2f\n",
			name, f.count, f.meanBytes/(1<<20), ms(f.p50), ms(f.p99), ms(f.mean), ms(f.meanReadWait), ms(f.meanRead), ms(f.meanCycle), ms(f.firstEnded), ms(f.first),
			perMiB(cpu.broker), perMiB(cpu.client), perMiB(cpu.broker+cpu.client), perMiB(cpu.others()), busy)
	}
	row("local before", before.fetches, before.cpu)
	row("warm", warm.fetches, warm.cpu)
	row("local after", after.fetches, after.cpu)
}
