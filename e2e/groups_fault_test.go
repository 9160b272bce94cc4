//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/internal/childproc"
)

// The member program (cmd/strata-groupmember) is built once per test run.
var (
	memberBinOnce sync.Once
	memberBin     string
	memberBinErr  error
)

func groupMemberBin(t *testing.T) string {
	t.Helper()
	memberBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-groupmember")
		if err != nil {
			memberBinErr = err
			return
		}
		memberBin = filepath.Join(dir, "strata-groupmember")
		out, err := exec.Command("go", "build", "-tags", "e2e", "-o", memberBin, "./cmd/strata-groupmember").CombinedOutput()
		if err != nil {
			memberBinErr = fmt.Errorf("building strata-groupmember: %v\n%s", err, out)
		}
	})
	if memberBinErr != nil {
		t.Fatal(memberBinErr)
	}
	return memberBin
}

// removeMemberBin deletes the member program's build directory (TestMain).
func removeMemberBin() {
	if memberBin != "" {
		os.RemoveAll(filepath.Dir(memberBin))
	}
}

// memberEvent is one stdout line of a member process.
type memberEvent struct {
	kind   string // "rec", "committed", "assigned", "revoked", "lost", "meta"
	p      int32
	o      int64 // record offset, or the committed next offset
	value  string
	parts  []int32
	member string // meta: member id
	gen    int32  // meta: generation
}

// memberProc is a strata-groupmember process.
type memberProc struct {
	name       string
	cmd        *exec.Cmd
	stderrPath string
	done       chan struct{} // stdout drained and process reaped

	mu     sync.Mutex
	events []memberEvent
}

func startMemberProc(t *testing.T, name string, args ...string) *memberProc {
	t.Helper()
	bin := groupMemberBin(t)
	m := &memberProc{name: name, stderrPath: filepath.Join(t.TempDir(), name+".stderr"), done: make(chan struct{})}
	errf, err := os.Create(m.stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(bin, args...)
	m.cmd.Stderr = errf
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := childproc.Start(m.cmd); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			ev, err := parseMemberLine(sc.Text())
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			m.mu.Lock()
			m.events = append(m.events, ev)
			m.mu.Unlock()
		}
		m.cmd.Wait()
		errf.Close()
	}()
	t.Cleanup(func() {
		m.cmd.Process.Signal(syscall.SIGCONT)
		m.cmd.Process.Kill()
		<-m.done
		if t.Failed() {
			if data, err := os.ReadFile(m.stderrPath); err == nil && len(data) > 0 {
				if len(data) > 4000 {
					data = data[len(data)-4000:]
				}
				t.Logf("%s stderr (tail):\n%s", name, data)
			}
		}
	})
	return m
}

func parseMemberLine(line string) (memberEvent, error) {
	f := strings.Fields(line)
	bad := fmt.Errorf("unparsable member output %q", line)
	if len(f) == 0 {
		return memberEvent{}, bad
	}
	if f[0] == "#" {
		if len(f) < 2 {
			return memberEvent{}, bad
		}
		ev := memberEvent{kind: f[1]}
		switch f[1] {
		case "assigned", "revoked", "lost":
			if len(f) > 2 {
				for _, s := range strings.Split(f[2], ",") {
					p, err := strconv.Atoi(s)
					if err != nil {
						return ev, bad
					}
					ev.parts = append(ev.parts, int32(p))
				}
			}
		case "committed":
			if len(f) != 4 {
				return ev, bad
			}
			p, err1 := strconv.Atoi(f[2])
			o, err2 := strconv.ParseInt(f[3], 10, 64)
			if err1 != nil || err2 != nil {
				return ev, bad
			}
			ev.p, ev.o = int32(p), o
		case "meta":
			if len(f) == 4 {
				ev.member = f[2]
			} else if len(f) != 3 {
				return ev, bad
			}
			g, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return ev, bad
			}
			ev.gen = int32(g)
		default:
			return ev, bad
		}
		return ev, nil
	}
	if len(f) != 3 {
		return memberEvent{}, bad
	}
	p, err1 := strconv.Atoi(f[0])
	o, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return memberEvent{}, bad
	}
	return memberEvent{kind: "rec", p: int32(p), o: o, value: f[2]}, nil
}

func (m *memberProc) snapshot() []memberEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]memberEvent(nil), m.events...)
}

// owned is the member's current assignment as its callbacks reported it.
func (m *memberProc) owned() []int32 {
	set := map[int32]bool{}
	for _, ev := range m.snapshot() {
		switch ev.kind {
		case "assigned":
			for _, p := range ev.parts {
				set[p] = true
			}
		case "revoked", "lost":
			for _, p := range ev.parts {
				delete(set, p)
			}
		}
	}
	out := make([]int32, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// meta is the member's last reported member id and generation.
func (m *memberProc) meta() (string, int32) {
	id, gen := "", int32(-1)
	for _, ev := range m.snapshot() {
		if ev.kind == "meta" {
			id, gen = ev.member, ev.gen
		}
	}
	return id, gen
}

func (m *memberProc) signal(sig syscall.Signal) {
	m.cmd.Process.Signal(sig)
}

// waitExit waits (bounded) for the process to exit after a signal.
func (m *memberProc) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-m.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v", m.name, d)
	}
}

func memberArgs(addr, group, topic, balancer, instanceID string, session time.Duration) []string {
	args := []string{"--brokers", addr, "--group", group, "--topic", topic, "--balancer", balancer, "--session-timeout", session.String()}
	if instanceID != "" {
		args = append(args, "--instance-id", instanceID)
	}
	return args
}

func unionCovers(n int, ms ...*memberProc) bool {
	seen := map[int32]bool{}
	for _, m := range ms {
		for _, p := range m.owned() {
			if seen[p] {
				return false // still handing over
			}
			seen[p] = true
		}
	}
	return len(seen) == n
}

// producedRec is where a produced value landed.
type producedRec struct {
	p int32
	o int64
}

// bgProducer writes small batches spread over every partition until stopped.
type bgProducer struct {
	mu       sync.Mutex
	produced map[string]producedRec
	err      error
	stop     chan struct{}
	done     chan struct{}
}

func startBgProducer(t *testing.T, addr, topic string, parts int32) *bgProducer {
	cl := newClient(t, addr, manualPartitioner())
	bp := &bgProducer{produced: map[string]producedRec{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(bp.done)
		for i := 0; ; {
			select {
			case <-bp.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var recs []*kgo.Record
			for j := 0; j < 2*int(parts); j++ {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i) % parts, Value: []byte(fmt.Sprintf("v-%d", i))})
				i++
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			res := cl.ProduceSync(ctx, recs...)
			cancel()
			bp.mu.Lock()
			for _, r := range res {
				if r.Err != nil {
					if bp.err == nil {
						bp.err = r.Err
					}
					continue
				}
				bp.produced[string(r.Record.Value)] = producedRec{r.Record.Partition, r.Record.Offset}
			}
			bp.mu.Unlock()
		}
	}()
	t.Cleanup(func() { bp.halt() })
	return bp
}

func (bp *bgProducer) halt() {
	select {
	case <-bp.stop:
	default:
		close(bp.stop)
	}
	<-bp.done
}

func (bp *bgProducer) count() int {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	return len(bp.produced)
}

func countRecords(ms ...*memberProc) int {
	n := 0
	for _, m := range ms {
		for _, ev := range m.snapshot() {
			if ev.kind == "rec" {
				n++
			}
		}
	}
	return n
}

// delivery is one consumption of a record by a member; committed is set
// when that member later had an offset covering it acknowledged before it
// gave the partition up.
type delivery struct {
	member    string
	value     string
	committed bool
}

func collectDeliveries(ms ...*memberProc) map[producedRec][]*delivery {
	out := map[producedRec][]*delivery{}
	for _, m := range ms {
		pending := map[int32][]*producedRecDelivery{}
		for _, ev := range m.snapshot() {
			switch ev.kind {
			case "rec":
				d := &delivery{member: m.name, value: ev.value}
				k := producedRec{ev.p, ev.o}
				out[k] = append(out[k], d)
				pending[ev.p] = append(pending[ev.p], &producedRecDelivery{ev.o, d})
			case "committed":
				var keep []*producedRecDelivery
				for _, pd := range pending[ev.p] {
					if pd.o < ev.o {
						pd.d.committed = true
					} else {
						keep = append(keep, pd)
					}
				}
				pending[ev.p] = keep
			case "revoked", "lost":
				for _, p := range ev.parts {
					delete(pending, p)
				}
			}
		}
	}
	return out
}

type producedRecDelivery struct {
	o int64
	d *delivery
}

// TestGroupFaultMembers: three franz-go members in separate processes share
// a 6-partition topic while a producer writes: one joins late, one leaves
// cleanly (SIGTERM), one is frozen (SIGSTOP) until its session expires and
// is then killed. Partitions move to the survivors, every produced record
// is consumed, and a record is only consumed again when no earlier
// consumer had committed it (at-least-once with commit after process).
func TestGroupFaultMembers(t *testing.T) {
	for _, balancer := range []string{"range", "cooperative-sticky"} {
		t.Run(balancer, func(t *testing.T) { testGroupFaultMembers(t, balancer) })
	}
}

func testGroupFaultMembers(t *testing.T, balancer string) {
	b := startBroker(t, groupBrokerFlags...)
	topic := uniqueTopic(t)
	const parts = 6
	const session = 6 * time.Second
	createTopic(t, b.addr, topic, parts, nil)
	group := "g-" + topic
	args := func() []string { return memberArgs(b.addr, group, topic, balancer, "", session) }

	prod := startBgProducer(t, b.addr, topic, parts)
	frozen := startMemberProc(t, "frozen", args()...)
	leaver := startMemberProc(t, "leaver", args()...)
	waitFor(t, 40*time.Second, "frozen and leaver to split the partitions", func() bool {
		return len(frozen.owned()) > 0 && len(leaver.owned()) > 0 && unionCovers(parts, frozen, leaver)
	})
	waitFor(t, 30*time.Second, "records consumed by both members", func() bool {
		return countRecords(frozen) > 0 && countRecords(leaver) > 0
	})
	t.Logf("two members: frozen %v, leaver %v", frozen.owned(), leaver.owned())

	late := startMemberProc(t, "late", args()...)
	waitFor(t, 40*time.Second, "the late member to get partitions", func() bool {
		return len(late.owned()) > 0 && len(frozen.owned()) > 0 && len(leaver.owned()) > 0 && unionCovers(parts, frozen, leaver, late)
	})
	t.Logf("three members: frozen %v, leaver %v, late %v", frozen.owned(), leaver.owned(), late.owned())
	n := countRecords(late)
	waitFor(t, 30*time.Second, "the late member to consume", func() bool { return countRecords(late) > n })

	leaver.signal(syscall.SIGTERM)
	leaver.waitExit(t, 30*time.Second)
	waitFor(t, 40*time.Second, "frozen and late to take the leaver's partitions", func() bool {
		return len(frozen.owned()) > 0 && len(late.owned()) > 0 && unionCovers(parts, frozen, late)
	})
	frozenOwned := frozen.owned()
	t.Logf("after leave: frozen %v, late %v", frozenOwned, late.owned())
	n = countRecords(frozen)
	waitFor(t, 30*time.Second, "the frozen member to consume after the leave", func() bool { return countRecords(frozen) > n })

	frozen.signal(syscall.SIGSTOP)
	waitFor(t, 60*time.Second, "the late member to take every partition after the frozen member's session expired", func() bool {
		return len(late.owned()) == parts
	})
	t.Logf("after session expiry: late %v (took %v from the frozen member)", late.owned(), frozenOwned)
	frozen.cmd.Process.Kill()
	frozen.signal(syscall.SIGCONT)
	frozen.waitExit(t, 10*time.Second)

	// Keep producing a little after the last move, then drain.
	n = countRecords(late)
	waitFor(t, 30*time.Second, "the late member to consume after taking over", func() bool { return countRecords(late) > n })
	prod.halt()
	if prod.err != nil {
		t.Fatalf("produce: %v", prod.err)
	}
	total := prod.count()
	all := []*memberProc{frozen, leaver, late}
	distinct := func() int { return len(collectDeliveries(all...)) }
	waitFor(t, 60*time.Second, fmt.Sprintf("all %d produced records consumed", total), func() bool { return distinct() >= total })
	late.signal(syscall.SIGTERM)
	late.waitExit(t, 30*time.Second)

	deliveries := collectDeliveries(all...)
	prod.mu.Lock()
	produced := prod.produced
	prod.mu.Unlock()
	byPos := map[producedRec]string{}
	for v, pos := range produced {
		byPos[pos] = v
	}
	missing := 0
	for pos, v := range byPos {
		ds := deliveries[pos]
		if len(ds) == 0 {
			missing++
			if missing <= 10 {
				t.Errorf("record %s at partition %d offset %d was never consumed", v, pos.p, pos.o)
			}
			continue
		}
		for _, d := range ds {
			if d.value != v {
				t.Errorf("%s consumed %q at partition %d offset %d, produced %q", d.member, d.value, pos.p, pos.o, v)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d produced records never consumed", missing, len(byPos))
	}
	dups, dupBy, badRedeliveries := 0, map[string]int{}, 0
	for pos, ds := range deliveries {
		if _, ok := byPos[pos]; !ok {
			t.Errorf("consumed partition %d offset %d, which was not produced", pos.p, pos.o)
		}
		if len(ds) < 2 {
			continue
		}
		dups += len(ds) - 1
		committed := 0
		var who []string
		for _, d := range ds {
			who = append(who, fmt.Sprintf("%s(committed=%v)", d.member, d.committed))
			if d.committed {
				committed++
			} else {
				dupBy[d.member]++
			}
		}
		if committed > 1 {
			badRedeliveries++
			if badRedeliveries <= 10 {
				t.Errorf("partition %d offset %d consumed again after it was committed: %s", pos.p, pos.o, strings.Join(who, ", "))
			}
		}
	}
	perMember := map[string]int{}
	for _, m := range all {
		perMember[m.name] = countRecords(m)
	}
	t.Logf("%s: produced %d, consumed %d distinct, %d duplicate deliveries (uncommitted deliveries redelivered, by first consumer: %v); per member %v",
		balancer, len(byPos), len(deliveries), dups, dupBy, perMember)

	// The committed offsets cover everything.
	offsets, err := kadm.NewClient(newClient(t, b.addr)).FetchOffsets(testContext(t, 20*time.Second), group)
	if err != nil {
		t.Fatal(err)
	}
	end := map[int32]int64{}
	for pos := range byPos {
		if pos.o+1 > end[pos.p] {
			end[pos.p] = pos.o + 1
		}
	}
	for p := int32(0); p < parts; p++ {
		o, ok := offsets.Lookup(topic, p)
		if !ok || o.Err != nil || o.At != end[p] {
			t.Errorf("committed offset of partition %d: %+v (found %v), want %d", p, o, ok, end[p])
		}
	}
}

// TestGroupStaticMembership: a static member (group.instance.id) that is
// stopped without leaving and restarted with the same instance id within
// its session timeout gets its partitions back, and the group does not
// rebalance: the other member keeps its member id, generation and
// partitions, and the group's generation seen by the restarted member is
// the one before.
func TestGroupStaticMembership(t *testing.T) {
	for _, balancer := range []string{"range", "cooperative-sticky"} {
		t.Run(balancer, func(t *testing.T) { testGroupStatic(t, balancer) })
	}
}

func testGroupStatic(t *testing.T, balancer string) {
	b := startBroker(t, groupBrokerFlags...)
	topic := uniqueTopic(t)
	const parts = 6
	const session = 10 * time.Second
	createTopic(t, b.addr, topic, parts, nil)
	group := "g-" + topic
	adm := kadm.NewClient(newClient(t, b.addr))
	producer := newClient(t, b.addr, manualPartitioner())

	// The other member joins first (it leads); the static member second.
	other := startMemberProc(t, "other", memberArgs(b.addr, group, topic, balancer, "static-other", session)...)
	waitFor(t, 30*time.Second, "the other member to own every partition", func() bool { return len(other.owned()) == parts })
	static := startMemberProc(t, "static", memberArgs(b.addr, group, topic, balancer, "static-1", session)...)
	waitFor(t, 40*time.Second, "both members to own partitions", func() bool {
		return len(other.owned()) > 0 && len(static.owned()) > 0 && unionCovers(parts, other, static)
	})
	produceSpread(t, producer, topic, parts, "before", 60)
	waitFor(t, 30*time.Second, "60 records consumed", func() bool { return countRecords(other, static) >= 60 })

	describe := func() kadm.DescribedGroup {
		t.Helper()
		dg, err := adm.DescribeGroups(testContext(t, 10*time.Second), group)
		if err != nil {
			t.Fatal(err)
		}
		g := dg[group]
		if g.Err != nil {
			t.Fatalf("describe %s: %v", group, g.Err)
		}
		return g
	}
	memberByInstance := func(g kadm.DescribedGroup, inst string) (kadm.DescribedGroupMember, bool) {
		for _, m := range g.Members {
			if m.InstanceID != nil && *m.InstanceID == inst {
				return m, true
			}
		}
		return kadm.DescribedGroupMember{}, false
	}
	assignedOf := func(m kadm.DescribedGroupMember) []int32 {
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			return nil
		}
		var out []int32
		for _, tp := range c.Topics {
			if tp.Topic == topic {
				out = append(out, tp.Partitions...)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	before := describe()
	otherBefore, ok1 := memberByInstance(before, "static-other")
	staticBefore, ok2 := memberByInstance(before, "static-1")
	if before.State != "Stable" || len(before.Members) != 2 || !ok1 || !ok2 {
		t.Fatalf("before the restart: state %s, members %+v", before.State, before.Members)
	}
	otherID, otherGen := other.meta()
	staticID, staticGen := static.meta()
	staticOwned, otherOwned := static.owned(), other.owned()
	if otherID != otherBefore.MemberID || staticID != staticBefore.MemberID || otherGen != staticGen {
		t.Fatalf("members disagree with DescribeGroups: other %s gen %d, static %s gen %d; described %s / %s",
			otherID, otherGen, staticID, staticGen, otherBefore.MemberID, staticBefore.MemberID)
	}
	if fmt.Sprint(assignedOf(staticBefore)) != fmt.Sprint(staticOwned) {
		t.Fatalf("described assignment of static-1 %v, the member owns %v", assignedOf(staticBefore), staticOwned)
	}
	otherEvents := len(other.snapshot())
	t.Logf("before: generation %d, other %s owns %v, static %s owns %v", otherGen, otherID, otherOwned, staticID, staticOwned)

	// Stop the static member: it closes without LeaveGroup.
	static.signal(syscall.SIGTERM)
	static.waitExit(t, 30*time.Second)
	mid := describe()
	if _, ok := memberByInstance(mid, "static-1"); !ok || len(mid.Members) != 2 {
		t.Fatalf("after the static member closed (without leaving) the group has members %+v; want it still there until its session expires", mid.Members)
	}

	restarted := startMemberProc(t, "static-restarted", memberArgs(b.addr, group, topic, balancer, "static-1", session)...)
	waitFor(t, 30*time.Second, "the restarted static member to get partitions", func() bool { return len(restarted.owned()) > 0 })
	if got := restarted.owned(); fmt.Sprint(got) != fmt.Sprint(staticOwned) {
		t.Errorf("restarted static member owns %v, before it owned %v", got, staticOwned)
	}
	// Wait past the old session's expiry: had the broker kept the old member
	// id, its expiry would now force a rebalance.
	produceSpread(t, producer, topic, parts, "after", 60)
	waitFor(t, 30*time.Second, "120 records consumed", func() bool { return countRecords(other, static, restarted) >= 120 })
	time.Sleep(session + 2*time.Second)

	after := describe()
	otherAfter, ok1 := memberByInstance(after, "static-other")
	staticAfter, ok2 := memberByInstance(after, "static-1")
	if after.State != "Stable" || len(after.Members) != 2 || !ok1 || !ok2 {
		t.Fatalf("after the restart: state %s, members %+v", after.State, after.Members)
	}
	if otherAfter.MemberID != otherBefore.MemberID {
		t.Errorf("the other member's id changed: %s -> %s", otherBefore.MemberID, otherAfter.MemberID)
	}
	if fmt.Sprint(assignedOf(otherAfter)) != fmt.Sprint(assignedOf(otherBefore)) || fmt.Sprint(assignedOf(staticAfter)) != fmt.Sprint(assignedOf(staticBefore)) {
		t.Errorf("described assignments changed: other %v -> %v, static-1 %v -> %v",
			assignedOf(otherBefore), assignedOf(otherAfter), assignedOf(staticBefore), assignedOf(staticAfter))
	}
	id2, gen2 := other.meta()
	rid, rgen := restarted.meta()
	if id2 != otherID || gen2 != otherGen {
		t.Errorf("the other member's id/generation changed: %s/%d -> %s/%d (a rebalance happened)", otherID, otherGen, id2, gen2)
	}
	if rgen != otherGen {
		t.Errorf("the restarted static member is in generation %d, the group was in %d", rgen, otherGen)
	}
	if rid != staticAfter.MemberID {
		t.Errorf("restarted member id %s, described %s", rid, staticAfter.MemberID)
	}
	for _, ev := range other.snapshot()[otherEvents:] {
		if ev.kind == "assigned" || ev.kind == "revoked" || ev.kind == "lost" {
			t.Errorf("the other member saw %s %v after the static restart", ev.kind, ev.parts)
		}
	}
	if got := other.owned(); fmt.Sprint(got) != fmt.Sprint(otherOwned) {
		t.Errorf("the other member owns %v, before %v", got, otherOwned)
	}
	t.Logf("after: generation %d, other %s owns %v, restarted static %s (was %s) owns %v",
		gen2, id2, other.owned(), rid, staticID, restarted.owned())

	// Every record consumed; none of the "after" records went to the old
	// static process.
	seen := map[string]int{}
	for _, m := range []*memberProc{other, static, restarted} {
		for _, ev := range m.snapshot() {
			if ev.kind == "rec" {
				seen[ev.value]++
			}
		}
	}
	if len(seen) != 120 {
		t.Errorf("%d distinct records consumed, want 120", len(seen))
	}
}
