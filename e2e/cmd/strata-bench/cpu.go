package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuSample is the CPU time spent so far by the processes of a --tiered
// run and by the whole machine: the broker and versitygw from
// /proc/PID/stat, this process (the producing client) from getrusage, the
// machine from the first line of /proc/stat. Two samples around a phase
// say where its CPU went.
type cpuSample struct {
	at                        time.Time
	broker, s3, client        time.Duration
	machineBusy, machineTotal time.Duration // all CPUs: busy, and busy + idle + iowait
	// brokerReads and brokerWrites count the broker's read and write
	// system calls (syscr, syscw of /proc/PID/io; 0 where unreadable).
	brokerReads, brokerWrites int64
	// brokerFaults counts the broker's minor page faults (minflt of
	// /proc/PID/stat: first touches of its memory; 0 where unreadable).
	brokerFaults int64
}

func sampleCPU(brokerPid, s3Pid int) (cpuSample, error) {
	s := cpuSample{at: time.Now(), client: selfCPU()}
	var err error
	if s.broker, err = processCPU(brokerPid); err != nil {
		return cpuSample{}, fmt.Errorf("broker CPU: %w", err)
	}
	if s.s3, err = processCPU(s3Pid); err != nil {
		return cpuSample{}, fmt.Errorf("versitygw CPU: %w", err)
	}
	if s.machineBusy, s.machineTotal, err = machineCPU(); err != nil {
		return cpuSample{}, err
	}
	s.brokerReads, s.brokerWrites = processSyscalls(brokerPid)
	s.brokerFaults = processMinorFaults(brokerPid)
	return s, nil
}

// processMinorFaults returns the minor page faults pid has taken (field
// 10 of /proc/PID/stat), 0 when it cannot be read.
func processMinorFaults(pid int) int64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// After the command name's closing parenthesis: state, ppid, pgrp,
	// session, tty_nr, tpgid, flags, minflt.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 8 {
		return 0
	}
	n, _ := strconv.ParseInt(fields[7], 10, 64)
	return n
}

// processSyscalls returns the read and write system calls (read, pread,
// readv, recvmsg, …; likewise for writes) pid has made: syscr and syscw of
// /proc/PID/io, 0 when it cannot be read.
func processSyscalls(pid int) (reads, writes int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(data)) {
		name, value, _ := strings.Cut(strings.TrimSpace(line), ": ")
		n, _ := strconv.ParseInt(value, 10, 64)
		switch name {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// machineCPU reads the aggregate "cpu" line of /proc/stat (clock ticks
// of 1/100 s summed over all CPUs): busy is user, nice, system, irq,
// softirq and steal (guest time is already in user); total adds idle
// and iowait.
func machineCPU() (busy, total time.Duration, err error) {
	file, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	if !scanner.Scan() {
		return 0, 0, errors.New("/proc/stat: empty")
	}
	fields := strings.Fields(scanner.Text())
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: first line %q", scanner.Text())
	}
	var ticks [8]int64 // user nice system idle iowait irq softirq steal
	for i := range ticks {
		if ticks[i], err = strconv.ParseInt(fields[1+i], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	b := ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
	tick := 10 * time.Millisecond
	return time.Duration(b) * tick, time.Duration(b+ticks[3]+ticks[4]) * tick, nil
}

// cpuUse is the CPU spent between two samples.
type cpuUse struct {
	wall                                  time.Duration
	broker, s3, client, machine, capacity time.Duration // capacity: every CPU's time over the window
	brokerReads, brokerWrites             int64         // the broker's read and write system calls
	brokerFaults                          int64         // the broker's minor page faults
}

func (s cpuSample) since(before cpuSample) cpuUse {
	return cpuUse{wall: s.at.Sub(before.at), broker: s.broker - before.broker, s3: s.s3 - before.s3, client: s.client - before.client,
		machine: s.machineBusy - before.machineBusy, capacity: s.machineTotal - before.machineTotal,
		brokerReads: s.brokerReads - before.brokerReads, brokerWrites: s.brokerWrites - before.brokerWrites,
		brokerFaults: s.brokerFaults - before.brokerFaults}
}

func (u cpuUse) plus(v cpuUse) cpuUse {
	return cpuUse{wall: u.wall + v.wall, broker: u.broker + v.broker, s3: u.s3 + v.s3, client: u.client + v.client,
		machine: u.machine + v.machine, capacity: u.capacity + v.capacity,
		brokerReads: u.brokerReads + v.brokerReads, brokerWrites: u.brokerWrites + v.brokerWrites,
		brokerFaults: u.brokerFaults + v.brokerFaults}
}

// others is the machine's busy time not spent by the run's processes
// (other work on a shared machine, the kernel's own threads).
func (u cpuUse) others() time.Duration { return max(u.machine-u.broker-u.s3-u.client, 0) }

// cpuRow prints u per MiB produced, in CPU milliseconds per MiB, with the
// machine's average busy cores over the window.
func cpuRow(name string, u cpuUse, mib float64) {
	perMiB := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / mib }
	busyCores := 0.0
	if u.capacity > 0 {
		busyCores = float64(u.machine) / float64(u.capacity) * float64(runtime.NumCPU())
	}
	fmt.Printf("%-28s %8.2f %10.2f %8.2f %8.2f %8.2f   %5.1f s, %.2f of %d cores busy\n", name,
		perMiB(u.broker), perMiB(u.s3), perMiB(u.client), perMiB(u.others()), perMiB(u.machine), u.wall.Seconds(), busyCores, runtime.NumCPU())
}
